"""The monitoring contract: the same behaviour embedded and over HTTP through a real server.

Both modes work on one home (``tests.monitoring.test_service``'s: model ``churn`` trained on dataset
``churn-train``, traffic written by the serving prediction log's own writer), so the server reads the
same prediction log the embedded service does. The one visible difference is documented in
``steward.client.monitoring``: a monitor read over HTTP shows its channels without their secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

import steward
from steward.api.app import create_app
from steward.client.http import HttpClient
from steward.client.monitoring import RemoteMonitoringService
from steward.config import load_settings
from steward.errors import AlreadyExists, InvalidInput, NotFound
from steward.monitoring.models import Channel
from steward.monitoring.report_html import render_html
from steward.monitoring.runs import COUNTED, OK, OPENED, RESOLVED, MonitorRun
from steward.monitoring.sdk import MonitoringBackend
from steward.monitoring.service import MonitoringService
from tests.conftest import reset_sdk
from tests.monitoring.test_channels import receiver  # noqa: F401 (a fixture)
from tests.monitoring.test_service import Env, at, open_env
from tests.plugins.server import running_server


def recording_waits(app: FastAPI, waits: list[float] | None = None) -> FastAPI:
    """The app; with ``waits``, its monitoring service records delivery backoffs there instead of sleeping."""
    if waits is not None:
        app.state.monitoring = MonitoringService(
            app.state.platform, app.state.registry, app.state.data, sleep=waits.append
        )
    return app


@dataclass
class Contract:
    kind: str
    env: Env
    monitoring: MonitoringBackend
    url: str = ""


@contextmanager
def served(env: Env) -> Iterator[Contract]:
    """A real server on ``env``'s home (its deliveries' backoffs recorded in ``env.waits``) and its client."""
    app = recording_waits(create_app(load_settings(home=env.home)), env.waits)
    with running_server(app) as url, HttpClient(url) as http:
        yield Contract("remote", env, RemoteMonitoringService(http), url)


@pytest.fixture(params=["embedded", "remote"])
def contract(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Contract]:
    """The embedded service, or the HTTP client of a real server on the same home."""
    env = open_env(tmp_path)
    try:
        if request.param == "embedded":
            yield Contract("embedded", env, env.service)
        else:
            with served(env) as found:
                yield found
    finally:
        env.platform.close()
        reset_sdk()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Contract]:
    """The remote mode, whose ``env.service`` is the embedded service on the same home."""
    env = open_env(tmp_path)
    try:
        with served(env) as found:
            yield found
    finally:
        env.platform.close()
        reset_sdk()


def run(contract: Contract, name: str, minutes: float) -> MonitorRun:
    return contract.monitoring.run_monitor(name, now=at(minutes))


# -- the alert lifecycle ------------------------------------------------------------------------------


def test_a_drift_alert_opens_once_counts_repeats_and_resolves(contract: Contract) -> None:
    monitoring, env = contract.monitoring, contract.env
    env.traffic(at(5), shift=30)
    made = monitoring.create_monitor(
        "churn-drift", "churn", rules=["drift_share > 0.3", "drifted(age)"], window="1h"
    )
    assert (made.rules, made.window_s, made.schedule, made.enabled) == (
        ("drift_share > 0.3", "drifted(age)"),
        3600,
        "*/15 * * * *",
        True,
    )

    first = run(contract, "churn-drift", 30)
    assert first.monitor == "churn-drift" and [r.outcome for r in first.rules] == [OPENED, OK]
    [alert] = first.opened
    assert (alert.rule, alert.state, alert.count, alert.value) == ("drift_share > 0.3", "firing", 1, 0.5)
    assert first.facts["drifted"] == {"income": 1.0, "age": 0.0, "out.prediction": 1.0}
    assert first.report.served == {"model": "churn", "version": "1.0.0", "rows": 400}
    assert first.report.drift is not None and first.report.drift.drifted_columns == ["income"]

    second = run(contract, "churn-drift", 40)
    assert (second.opened, [r.outcome for r in second.rules]) == ((), [COUNTED, OK])
    [firing] = monitoring.list_alerts("churn-drift", "firing")
    assert (firing.id, firing.count, firing.last_at) == (alert.id, 2, at(40))
    assert monitoring.get_alert(alert.id) == firing

    env.traffic(at(100))
    third = run(contract, "churn-drift", 120)
    assert [r.outcome for r in third.rules] == [RESOLVED, OK]
    assert (third.resolved[0].id, third.resolved[0].resolved_at) == (alert.id, at(120))
    assert monitoring.list_alerts(state="firing") == []
    assert [a.state for a in monitoring.list_alerts("churn-drift")] == ["resolved"]
    assert monitoring.get_monitor("churn-drift").last_run_at == at(120)


def test_a_bad_monitor_is_refused_naming_the_part_and_nothing_is_stored(contract: Contract) -> None:
    create = contract.monitoring.create_monitor
    bad: list[tuple[dict[str, Any], str]] = [
        ({"rules": ["acuracy < 0.9"]}, "rules"),
        ({"rules": []}, "rules"),
        ({"rules": "accuracy < 0.9"}, "rules"),
        ({"rules": ["accuracy < 0.9"], "schedule": "every minute"}, "schedule"),
        ({"rules": ["accuracy < 0.9"], "schedule": 5}, "schedule"),
        ({"rules": ["accuracy < 0.9"], "window": "1y"}, "window"),
        ({"rules": ["accuracy < 0.9"], "cooldown": "soon"}, "cooldown"),
        ({"rules": ["accuracy < 0.9"], "channels": ["ftp://x"]}, "channels.target"),
        ({"rules": ["accuracy < 0.9"], "channels": [Channel("pager", "x")]}, "channels.kind"),
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
    with pytest.raises(InvalidInput, match="acuracy"):
        create("m", "churn", rules=["acuracy < 0.9"])
    with pytest.raises(InvalidInput) as named:
        create("bad name!", "churn", rules=["accuracy < 0.9"])
    assert named.value.details["field"] == "monitor"
    with pytest.raises(NotFound):
        create("m", "churn", rules=["accuracy < 0.9"], reference="no-such-dataset")
    assert contract.monitoring.list_monitors() == []

    made = create(
        "m", "churn", rules=["accuracy < 0.9"], schedule=900, window="2h", reference="churn-train",
        actions=[{"kind": "retrain", "target": "pipelines.churn:train", "params": {"epochs": 2}}],
    )  # fmt: skip
    assert (made.window_s, made.schedule, made.cooldown_s) == (7200, "900", 3600)
    assert made.reference == {"dataset": "churn-train", "version": 1}  # pinned
    assert made.actions[0].params == {"epochs": 2}
    with pytest.raises(AlreadyExists):
        create("m", "churn", rules=["accuracy < 0.9"])


def test_a_monitor_is_switched_off_and_on_and_deleted_with_its_alerts(contract: Contract) -> None:
    monitoring = contract.monitoring
    contract.env.traffic(at(5), shift=30)
    monitoring.create_monitor("onoff", "churn", rules=["drift_share > 0.3"], window="1h")
    [alert] = run(contract, "onoff", 30).opened
    assert monitoring.set_enabled("onoff", False).enabled is False
    assert monitoring.get_monitor("onoff").enabled is False
    assert monitoring.set_enabled("onoff", True).enabled is True
    with pytest.raises(InvalidInput) as caught:
        monitoring.set_enabled("onoff", "yes")  # type: ignore[arg-type]
    assert caught.value.details["field"] == "enabled"
    monitoring.delete_monitor("onoff")
    assert monitoring.list_monitors() == []
    for gone in (lambda: monitoring.get_monitor("onoff"), lambda: monitoring.get_alert(alert.id)):
        with pytest.raises(NotFound):
            gone()
    with pytest.raises(NotFound):
        monitoring.delete_monitor("onoff")


def test_unknown_names_and_bad_queries_are_clear_errors(contract: Contract) -> None:
    monitoring = contract.monitoring
    monitoring.create_monitor("known", "churn", rules=["accuracy < 0.9"])
    with pytest.raises(InvalidInput) as state:
        monitoring.list_alerts(state="open")
    assert state.value.details["field"] == "state"
    for call in (
        lambda: monitoring.list_alerts("ghost"),
        lambda: monitoring.get_alert("no-such-alert"),
        lambda: monitoring.get_alert(""),
        lambda: monitoring.run_monitor("ghost"),
        lambda: monitoring.get_monitor("ghost"),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(InvalidInput) as now:
        monitoring.run_monitor("known", now="yesterday")  # type: ignore[arg-type]
    assert now.value.details["field"] == "now"
    assert monitoring.list_alerts() == []


# -- reports ------------------------------------------------------------------------------------------


def test_a_report_shows_input_and_output_drift_against_each_kind_of_reference(contract: Contract) -> None:
    monitoring, env = contract.monitoring, contract.env
    env.traffic(at(5))
    env.traffic(at(65), shift=30)

    trained = monitoring.report("churn", window="1h", now=at(90))
    assert trained.drift is not None and trained.drift.drifted_columns == ["income"]
    assert [(p.column, p.drifted) for p in trained.drift.prediction] == [("out.prediction", True)]
    assert trained.reference is not None and trained.reference["dataset"] == "churn-train@1"
    assert trained.rows == 400 and trained.ops is not None

    pinned = monitoring.report(
        "churn", window=3600, now=at(90), reference={"dataset": "churn-train", "version": 1}
    )
    assert pinned.to_json() == trained.to_json()

    logged = monitoring.report(
        "churn", window="30m", now=at(90), reference={"window_start": at(0), "window_end": at(30)}
    )
    assert logged.reference is not None and logged.reference["kind"] == "log"
    assert logged.drift is not None and "income" in logged.drift.drifted_columns

    calm = monitoring.report("churn", window="30m", now=at(30))
    assert calm.drift is not None and calm.drift.drifted_columns == []

    refused: list[tuple[dict[str, Any], str]] = [
        ({"window": "1y"}, "window"),
        ({"window": True}, "window"),
        ({"reference": "not a dataset!"}, "reference"),
        ({"attribute": ""}, "attribute"),
        ({"now": "today"}, "now"),
    ]
    for options, field_name in refused:
        with pytest.raises(InvalidInput) as caught:
            monitoring.report("churn", **options)
        assert caught.value.details["field"] == field_name, options
    with pytest.raises(NotFound):
        monitoring.report("churn", reference="no-such-dataset")


# -- channels -----------------------------------------------------------------------------------------


def test_alerts_are_delivered_where_the_monitor_runs_and_remote_reads_hide_the_secrets(
    contract: Contract,
    receiver: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    hook = receiver(fail_first=1)
    contract.env.traffic(at(5), shift=30)
    channel = Channel("webhook", hook.url, {"headers": {"X-Token": "hush-hush"}})
    made = contract.monitoring.create_monitor(
        "loud", "churn", rules=["drift_share > 0.3"], window="1h", channels=[channel]
    )

    [alert] = run(contract, "loud", 30).opened
    assert alert.delivered is True and (alert.deliveries[0].ok, alert.deliveries[0].attempts) == (True, 2)
    host = f"http://127.0.0.1:{urlsplit(hook.url).port}"
    assert alert.deliveries[0].channel == f"webhook:{host}"
    assert contract.env.waits == [0.5]
    [body] = hook.bodies
    assert body["steward"]["id"] == alert.id
    assert hook.headers[-1]["X-Token"] == "hush-hush"  # the stored monitor keeps what it delivers with

    shown = contract.monitoring.get_monitor("loud")
    assert made.channels == shown.channels == contract.monitoring.list_monitors()[0].channels
    if contract.kind == "embedded":
        assert shown.channels == (channel,)
    else:
        assert shown.channels == (Channel("webhook", f"{host}/…", {"headers": {"X-Token": "***"}}),)
        assert contract.env.service.get_monitor("loud").channels == (channel,)


# -- remote and embedded side by side -----------------------------------------------------------------


def test_a_report_over_http_equals_the_embedded_one(remote: Contract) -> None:
    remote.env.traffic(at(5), shift=30)
    options: dict[str, Any] = {"window": "1h", "now": at(30)}
    over_http = remote.monitoring.report("churn", **options)
    embedded = remote.env.service.report("churn", **options)
    assert over_http == embedded
    assert over_http.to_json() == embedded.to_json()


def test_a_run_over_http_finds_what_an_embedded_run_finds(remote: Contract) -> None:
    remote.env.traffic(at(5), shift=30)
    rules = ["drift_share > 0.3", "psi(income) > 0.2", "drifted(age)", "accuracy < 0.9"]
    remote.monitoring.create_monitor("over-http", "churn", rules=rules, window="1h")
    remote.env.service.create_monitor("embedded", "churn", rules=rules, window="1h")

    over_http = run(remote, "over-http", 30)
    embedded = remote.env.service.run_monitor("embedded", now=at(30))

    def outcome(found: MonitorRun) -> list[tuple[Any, ...]]:
        return [(r.rule, r.value, r.broken, r.streak, r.outcome, r.message) for r in found.rules]

    def alerts(found: MonitorRun) -> list[tuple[Any, ...]]:
        return [(a.rule, a.state, a.value, a.threshold, a.count, a.first_at) for a in found.opened]

    assert outcome(over_http) == outcome(embedded)
    assert alerts(over_http) == alerts(embedded) and len(over_http.opened) == 2
    assert over_http.report == embedded.report
    listed = {a.rule for a in remote.env.service.list_alerts("over-http")}
    assert listed == {"drift_share > 0.3", "psi(income) > 0.2"}


def test_steward_connect_to_a_server_monitors_through_it(remote: Contract, tmp_path: Path) -> None:
    remote.env.traffic(at(5), shift=30)
    conn = steward.connect(remote.url, home=tmp_path / "client-home")
    try:
        assert isinstance(conn.monitoring, RemoteMonitoringService)
        conn.monitoring.create_monitor("sdk", "churn", rules=["drift_share > 0.3"], window="1h")
        assert [r.outcome for r in conn.monitoring.run_monitor("sdk", now=at(30)).rules] == [OPENED]
    finally:
        conn.close()
    assert [m.name for m in remote.env.service.list_monitors()] == ["sdk"]


def test_the_remote_client_fetches_the_report_as_the_page_the_server_renders(remote: Contract) -> None:
    remote.env.traffic(at(5), shift=30)
    assert isinstance(remote.monitoring, RemoteMonitoringService)
    page = remote.monitoring.report_html("churn", window="1h", now=at(30), reference="churn-train@1")
    local = render_html(
        remote.env.service.report("churn", window="1h", now=at(30), reference="churn-train@1")
    )

    def undated(html: str) -> str:
        return re.sub(r"<dt>Generated</dt><dd>[^<]*</dd>", "", html)

    assert undated(page) == undated(local) and "income" in page
    with pytest.raises(InvalidInput) as caught:
        remote.monitoring.report_html("churn", window="1y")
    assert caught.value.details["field"] == "window"
