"""Late labels: recorded as Parquet, joined to the prediction log by request id and row, summed per
version for canary analysis and A/B results."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steward.config import load_settings
from steward.errors import InvalidInput
from steward.governance.audit import AuditService
from steward.serving import sdk
from steward.serving.labels import (
    labelled_predictions,
    log_labels,
    outcomes_by_version,
    unmatched_labels,
)
from steward.serving.log_store import LogStore
from steward.serving.prediction_log import PredictionLog
from steward.serving.prediction_service import PredictionService
from steward.store.platform import Platform
from tests.serving.test_prediction_log import AT, AT_MS, GUARD, HOUR_MS, record


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(str(tmp_path / "artifacts"))


@pytest.fixture
def log(store: LogStore) -> Iterator[PredictionLog]:
    log = PredictionLog(store, flush_interval=0.05)
    yield log
    log.close()


def answer(log: PredictionLog, request_id: str, prediction: Any, **options: Any) -> None:
    outputs = np.array([prediction])
    log.offer(record(request_id, inputs=pd.DataFrame({"age": [40]}), outputs=outputs, **options))


def test_the_latest_label_wins_and_unknown_requests_are_counted_unmatched(
    log: PredictionLog, store: LogStore
) -> None:
    for i in range(3):
        answer(log, f"r{i}", 1)
    assert log.flush(GUARD)
    assert log_labels(store, ["r0", "r1", "ghost"], [0, 1, 1], endpoint="churn") == 3
    assert log_labels(store, ["r0"], [1], endpoint="churn") == 1  # r0 relabelled
    assert log_labels(store, ["r2", "r2"], [0, 1], endpoint="churn") == 1  # the last one given wins

    table = labelled_predictions(store, "churn")
    assert {r["request_id"]: r["label"] for r in table.to_pylist()} == {"r0": 1, "r1": 1, "r2": 1}
    assert table.column_names[-2:] == ["label", "labelled_at"]
    assert unmatched_labels(table) == 1  # ghost
    answer(log, "ghost", 0)  # its prediction arrives after its label
    assert log.flush(GUARD)
    table = labelled_predictions(store, "churn")
    assert (table.num_rows, unmatched_labels(table)) == (4, 0)


def test_outcomes_by_version_match_a_hand_count(log: PredictionLog, store: LogStore) -> None:
    # version 1.0.0 (stable) predicts 1, 1, 0, 0, 1 for r0..r4; 2.0.0 (canary) answers r5..r8 with 1, 0, 1, 1.
    for i, prediction in enumerate([1, 1, 0, 0, 1]):
        answer(log, f"r{i}", prediction)
    for i, prediction in enumerate([1, 0, 1, 1], start=5):
        answer(log, f"r{i}", prediction, version="2.0.0", role="canary")
    log.offer(record("failed", version="2.0.0", role="canary", status=500))  # errors are left out
    answer(log, "unlabelled", 1, version="3.0.0", role="shadow")
    assert log.flush(GUARD)
    # Labels: r0..r3 of the stable -> 1, 0, 0, 1 (correct: r0, r2 -> 2 of 4); r4 not labelled.
    # Canary r5..r8 -> 1, 1, 1, 0 (correct: r5, r7 -> 2 of 4). "failed" is labelled but not counted.
    log_labels(store, ["r0", "r1", "r2", "r3", "r5", "r6", "r7", "r8", "failed"], [1, 0, 0, 1, 1, 1, 1, 0, 1])

    outcomes = outcomes_by_version(store, "churn")
    assert outcomes == {
        "1.0.0": {"predictions": 5, "n": 4, "correct": 2, "accuracy": 0.5, "label_mean": 0.5,
                  "label_var": pytest.approx(1 / 3)},
        "2.0.0": {"predictions": 4, "n": 4, "correct": 2, "accuracy": 0.5, "label_mean": 0.75,
                  "label_var": pytest.approx(0.25)},
        "3.0.0": {"predictions": 1, "n": 0, "correct": 0, "accuracy": None, "label_mean": None,
                  "label_var": None},
    }  # fmt: skip
    later = outcomes_by_version(store, "churn", since=datetime(2025, 3, 4, 11, tzinfo=UTC))
    assert later == {}
    assert outcomes_by_version(store, "other-endpoint") == {}


def test_shadow_answers_to_one_request_are_each_judged(log: PredictionLog, store: LogStore) -> None:
    answer(log, "r1", "yes")
    answer(log, "r1", "no", version="2.0.0", role="shadow")
    assert log.flush(GUARD)
    log_labels(store, ["r1"], ["yes"], endpoint="churn")
    outcomes = outcomes_by_version(store, "churn")
    assert {v: (o["n"], o["correct"], o["label_mean"]) for v, o in outcomes.items()} == {
        "1.0.0": (1, 1, None),  # text labels: no mean
        "2.0.0": (1, 0, None),
    }


def test_labels_of_several_row_requests_name_the_row(log: PredictionLog, store: LogStore) -> None:
    log.offer(record("batch", inputs=pd.DataFrame({"age": [1, 2, 3]}), outputs=np.array([0.5, 1.5, 2.5])))
    assert log.flush(GUARD)
    log_labels(store, ["batch", "batch"], [1.5, 2.0], rows=[1, 2], endpoint="churn")
    rows = labelled_predictions(store, "churn").to_pylist()
    assert [(r["row"], r["out.prediction"], r["label"]) for r in rows] == [(1, 1.5, 1.5), (2, 2.5, 2.0)]
    outcome = outcomes_by_version(store, "churn")["1.0.0"]
    assert (outcome["predictions"], outcome["n"], outcome["correct"], outcome["label_mean"]) == (
        3,
        2,
        1,
        1.75,
    )


def test_labels_without_an_endpoint_join_any_endpoint_of_the_project(
    log: PredictionLog, store: LogStore
) -> None:
    answer(log, "c1", True, endpoint="churn")
    answer(log, "f1", False, endpoint="fraud")
    assert log.flush(GUARD)
    log_labels(store, ["c1", "f1", "elsewhere"], [True, True, False])
    churn = labelled_predictions(store, "churn")
    assert [(r["request_id"], r["label"]) for r in churn.to_pylist()] == [("c1", True)]
    assert unmatched_labels(churn) == 0  # f1 and "elsewhere" may belong to other endpoints
    assert outcomes_by_version(store, "fraud")["1.0.0"]["correct"] == 0
    assert outcomes_by_version(store, "churn")["1.0.0"]["label_mean"] == 1.0


def test_two_projects_do_not_see_each_others_labels_or_predictions(tmp_path: Path) -> None:
    alpha = load_settings(home=tmp_path / "home", project="alpha")
    with PredictionLog.from_settings(alpha, flush_interval=0.05) as log:
        answer(log, "shared-id", 1, project="alpha")
        answer(log, "shared-id", 0, project="beta")
    log_labels(alpha, ["shared-id"], [1], endpoint="churn")
    log_labels(alpha, ["shared-id"], [0], endpoint="churn", project="beta")
    assert outcomes_by_version(alpha, "churn")["1.0.0"]["label_mean"] == 1.0
    assert outcomes_by_version(alpha, "churn", project="beta")["1.0.0"]["label_mean"] == 0.0
    assert outcomes_by_version(alpha, "churn", project="gamma") == {}


@pytest.mark.parametrize(
    ("request_ids", "labels", "options", "field"),
    [
        (["r1", "r2"], [1], {}, "labels"),
        ([], [], {}, "request_ids"),
        ("r1", [1], {}, "request_ids"),
        (["r1", ""], [1, 0], {}, "request_ids"),
        (["r1", 7], [1, 0], {}, "request_ids"),
        (["r1"], [[1, 0]], {}, "labels"),
        (["r1"], [None], {}, "labels"),
        (["r1"], [float("nan")], {}, "labels"),
        (["r1", "r2"], ["yes", 1], {}, "labels"),
        (["r1"], [{"a": 1}], {}, "labels"),
        (["r1"], [1], {"rows": [-1]}, "rows"),
        (["r1"], [1], {"rows": [0, 1]}, "rows"),
        (["r1"], [1], {"endpoint": "no/such"}, "endpoint"),
        (["r1"], [1], {"project": "bad project"}, "project"),
    ],
)
def test_bad_labels_are_refused_naming_the_field_and_nothing_is_written(
    store: LogStore, request_ids: Any, labels: Any, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        log_labels(store, request_ids, labels, **options)
    assert caught.value.details["field"] == field
    assert not Path(store.root, "labels").exists()


def test_numpy_and_pandas_inputs_are_accepted(log: PredictionLog, store: LogStore) -> None:
    answer(log, "r1", 0.25)
    answer(log, "r2", 0.75)
    assert log.flush(GUARD)
    assert (
        log_labels(store, pd.Series(["r1", "r2"]), np.array([0.25, 0.5], dtype=np.float32), endpoint="churn")
        == 2
    )
    outcome = outcomes_by_version(store, "churn")["1.0.0"]
    assert (outcome["n"], outcome["correct"], outcome["label_mean"]) == (2, 1, 0.375)


def test_labels_for_an_earlier_window_are_still_found(log: PredictionLog, store: LogStore) -> None:
    answer(log, "old", 1, at_ms=AT_MS)
    answer(log, "new", 1, at_ms=AT_MS + 5 * HOUR_MS)
    assert log.flush(GUARD)
    log_labels(store, ["old", "new"], [1, 0], endpoint="churn")  # labelled long after (now)
    window = labelled_predictions(store, "churn", since=AT, until=datetime(2025, 3, 4, 11, tzinfo=UTC))
    assert window.column("request_id").to_pylist() == ["old"]


def test_the_service_records_one_audit_entry_per_call(tmp_path: Path) -> None:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    try:
        service = PredictionService(platform)
        assert service.log_labels(["r1", "r2"], [1, 0], endpoint="churn") == 2
        assert service.log_labels(["r3"], [1]) == 1
        with pytest.raises(InvalidInput):
            service.log_labels(["r4"], [])
        entries = AuditService(platform).log(action="predictions.label")
        assert [(e.resource_id, e.details["count"], e.details["project"]) for e in entries] == [
            ("_any", 1, "default"),
            ("churn", 2, "default"),
        ]
        assert service.labelled_predictions("churn").num_rows == 0
        assert service.read_predictions("churn").num_rows == 0
    finally:
        platform.close()


def test_the_sdk_functions_reach_the_installed_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(home=tmp_path / "home")
    with PredictionLog.from_settings(settings, flush_interval=0.05) as log:
        answer(log, "r1", 1, project="beta")
    platform = Platform.from_settings(settings)
    try:
        monkeypatch.setattr(sdk, "_resolver", lambda: PredictionService(platform))
        assert sdk.log_labels(["r1"], [1], endpoint="churn", project="beta") == 1
        assert sdk.read_predictions("churn").num_rows == 0  # the connection's project: default
        table = sdk.read_predictions("churn", since=AT, project="beta", limit=5)
        assert table.column("request_id").to_pylist() == ["r1"]
        assert outcomes_by_version(settings, "churn", project="beta")["1.0.0"]["accuracy"] == 1.0
    finally:
        platform.close()
