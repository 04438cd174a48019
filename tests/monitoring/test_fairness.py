"""Fairness: per-group rates and the gaps between groups on a hand-computed example, the keys the policy
gate reads, and the same figures from labelled predictions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from steward.config import load_settings
from steward.errors import InvalidInput
from steward.governance.policy import evaluate, parse_policy
from steward.monitoring.fairness import fairness, fairness_from_table, fairness_metrics
from steward.monitoring.models import NULL, FairnessReport
from steward.registry import gates
from steward.registry.models import VersionSpec
from steward.registry.service import RegistryService
from steward.serving.labels import labelled_predictions, log_labels
from steward.serving.prediction_log import PredictionLog
from steward.store.platform import Platform
from steward.tracking.service import TrackingService
from tests.serving.test_prediction_log import GUARD, record

# Group a: labels 1 1 0 0, predictions 1 0 0 0 -> selection 1/4, TPR 1/2, FPR 0/2, accuracy 3/4
# Group b: labels 1 1 1 0, predictions 1 1 1 1 -> selection 4/4, TPR 3/3, FPR 1/1, accuracy 3/4
# Group c: labels 1 1,     predictions 1 0     -> selection 1/2, TPR 1/2, FPR none, accuracy 1/2
Y_TRUE = [1, 1, 0, 0, 1, 1, 1, 0, 1, 1]
Y_PRED = [1, 0, 0, 0, 1, 1, 1, 1, 1, 0]
GROUPS = ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c"]


def test_per_group_rates_and_gaps_match_a_hand_count() -> None:
    report = fairness(Y_TRUE, Y_PRED, GROUPS, attribute="region")
    assert report.attribute == "region"
    assert report.groups == {
        "a": {"count": 4, "selection_rate": 0.25, "true_positive_rate": 0.5, "false_positive_rate": 0.0,
              "accuracy": 0.75},
        "b": {"count": 4, "selection_rate": 1.0, "true_positive_rate": 1.0, "false_positive_rate": 1.0,
              "accuracy": 0.75},
        "c": {"count": 2, "selection_rate": 0.5, "true_positive_rate": 0.5, "false_positive_rate": None,
              "accuracy": 0.5},
    }  # fmt: skip
    assert report.demographic_parity_difference == 0.75  # 1 - 1/4
    assert report.demographic_parity_ratio == 0.25  # (1/4) / 1
    assert report.equalized_odds_difference == 1.0  # TPR gap 1 - 1/2, FPR gap 1 - 0 over a and b
    assert "false_positive_rate undefined for c (no negative labels): skipped for its gap" in report.notes
    assert FairnessReport.from_json(report.to_json()) == report


def test_the_positive_outcome_can_be_any_value_and_missing_rows_are_left_out() -> None:
    truth = ["approve", "deny", "approve", None, "deny"]
    predicted = ["approve", "approve", "deny", "approve", "deny"]
    report = fairness(truth, predicted, ["x", "x", "y", "y", None], attribute="g", positive="approve")
    assert set(report.groups) == {"x", "y", NULL}
    assert report.groups["x"]["selection_rate"] == 1.0 and report.groups["y"]["selection_rate"] == 0.0
    assert report.demographic_parity_difference == 1.0
    assert report.demographic_parity_ratio == 0.0
    assert "1 row(s) without a label or a prediction left out" in report.notes


def test_no_positive_prediction_leaves_the_ratio_undefined_and_a_missing_positive_is_noted() -> None:
    report = fairness([0, 0, 0, 0], [0, 0, 0, 0], ["a", "a", "b", "b"], attribute="g")
    assert (report.demographic_parity_difference, report.demographic_parity_ratio) == (0.0, None)
    assert report.equalized_odds_difference is None  # no group has a positive label: no TPR gap
    assert "the positive value 1 occurs in neither the labels nor the predictions" in report.notes
    assert "demographic_parity_ratio undefined: no group has a positive prediction" in report.notes


def test_bad_input_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        fairness([1, 0], [1], ["a", "b"], attribute="g")
    assert caught.value.details["field"] == "y_pred"
    with pytest.raises(InvalidInput) as caught:
        fairness([1, 0], [1, 0], np.zeros((2, 2)), attribute="g")
    assert caught.value.details["field"] == "groups"
    empty = fairness([], [], [], attribute="g")
    assert empty.groups == {} and empty.demographic_parity_difference is None and "no rows" in empty.notes


def test_fairness_metrics_carry_the_keys_a_policy_rule_reads() -> None:
    found = fairness_metrics(Y_TRUE, Y_PRED, GROUPS)
    assert found == {
        "fairness.demographic_parity_difference": 0.75,
        "fairness.demographic_parity_ratio": 0.25,
        "fairness.equalized_odds_difference": 1.0,
    }
    policy = parse_policy(
        "name: fair\nrules:\n  - fairness.demographic_parity_difference <= 0.1\n"
        "  - fairness.demographic_parity_ratio >= 0.2\n"
    )
    verdict = evaluate(policy, {"fairness": {k.removeprefix("fairness."): v for k, v in found.items()}})
    assert [(r.passed, r.actual) for r in verdict.results] == [(False, 0.75), (True, 0.25)]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryService]:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    yield RegistryService(platform, TrackingService(platform))
    platform.close()


def test_the_gate_judges_the_fairness_logged_with_a_version(
    registry: RegistryService, tmp_path: Path
) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"weights")
    fair = fairness_metrics([1, 0, 1, 0], [1, 0, 0, 1], ["a", "a", "b", "b"])  # both groups select 1/2
    skewed = fairness_metrics(Y_TRUE, Y_PRED, GROUPS)
    unknown = fairness_metrics([0, 0], [0, 0], ["a", "b"])  # nobody selected: no ratio
    policy = parse_policy(
        "name: fair\nrules:\n  - fairness.demographic_parity_difference <= 0.1\n"
        "  - fairness.demographic_parity_ratio >= 0.8\n"
    )
    outcomes = []
    for metrics in (fair, skewed, unknown):
        upload = registry.upload_file("churn", weights, "model.bin")
        version = registry.create_version("churn", VersionSpec(flavor="sklearn", files=[upload],
                                                               metrics={"auc": 0.9, **metrics}))  # fmt: skip
        facts = gates.gather(registry, version, "production")
        verdict = evaluate(policy, facts)
        outcomes.append([(r.passed, r.actual, r.message) for r in verdict.results])
    assert outcomes[0] == [(True, 0.0, ""), (True, 1.0, "")]
    assert outcomes[1] == [(False, 0.75, ""), (False, 0.25, "")]
    assert outcomes[2] == [
        (True, 0.0, ""),
        (False, None, "no value recorded for fairness.demographic_parity_ratio"),  # never a NaN passing
    ]


def test_fairness_from_a_labelled_table_reads_the_input_column_and_maps_score_indexes() -> None:
    n = len(Y_TRUE)
    labels = ["yes" if y else "no" for y in Y_TRUE]
    table = pa.table({
        "at": pa.array(np.arange(n + 2) * 1000, pa.timestamp("ms", tz="UTC")),
        "role": ["stable"] * n + ["shadow", "stable"],
        "status": pa.array([200] * n + [200, 500], pa.int32()),
        "in.region": [*GROUPS, "a", "b"],
        "out.prediction": pa.array([*Y_PRED, 1, 1], pa.int64()),  # the index of the highest score
        "out.scores": pa.array([[1.0 - p, float(p)] for p in [*Y_PRED, 1, 1]], pa.list_(pa.float64())),
        "label": [*labels, "no", "no"],
    })  # fmt: skip
    report = fairness_from_table(table, "region", positive="yes")
    assert report.groups == fairness(Y_TRUE, Y_PRED, GROUPS, attribute="region").groups
    assert report.equalized_odds_difference == 1.0
    with pytest.raises(InvalidInput, match=r"in\.sex") as caught:
        fairness_from_table(table, "sex")
    assert caught.value.details["field"] == "attribute"


def test_fairness_over_an_input_column_of_the_real_prediction_log(tmp_path: Path) -> None:
    with PredictionLog(str(tmp_path / "artifacts"), flush_interval=0.05) as log:
        for i, (group, predicted) in enumerate(zip(GROUPS, Y_PRED, strict=True)):
            inputs = pd.DataFrame({"age": [30 + i], "region": [group]})
            log.offer(record(f"r{i}", inputs=inputs, outputs=np.array([predicted])))
        assert log.flush(GUARD)
        log_labels(log.store, [f"r{i}" for i in range(len(Y_TRUE))], Y_TRUE, endpoint="churn")
    report = fairness_from_table(labelled_predictions(log.store, "churn"), "region")
    assert report == fairness(Y_TRUE, Y_PRED, GROUPS, attribute="region")
