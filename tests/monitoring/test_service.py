"""Monitors on a real endpoint log: a scikit-learn model registered with its training dataset, traffic
written by the serving prediction log's own writer, labels, serving statistics, and alerts delivered to
local webhook receivers.

The clock is the ``now`` each run is given: traffic is written at fixed past times (labels are stamped
with the real time, after them) and runs are placed after it by hand, never by sleeping.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, insert, select

import steward
from steward.config import load_settings
from steward.data.service import DataService
from steward.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from steward.governance.audit import AuditService
from steward.governance.context import Identity, acting_as
from steward.monitoring.runs import (
    COOLDOWN,
    COUNTED,
    OK,
    OPENED,
    PENDING,
    RESOLVED,
    UNKNOWN,
    MonitoringReport,
)
from steward.monitoring.service import MonitoringService
from steward.serving.labels import log_labels
from steward.serving.log_store import LogStore, read_predictions
from steward.serving.models import PredictionRecord, WindowStats
from steward.serving.prediction_log import PredictionLog
from steward.store.platform import Platform
from steward.store.tables import monitoring_references, monitoring_windows, serving_windows
from tests.conftest import reset_sdk
from tests.monitoring.test_channels import receiver  # noqa: F401 (a fixture)

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
"""Traffic is written after this (in the past, so labels stamped now come after their predictions)."""
FEATURES = ["income", "age"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass
class Env:
    """A home with model ``churn`` 1.0.0 trained on dataset ``churn-train`` and a monitoring service."""

    home: Path
    platform: Platform
    service: MonitoringService
    model: LogisticRegression
    waits: list[float]
    ids: Iterator[int] = field(default_factory=itertools.count)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(11))

    def traffic(
        self, start: datetime, rows: int = 400, shift: float = 0.0, *, endpoint: str = "churn"
    ) -> list[str]:
        """Log ``rows`` answered requests (one row each) spread over the 10 minutes from ``start``, with
        income shifted by ``shift``; return their request ids."""
        frame = features(self.rng, rows, shift)
        answers = self.model.predict(frame)
        log = PredictionLog(LogStore.from_settings(self.platform.settings), flush_interval=0.05)
        ids = []
        begin = int(start.timestamp() * 1000)
        for i in range(rows):
            request_id = f"r{next(self.ids)}"
            ids.append(request_id)
            log.offer(
                PredictionRecord(
                    "default", endpoint, "churn", "1.0.0", "stable", request_id, begin + i * 600_000 // rows,
                    frame.iloc[[i]], answers[i : i + 1], 3.0,
                )
            )  # fmt: skip
        log.close()
        return ids

    def offer(self, start: datetime, inputs: list[Any]) -> None:
        """Log one request per input (a DataFrame or a mapping of columns), a millisecond apart."""
        log = PredictionLog(LogStore.from_settings(self.platform.settings), flush_interval=0.05)
        begin = int(start.timestamp() * 1000)
        for i, value in enumerate(inputs):
            record = PredictionRecord(
                "default", "churn", "churn", "1.0.0", "stable", f"x{next(self.ids)}", begin + i, value,
                np.array([1]), 3.0,
            )  # fmt: skip
            log.offer(record)
        log.close()

    def run(self, name: str, minutes: float) -> Any:
        return self.service.run_monitor(name, now=at(minutes))

    def trail(self, action: str) -> list[Any]:
        return AuditService(self.platform).log(resource_kind="monitor", action=action)


def features(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"income": rng.normal(50 + shift, 10, rows), "age": rng.normal(40, 5, rows)})


def open_env(tmp_path: Path, db: str | None = None) -> Env:
    home = tmp_path / "home"
    options = {"home": home, **({"db": db} if db else {})}
    steward.configure(**options)
    platform = Platform.from_settings(load_settings(**options))
    rng = np.random.default_rng(3)
    train = features(rng, 2000)
    train["churned"] = ((train["income"] + rng.normal(0, 5, len(train))) > 55).astype("int64")
    dataset = DataService(platform).ingest(pa.Table.from_pandas(train, preserve_index=False), "churn-train")
    assert dataset.version is not None
    model = LogisticRegression().fit(train[FEATURES], train["churned"])
    steward.register_model(
        "churn", model, signature=steward.infer_signature(train[FEATURES], train["churned"]),
        datasets={"train": dataset.version.id}, metrics={"accuracy": 0.9},
    )  # fmt: skip
    waits: list[float] = []
    return Env(home, platform, MonitoringService(platform, sleep=waits.append), model, waits)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    found = open_env(tmp_path)
    yield found
    found.platform.close()
    reset_sdk()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    found = open_env(tmp_path, db)
    yield found
    found.platform.close()
    reset_sdk()


# -- the alert lifecycle ------------------------------------------------------------------------------


def test_a_drift_alert_fires_once_counts_repeats_and_resolves(any_env: Env) -> None:
    env = any_env
    env.traffic(at(5), shift=30)
    env.service.create_monitor(
        "churn-drift", "churn", rules=["drift_share > 0.3", "drifted(age)"], window="1h"
    )

    first = env.run("churn-drift", 30)
    assert [r.outcome for r in first.rules] == [OPENED, OK]
    [alert] = first.opened
    assert (alert.rule, alert.state, alert.count, alert.value) == ("drift_share > 0.3", "firing", 1, 0.5)
    assert alert.delivered is None  # the monitor has no channels
    assert first.facts["drifted"] == {"income": 1.0, "age": 0.0, "out.prediction": 1.0}
    assert first.report.served == {"model": "churn", "version": "1.0.0", "rows": 400}
    assert first.report.reference is not None and first.report.reference["dataset"] == "churn-train@1"

    second = env.run("churn-drift", 40)
    assert (second.opened, [r.outcome for r in second.rules]) == ((), [COUNTED, OK])
    [firing] = env.service.list_alerts("churn-drift", "firing")
    assert (firing.id, firing.count, firing.last_at) == (alert.id, 2, at(40))

    env.traffic(at(100))  # undrifted traffic; the next window holds nothing else
    third = env.run("churn-drift", 120)
    assert [r.outcome for r in third.rules] == [RESOLVED, OK]
    [resolved] = third.resolved
    assert (resolved.id, resolved.state, resolved.resolved_at, resolved.count) == (
        alert.id,
        "resolved",
        at(120),
        2,
    )
    assert env.service.list_alerts(state="firing") == []

    [opened] = env.trail("alert.open")
    [closed] = env.trail("alert.resolve")
    assert opened.resource_id == closed.resource_id == "churn-drift"
    assert opened.details["alert"] == closed.details["alert"] == alert.id
    assert opened.details["rule"] == "drift_share > 0.3"
    assert env.service.get_monitor("churn-drift").last_run_at == at(120)


def test_for_n_windows_needs_n_runs_in_a_row(env: Env) -> None:
    env.traffic(at(5), shift=30)
    env.service.create_monitor("slow", "churn", rules=["drift_share > 0.3 for 3 windows"], window="1h")

    runs = [env.run("slow", m) for m in (30, 35, 35, 40)]  # the repeated now does not count twice
    assert [(r.rules[0].outcome, r.rules[0].streak) for r in runs] == [
        (PENDING, 1), (PENDING, 2), (PENDING, 2), (OPENED, 3),
    ]  # fmt: skip
    assert env.service.list_alerts("slow")[0].count == 1

    env.traffic(at(100))
    env.run("slow", 120)  # holds: resolves and resets the streak
    env.traffic(at(125), shift=30)
    again = env.run("slow", 140)
    assert (again.rules[0].outcome, again.rules[0].streak) == (PENDING, 1)


def test_a_relapse_within_the_cooldown_is_counted_on_the_resolved_alert(env: Env) -> None:
    env.traffic(at(5), shift=30)
    env.service.create_monitor("flappy", "churn", rules=["drift_share > 0.3"], window="1h", cooldown="1h")
    [alert] = env.run("flappy", 30).opened
    env.traffic(at(100))
    assert env.run("flappy", 120).resolved[0].id == alert.id

    env.traffic(at(130), shift=30)  # drifts again 30 minutes after the alert resolved
    relapse = env.run("flappy", 150)
    assert relapse.rules[0].outcome == COOLDOWN and relapse.opened == ()
    [counted] = relapse.updated
    assert (counted.id, counted.state, counted.count, counted.last_at) == (alert.id, "resolved", 2, at(150))
    assert env.service.list_alerts(state="firing") == []

    later = env.run("flappy", 190)  # 70 minutes after it resolved, still drifting: a new alert
    [fresh] = later.opened
    assert fresh.id != alert.id and fresh.state == "firing"
    assert len(env.trail("alert.open")) == 2


# -- delivery -----------------------------------------------------------------------------------------


def test_alerts_are_delivered_with_retries_and_a_dead_receiver_leaves_them_undelivered(
    env: Env,
    receiver: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    flaky, dead = receiver(fail_first=2), receiver(fail_first=1000)
    env.traffic(at(5), shift=30)
    env.service.create_monitor(
        "loud", "churn", rules=["drift_share > 0.3"], window="1h", channels=[flaky.url]
    )
    env.service.create_monitor(
        "lost",
        "churn",
        rules=["psi(income) > 0.2"],
        window="1h",
        channels=[{"kind": "webhook", "target": dead.url}],
    )

    [delivered] = env.run("loud", 30).opened
    assert delivered.delivered is True
    [delivery] = delivered.deliveries
    assert (delivery.ok, delivery.attempts) == (True, 3)
    [body] = flaky.bodies
    assert body["steward"]["id"] == delivered.id and body["steward"]["rule"] == "drift_share > 0.3"
    assert "loud: drift_share > 0.3 on churn" in body["text"]

    [undelivered] = env.run("lost", 30).opened
    assert undelivered.delivered is False
    assert (undelivered.deliveries[0].ok, undelivered.deliveries[0].attempts) == (False, 4)
    assert "HTTP 503" in undelivered.deliveries[0].error
    assert env.service.get_alert(undelivered.id).state == "firing"  # kept, to be seen and acted on
    assert env.waits == [0.5, 1.0, 0.5, 1.0, 2.0]
    outcomes = {e.details["alert"]: e.outcome for e in env.trail("alert.deliver")}
    assert outcomes == {delivered.id: "ok", undelivered.id: "failed"}
    assert "secret-token" not in json.dumps([e.details for e in env.trail("monitor.create")])

    again = env.run("lost", 40)  # a repeat is counted, not delivered again
    assert again.opened == () and dead.requests == 4


# -- what a run gathers -------------------------------------------------------------------------------


def test_labels_for_unknown_requests_do_not_crash_and_accuracy_rules_read_them(env: Env) -> None:
    ids = env.traffic(at(5), rows=40)
    logged = read_predictions(env.platform, "churn")
    answered = dict(
        zip(logged.column("request_id").to_pylist(), logged.column("out.prediction").to_pylist(), strict=True)
    )
    wrong = [1 - answered[i] for i in ids[:10]]  # the first 10 labelled the opposite of the answer
    right = [answered[i] for i in ids[10:20]]
    log_labels(env.platform, [*ids[:20], "ghost-1", "ghost-2"], [*wrong, *right, 1, 0], endpoint="churn")
    env.service.create_monitor(
        "quality", "churn", window="1h",
        rules=["accuracy < 0.9", "demographic_parity_difference(gender) > 0.1"],
    )  # fmt: skip

    run = env.run("quality", 30)
    assert run.facts["labelled"] == 20.0 and run.facts["accuracy"] == pytest.approx(0.5)
    assert [r.outcome for r in run.rules] == [OPENED, UNKNOWN]
    assert any("no fairness over 'gender'" in n for n in run.report.notes)
    assert run.report.performance is not None and run.report.performance.registered["accuracy"] == 0.9


def test_an_empty_window_gives_no_alert_and_a_note(env: Env) -> None:
    env.traffic(at(5), shift=30)
    env.service.create_monitor("quiet", "churn", rules=["drift_share > 0.3", "accuracy < 0.9"], window="1h")
    run = env.run("quiet", -120)  # an hour with no traffic at all
    assert run.opened == () and [r.outcome for r in run.rules] == [UNKNOWN, UNKNOWN]
    assert run.report.rows == 0 and run.report.drift is None
    assert any("no predictions of 'churn' in the window" in n for n in run.report.notes)
    assert env.service.list_alerts() == []


def test_all_null_columns_and_clashing_types_give_notes_not_failures(env: Env) -> None:
    rng = np.random.default_rng(5)
    env.offer(at(5), [pd.DataFrame({"income": [v], "age": [np.nan]}) for v in rng.normal(50, 10, 200)])
    env.offer(at(8), [{"income": np.array([[1.0, 2.0]]), "age": np.array([np.nan])} for _ in range(20)])
    env.service.create_monitor("odd", "churn", rules=["drifted(age)", "psi(age) > 0.2"], window="1h")

    run = env.run("odd", 30)
    assert [r.outcome for r in run.rules] == [UNKNOWN, UNKNOWN]  # age has no value to compare
    assert run.report.drift is not None
    age = run.report.drift.feature("age")
    assert age is not None and (age.current_count, age.drifted, age.statistic) == (0, False, None)
    assert age.note
    assert any("read one by one" in n for n in run.report.notes)
    assert any("column 'income' left out of the window" in n for n in run.report.notes)
    income = run.report.drift.feature("income")
    assert income is not None and income.current_count == 200


def test_latency_and_error_rules_read_the_serving_statistics(env: Env) -> None:
    stats = WindowStats()
    for i in range(200):
        stats.observe(80.0, error=i < 10)  # slow, and 5% failed
    with env.platform.metadata.transaction() as conn:
        conn.execute(insert(serving_windows), {
            "project": "default", "endpoint": "churn", "version": "1.0.0",
            "window_start": int(at(10).timestamp() * 1000),
            "worker": "w1", "role": "stable", "requests": stats.requests, "errors": stats.errors,
            "latency_sum_ms": stats.latency_sum_ms, "latency_buckets": stats.buckets_json(),
            "shadow_compared": 0, "shadow_agreed": 0, "updated_at": 0,
        })  # fmt: skip
    env.service.create_monitor(
        "ops", "churn", window="1h", rules=["p99_latency_ms > 50", "error_rate > 1%", "throughput_rps < 1"]
    )
    run = env.run("ops", 30)
    assert [r.outcome for r in run.rules] == [OPENED, OPENED, OPENED]
    assert run.facts["error_rate"] == pytest.approx(0.05)
    assert run.facts["requests"] == 200.0 and run.facts["p99_latency_ms"] > 50


def test_the_reference_is_profiled_once_and_closed_hours_are_not_read_again(env: Env) -> None:
    env.traffic(at(5), shift=30)
    env.traffic(at(65), shift=30)
    env.service.create_monitor("hours", "churn", rules=["drift_share > 0.3"], window="3h")
    first = env.run("hours", 150)  # [09:30, 12:30): 09:30 read whole, 10:00 and 11:00 closed, 12:00 open
    assert first.report.current_summary is not None and first.report.current_summary.rows == 800
    with env.platform.metadata.read() as conn:
        keys = sorted(conn.execute(select(monitoring_references.c.key)).scalars())
        hours = conn.execute(select(func.count()).select_from(monitoring_windows)).scalar()
    assert len(keys) == 2 and keys[1].endswith("|out:churn/1.0.0")
    assert hours == 2 * 3  # per reference (inputs, outputs): 10:00, 11:00 and the open 12:00

    log = LogStore.from_settings(env.platform.settings)
    shutil.rmtree(f"{log.predictions_dir('default', 'churn')}/hour=2025-03-04T10")
    second = env.run("hours", 155)  # the 10:00 hour is final: counted from its stored summary
    assert second.report.current_summary is not None and second.report.current_summary.rows == 800
    assert second.report.rows == 400  # while the log itself no longer has it
    with env.platform.metadata.read() as conn:
        assert sorted(conn.execute(select(monitoring_references.c.key)).scalars()) == keys


def test_a_report_compares_inputs_and_outputs_and_round_trips_as_json(env: Env) -> None:
    env.traffic(at(5), shift=30)
    drifted = env.service.report("churn", window="1h", now=at(30))
    assert drifted.drift is not None and drifted.drift.drifted_columns == ["income"]
    [prediction] = drifted.drift.prediction
    assert (prediction.column, prediction.drifted) == ("out.prediction", True)
    assert drifted.reference_summary is not None and set(drifted.reference_summary.columns) == {
        "income", "age", "churned", "out.prediction",
    }  # fmt: skip
    assert drifted.ops is not None and drifted.fairness == {}

    text = json.dumps(drifted.to_json())
    assert MonitoringReport.from_json(json.loads(text)).to_json() == drifted.to_json()

    env.traffic(at(65))
    calm = env.service.report("churn", window="30m", now=at(80))
    assert (
        calm.drift is not None and calm.drift.drifted_columns == [] and not calm.drift.prediction[0].drifted
    )


def test_a_log_window_can_be_the_reference(env: Env) -> None:
    env.traffic(at(5))
    env.traffic(at(65), shift=30)
    reference = {"window_start": at(0).isoformat(), "window_end": at(30).isoformat()}
    env.service.create_monitor(
        "vs-log", "churn", rules=["psi(income) > 0.2"], window="30m", reference=reference
    )
    run = env.run("vs-log", 90)
    assert run.rules[0].outcome == OPENED
    assert run.report.reference is not None and run.report.reference["kind"] == "log"
    assert (
        run.report.reference["key"]
        == f"log:churn:{int(at(0).timestamp() * 1000)}:{int(at(30).timestamp() * 1000)}"
    )


# -- monitors themselves ------------------------------------------------------------------------------


def test_create_monitor_checks_everything_and_is_audited(env: Env) -> None:
    create = env.service.create_monitor
    bad: list[tuple[dict[str, Any], str]] = [
        ({"rules": ["acuracy < 0.9"]}, "rules"),
        ({"rules": []}, "rules"),
        ({"rules": ["accuracy < 0.9"], "schedule": "every minute"}, "schedule"),
        ({"rules": ["accuracy < 0.9"], "schedule": 5}, "schedule"),
        ({"rules": ["accuracy < 0.9"], "window": "1y"}, "window"),
        ({"rules": ["accuracy < 0.9"], "cooldown": "soon"}, "cooldown"),
        ({"rules": ["accuracy < 0.9"], "channels": ["ftp://x"]}, "channels.target"),
        ({"rules": ["accuracy < 0.9"], "actions": [{"kind": "retrain", "target": "nope"}]}, "actions.target"),
        (
            {"rules": ["accuracy < 0.9"], "reference": {"window_start": at(5), "window_end": at(0)}},
            "reference",
        ),
    ]
    for options, field_name in bad:
        with pytest.raises(InvalidInput) as caught:
            create("m", "churn", **options)
        assert caught.value.details["field"] == field_name, options
    with pytest.raises(NotFound):
        create("m", "churn", rules=["accuracy < 0.9"], reference="no-such-dataset")
    assert env.service.list_monitors() == []

    monitor = create(
        "m", "churn", rules=["accuracy < 0.9"], schedule="900", window="2h", reference="churn-train",
        actions=[{"kind": "retrain", "target": "pipelines.churn:train", "params": {"epochs": 2}}],
    )  # fmt: skip
    assert (monitor.window_s, monitor.schedule, monitor.cooldown_s, monitor.enabled) == (
        7200,
        "900",
        3600,
        True,
    )
    assert monitor.reference == {"dataset": "churn-train", "version": 1}  # pinned
    assert monitor.actions[0].params == {"epochs": 2}
    with pytest.raises(AlreadyExists):
        create("m", "churn", rules=["accuracy < 0.9"])

    assert env.service.set_enabled("m", False).enabled is False
    assert [m.name for m in env.service.list_monitors()] == ["m"]
    env.service.delete_monitor("m")
    with pytest.raises(NotFound):
        env.service.get_monitor("m")
    actions = [e.action for e in reversed(AuditService(env.platform).log(resource_kind="monitor"))]
    assert actions == ["monitor.create", "monitor.disable", "monitor.delete"]


def test_actions_are_recorded_on_the_alert_and_audited(env: Env) -> None:
    env.traffic(at(5), shift=30)
    env.service.create_monitor("act", "churn", rules=["drift_share > 0.3"], window="1h")
    [alert] = env.run("act", 30).opened
    updated = env.service.record_action(
        alert.id, {"kind": "retrain", "outcome": "started", "details": {"run": "p1"}}
    )
    assert updated.actions[0]["kind"] == "retrain" and updated.actions[0]["details"] == {"run": "p1"}
    [entry] = env.trail("alert.action")
    assert entry.details["alert"] == alert.id and entry.details["action"]["outcome"] == "started"
    with pytest.raises(InvalidInput):
        env.service.record_action(alert.id, {"outcome": "no kind"})
    with pytest.raises(NotFound):
        env.service.record_action("no-such-alert", {"kind": "rollback"})


def test_writing_needs_the_monitoring_write_permission(env: Env) -> None:
    viewer = Identity("vera", "user", project_roles={"default": frozenset({"viewer"})})
    with acting_as(viewer, "default"), pytest.raises(Forbidden, match="monitoring:write"):
        env.service.create_monitor("m", "churn", rules=["accuracy < 0.9"])


def test_monitors_and_alerts_stay_in_their_project(env: Env) -> None:
    env.traffic(at(5), shift=30)
    env.service.create_monitor("mine", "churn", rules=["drift_share > 0.3"], window="1h")
    [alert] = env.run("mine", 30).opened
    elsewhere = Identity("ops", "user", global_roles=frozenset({"admin"}))
    with acting_as(elsewhere, "other"):
        assert env.service.list_monitors() == [] and env.service.list_alerts() == []
        with pytest.raises(NotFound):
            env.service.get_alert(alert.id)
        with pytest.raises(NotFound):
            env.service.record_action(alert.id, {"kind": "rollback"})
        env.service.create_monitor("mine", "churn", rules=["accuracy < 0.9"])  # the name is free there
    assert [m.rules for m in env.service.list_monitors()] == [("drift_share > 0.3",)]


def test_the_sdk_functions_call_the_installed_backend(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from steward.monitoring import sdk

    monkeypatch.setattr(sdk, "_resolver", lambda: env.service)
    env.traffic(at(5), shift=30)
    sdk.create_monitor("via-sdk", "churn", rules=["drift_share > 0.3"], window="1h")
    assert sdk.disable_monitor("via-sdk").enabled is False and sdk.enable_monitor("via-sdk").enabled
    [alert] = sdk.run_monitor("via-sdk", now=at(30)).opened
    assert sdk.list_alerts("via-sdk", "firing") == [sdk.get_alert(alert.id)]
    assert sdk.monitor_report("churn", window="1h", now=at(30)).rows == 400
    sdk.delete_monitor("via-sdk")
    assert sdk.list_monitors() == []


def test_a_model_that_cannot_answer_the_reference_skips_output_drift_with_a_note(env: Env) -> None:
    """A tensor model's inputs cannot be told apart in a table: its outputs are not compared."""
    rng = np.random.default_rng(1)
    train = features(rng, 500)
    array = train.to_numpy(dtype=np.float32)
    labels = (train["income"] > 50).astype("int64")
    dataset = DataService(env.platform).ingest(
        pa.Table.from_pandas(train, preserve_index=False), "tensor-train"
    )
    assert dataset.version is not None
    tensor = LogisticRegression().fit(array, labels)
    steward.register_model(
        "tensor",
        tensor,
        signature=steward.infer_signature(array, labels),
        datasets={"train": dataset.version.id},
    )
    log = PredictionLog(LogStore.from_settings(env.platform.settings), flush_interval=0.05)
    begin = int(at(5).timestamp() * 1000)
    for i, row in enumerate(array[:50]):
        inputs = pd.DataFrame({"income": [row[0]], "age": [row[1]]})
        log.offer(PredictionRecord("default", "t", "tensor", "1.0.0", "stable", f"t{i}", begin + i, inputs,
                                   np.array([1]), 2.0))  # fmt: skip
    log.close()

    report = env.service.report("t", window="1h", now=at(30))
    assert any("no output drift: tensor 1.0.0 cannot answer the reference" in n for n in report.notes)
    assert report.drift is not None and report.drift.prediction == ()
    assert {f.column for f in report.drift.features} == {"income", "age"}
