"""Performance on late labels: metrics per window equal scikit-learn's on the same rows, undefined ones
are None with a note, and labels for unknown requests are counted, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from steward.core.time import now_ms
from steward.errors import InvalidInput
from steward.monitoring.models import PerformanceReport
from steward.monitoring.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    performance,
    performance_for_endpoint,
    registered_metrics,
)
from steward.serving.labels import labelled_predictions, log_labels
from steward.serving.log_store import LogStore
from steward.serving.prediction_log import PredictionLog
from tests.serving.test_prediction_log import GUARD, record

START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
HOUR = 3600


def labelled(
    seconds: list[float],
    labels: list[Any],
    predictions: list[Any] | None = None,
    *,
    scores: list[list[float]] | None = None,
    status: list[int] | None = None,
    role: list[str] | None = None,
    version: list[str] | None = None,
) -> pa.Table:
    """A table shaped as labelled_predictions returns it, rows ``seconds`` after START."""
    n = len(seconds)
    at = [int((START + timedelta(seconds=s)).timestamp() * 1000) for s in seconds]
    columns: dict[str, Any] = {
        "request_id": pa.array([f"r{i}" for i in range(n)]),
        "row": pa.array([0] * n, pa.int32()),
        "at": pa.array(at, pa.timestamp("ms", tz="UTC")),
        "version": pa.array(version or ["1.0.0"] * n),
        "role": pa.array(role or ["stable"] * n),
        "status": pa.array(status or [200] * n, pa.int32()),
    }
    if predictions is not None:
        columns["out.prediction"] = pa.array(predictions)
    if scores is not None:
        columns["out.scores"] = pa.array(scores, pa.list_(pa.float64()))
    columns["label"] = pa.array(labels)
    return pa.table(columns)


def by_sklearn(y: list[Any], p: list[Any], pos: Any = 1) -> dict[str, float]:
    return {
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(y, p, pos_label=pos),
        "recall": skm.recall_score(y, p, pos_label=pos),
        "f1": skm.f1_score(y, p, pos_label=pos),
    }


def test_binary_metrics_per_window_equal_sklearns_with_the_labelled_counts() -> None:
    rng = np.random.default_rng(7)
    proba = rng.uniform(size=30)
    y = (rng.uniform(size=30) < proba).astype(int).tolist()
    y[0], y[1] = 0, 1  # both classes in the first hour
    scores = [[1 - q, q] for q in proba]
    prediction = [int(q > 0.5) for q in proba]
    # 12 rows in hour 0, 18 in hour 1, none in hour 2
    seconds = [i * 300 for i in range(12)] + [HOUR + i * 100 for i in range(18)]
    table = labelled(seconds, y, prediction, scores=scores)
    report = performance(table, start=START, end=START + timedelta(hours=3), window_s=HOUR)

    assert report.task == "classification"
    assert [(w.start, w.end, w.labelled) for w in report.windows] == [
        (START, START + timedelta(hours=1), 12),
        (START + timedelta(hours=1), START + timedelta(hours=2), 18),
        (START + timedelta(hours=2), START + timedelta(hours=3), 0),
    ]
    for window, rows in zip(report.windows[:2], (slice(0, 12), slice(12, 30)), strict=True):
        ys, ps, ss = y[rows], prediction[rows], proba[rows]
        expected = {
            **by_sklearn(ys, ps),
            "roc_auc": skm.roc_auc_score(ys, ss),
            "log_loss": skm.log_loss(ys, np.column_stack([1 - ss, ss]), labels=[0, 1]),
        }
        assert window.metrics == pytest.approx(expected)
        assert window.predictions == window.labelled  # no counts given: the labelled rows
    empty = report.windows[2]
    assert empty.metrics == dict.fromkeys(CLASSIFICATION_METRICS)
    assert empty.notes == ("no labelled rows in the window",)
    assert report.overall["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba))
    assert report.overall["f1"] == pytest.approx(skm.f1_score(y, prediction))


def test_a_window_with_one_class_has_no_roc_auc_and_says_why() -> None:
    table = labelled([0, 10, 20], [1, 1, 1], [1, 0, 1], scores=[[0.1, 0.9], [0.6, 0.4], [0.3, 0.7]])
    window = performance(table, start=START, end=START + timedelta(minutes=1), window_s=60).windows[0]
    assert window.metrics["roc_auc"] is None
    assert "roc_auc undefined: one class only among the labels" in window.notes
    # log loss is defined with one class: the classes come from the score columns
    expected = skm.log_loss([1, 1, 1], [[0.1, 0.9], [0.6, 0.4], [0.3, 0.7]], labels=[0, 1])
    assert window.metrics["log_loss"] == pytest.approx(expected)
    assert window.metrics["accuracy"] == pytest.approx(2 / 3)


def test_undefined_precision_is_none_with_a_note_not_a_warning() -> None:
    table = labelled([0, 1, 2], [0, 1, 0], [0, 0, 0])
    window = performance(table, start=START, end=START + timedelta(seconds=10), window_s=10).windows[0]
    assert window.metrics["precision"] is None
    assert window.metrics["recall"] == 0.0
    assert any(
        n.startswith("precision undefined: no row predicted the positive class 1") for n in window.notes
    )
    assert any("need class scores" in n for n in window.notes)  # no out.scores: no roc_auc, log_loss


def test_multiclass_scores_give_macro_metrics_roc_auc_ovr_and_log_loss() -> None:
    rng = np.random.default_rng(3)
    raw = rng.dirichlet([1, 1, 1], size=40)
    y = rng.integers(0, 3, size=40).tolist()
    y[:3] = [0, 1, 2]
    prediction = raw.argmax(axis=1).tolist()  # as the log stores a 2-D answer: the index of the highest
    table = labelled(list(range(40)), y, prediction, scores=raw.tolist())
    report = performance(table, start=START, end=START + timedelta(minutes=1), window_s=60)
    expected = {
        "accuracy": skm.accuracy_score(y, prediction),
        "precision": skm.precision_score(y, prediction, average="macro", zero_division=0),
        "recall": skm.recall_score(y, prediction, average="macro", zero_division=0),
        "f1": skm.f1_score(y, prediction, average="macro", zero_division=0),
        "roc_auc": skm.roc_auc_score(y, raw, multi_class="ovr", labels=[0, 1, 2]),
        "log_loss": skm.log_loss(y, raw, labels=[0, 1, 2]),
    }
    assert report.windows[0].metrics == pytest.approx(expected)


def test_text_labels_map_to_score_columns_in_sorted_order() -> None:
    # predict_proba of a model trained on "no"/"yes": column 0 is "no", column 1 "yes"; the log holds
    # the index of the highest score as out.prediction
    labels = ["yes", "no", "yes", "no", "yes"]
    scores = [[0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]]
    table = labelled([0, 1, 2, 3, 4], labels, [1, 0, 0, 0, 1], scores=scores)
    window = performance(table, start=START, end=START + timedelta(seconds=5), window_s=5).windows[0]
    predicted = ["yes", "no", "no", "no", "yes"]
    expected = {
        **by_sklearn(labels, predicted, pos="yes"),
        "roc_auc": skm.roc_auc_score([s == "yes" for s in labels], [s[1] for s in scores]),
        "log_loss": skm.log_loss(labels, scores, labels=["no", "yes"]),
    }
    assert window.metrics == pytest.approx(expected)


def test_a_binary_model_answering_probabilities_is_judged_as_a_classifier() -> None:
    # a sigmoid output: out.prediction is the probability of class 1
    y, p = [1, 0, 1, 0, 1, 1], [0.81, 0.35, 0.42, 0.05, 0.97, 0.66]
    report = performance(labelled([0, 1, 2, 3, 4, 5], y, p), start=START, end=START + timedelta(seconds=6),
                         window_s=6)  # fmt: skip
    assert report.task == "classification"
    window = report.windows[0]
    assert window.metrics == pytest.approx({
        **by_sklearn(y, [int(q >= 0.5) for q in p]),
        "roc_auc": skm.roc_auc_score(y, p),
        "log_loss": skm.log_loss(y, p),
    })  # fmt: skip
    assert "out.prediction holds probabilities of class 1: the predicted class is p >= 0.5" in window.notes
    explicit = performance(labelled([0, 1, 2, 3, 4, 5], y, p), start=START, end=START + timedelta(seconds=6),
                           window_s=6, task="regression")  # fmt: skip
    assert explicit.windows[0].metrics["mae"] == pytest.approx(skm.mean_absolute_error(y, p))


def test_regression_metrics_equal_sklearns() -> None:
    y = [3.5, 1.25, 7.0, 2.0, 10.5]
    p = [3.0, 1.5, 6.0, 2.5, 12.0]
    report = performance(labelled([0, 1, 2, 3, 4], y, p), start=START, end=START + timedelta(seconds=5),
                         window_s=5)  # fmt: skip
    assert report.task == "regression"
    assert report.windows[0].metrics == pytest.approx({
        "rmse": skm.root_mean_squared_error(y, p),
        "mae": skm.mean_absolute_error(y, p),
        "mape": skm.mean_absolute_percentage_error(y, p),
    })  # fmt: skip
    assert report.windows[0].notes == ()


def test_mape_is_none_when_a_label_is_zero() -> None:
    y, p = [0.0, 2.5, 4.5], [0.5, 2.0, 5.0]
    window = performance(labelled([0, 1, 2], y, p), start=START, end=START + timedelta(seconds=3),
                         window_s=3).windows[0]  # fmt: skip
    assert window.metrics["mape"] is None
    assert window.metrics["rmse"] == pytest.approx(skm.root_mean_squared_error(y, p))
    assert "mape undefined: 1 label(s) are 0 (it divides by the label)" in window.notes


def test_the_task_is_inferred_from_the_labels_and_an_explicit_task_wins() -> None:
    span = {"start": START, "end": START + timedelta(seconds=4), "window_s": 4}
    counts = labelled([0, 1, 2, 3], [0, 2, 1, 2], [0, 2, 2, 2])
    assert performance(counts, **span).task == "classification"
    assert set(performance(counts, task="regression", **span).windows[0].metrics) == set(REGRESSION_METRICS)
    many = labelled([0, 1, 2, 3], [0.5, 2.25, 1.0, 2.0], [0.0, 2.0, 1.0, 2.0])
    assert performance(many, **span).task == "regression"
    with pytest.raises(InvalidInput, match="fractional") as caught:
        performance(many, task="classification", **span)
    assert caught.value.details["field"] == "task"
    with pytest.raises(InvalidInput, match="labels are text"):
        performance(labelled([0], ["a"], ["a"]), task="regression", **span)


def test_error_rows_and_shadow_answers_are_left_out_with_a_note_unless_the_version_is_named() -> None:
    table = labelled(
        [0, 1, 2, 3],
        [1, 0, 1, 1],
        [1, 0, 0, 0],
        status=[200, 200, 500, 200],
        role=["stable", "stable", "stable", "shadow"],
        version=["1.0.0", "1.0.0", "1.0.0", "2.0.0"],
    )
    span = {"start": START, "end": START + timedelta(seconds=4), "window_s": 4}
    window = performance(table, **span).windows[0]
    assert (window.labelled, window.metrics["accuracy"]) == (2, 1.0)
    assert "1 row(s) answered with an error status (>= 400) left out" in window.notes
    assert "1 shadow answer(s) left out (pass version= to judge a shadow)" in window.notes
    shadow = performance(table, version="2.0.0", **span).windows[0]
    assert (shadow.labelled, shadow.metrics["accuracy"]) == (1, 0.0)


def test_registered_metrics_are_copied_and_lined_up_with_the_window_metrics() -> None:
    table = labelled([0, 1], [0, 1], [0, 1])
    report = performance(table, start=START, end=START + timedelta(seconds=2), window_s=2,
                         registered={"test_roc_auc": 0.91, "accuracy": 0.88, "val_accuracy": 0.5,
                                     "note": "text", "nan": float("nan")})  # type: ignore[dict-item]  # fmt: skip
    assert report.registered == {"test_roc_auc": 0.91, "roc_auc": 0.91, "accuracy": 0.88, "val_accuracy": 0.5}
    assert registered_metrics({"auc": 0.7}) == {"auc": 0.7, "roc_auc": 0.7}
    again = PerformanceReport.from_json(report.to_json())
    assert again == report


def test_a_table_with_no_rows_or_no_predictions_gives_notes_not_a_crash() -> None:
    empty = pa.table({"at": pa.array([], pa.timestamp("ms", tz="UTC")), "label": pa.array([], pa.string())})
    report = performance(empty, start=START, end=START + timedelta(minutes=2), window_s=60)
    assert [w.labelled for w in report.windows] == [0, 0]
    assert all(v is None for v in report.overall.values())
    unanswered = labelled([0, 1], [1, 0])  # labels joined to rows whose model logged no out.prediction
    window = performance(unanswered, start=START, end=START + timedelta(minutes=1), window_s=60).windows[0]
    assert window.labelled == 2 and window.metrics["accuracy"] is None
    assert "no predictions (out.prediction) to compare with the labels" in window.notes


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"window_s": 0}, "window_s"),
        ({"end": START}, "end"),
        ({"task": "ranking"}, "task"),
        ({"window_s": 1, "end": START + timedelta(days=1)}, "window_s"),  # 86,400 windows
        ({"unmatched_labels": -1}, "unmatched_labels"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(options: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"start": START, "end": START + timedelta(hours=1), "window_s": 60, **options}
    with pytest.raises(InvalidInput) as caught:
        performance(labelled([0], [1], [1]), **arguments)
    assert caught.value.details["field"] == field


def test_a_table_without_labels_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no 'label' column"):
        performance(pa.table({"at": pa.array([0], pa.timestamp("ms", tz="UTC"))}), start=START,
                    end=START + timedelta(hours=1), window_s=60)  # fmt: skip


# -- on the real prediction log -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(str(tmp_path / "artifacts"))


@pytest.fixture
def log(store: LogStore) -> Iterator[PredictionLog]:
    log = PredictionLog(store, flush_interval=0.05)
    yield log
    log.close()


def test_labels_from_the_log_give_windows_with_answered_and_labelled_counts_and_unmatched_labels(
    log: PredictionLog, store: LogStore
) -> None:
    # The join counts a label unmatched when it was recorded in the span: the span ends after now.
    now = now_ms()
    start_ms = now - now % 60_000 - 30 * 60_000
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = start + timedelta(minutes=31)
    proba = [0.9, 0.2, 0.7, 0.4, 0.8, 0.1, 0.6, 0.3]
    minutes = [1, 2, 3, 11, 12, 13, 21, 22]  # windows of 10 minutes: 3, 3, 2, and a short last one
    for i, (p, minute) in enumerate(zip(proba, minutes, strict=True)):
        log.offer(record(f"q{i}", at_ms=start_ms + minute * 60_000, inputs=pd.DataFrame({"age": [30 + i]}),
                         outputs=np.array([[1 - p, p]])))  # fmt: skip  # a predict_proba answer
    log.offer(record("unlabelled", at_ms=start_ms + 60_000, inputs=pd.DataFrame({"age": [50]}),
                     outputs=np.array([[0.5, 0.5]])))  # fmt: skip
    log.offer(record("failed", at_ms=start_ms + 60_000, status=500))
    assert log.flush(GUARD)
    truth = [1, 0, 0, 1, 1, 1, 1, 0]
    log_labels(store, [f"q{i}" for i in range(8)] + ["ghost", "failed"], [*truth, 1, 0], endpoint="churn")

    report = performance_for_endpoint(store, "churn", start=start, end=end, window_s=600,
                                      registered={"test_roc_auc": 0.9})  # fmt: skip
    assert report.unmatched_labels == 1  # ghost; "failed" matched an (error) row and is left out
    assert [(w.predictions, w.labelled) for w in report.windows] == [(4, 3), (3, 3), (2, 2), (0, 0)]
    assert report.windows[-1].end == end and report.windows[-1].start == start + timedelta(minutes=30)
    first = report.windows[0]
    predicted = [int(p > 0.5) for p in proba]
    assert first.metrics == pytest.approx({
        **by_sklearn(truth[:3], predicted[:3]),
        "roc_auc": skm.roc_auc_score(truth[:3], proba[:3]),
        "log_loss": skm.log_loss(truth[:3], [[1 - p, p] for p in proba[:3]], labels=[0, 1]),
    })  # fmt: skip
    assert "1 row(s) answered with an error status (>= 400) left out" in first.notes
    second = report.windows[1]  # labels 1, 1, 1
    assert (
        second.metrics["roc_auc"] is None
        and "roc_auc undefined: one class only among the labels" in second.notes
    )
    assert report.overall["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, proba))
    assert report.registered["roc_auc"] == 0.9
    # the same numbers through performance() on the join
    table = labelled_predictions(store, "churn", start, end)
    assert performance(table, start=start, end=end, window_s=600).overall == report.overall
