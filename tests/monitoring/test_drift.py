"""Tests of steward.monitoring.drift and .multivariate: scores, default tests, verdicts and edge cases."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from steward.errors import InvalidInput
from steward.monitoring.drift import DEFAULT_THRESHOLDS, compare, default_test, drift
from steward.monitoring.models import DriftOptions, DriftReport
from steward.monitoring.multivariate import domain_classifier_auc
from steward.monitoring.summaries import merge, reference_summary, summarize

VALUES = np.array([f"value_{i}" for i in range(8)])
CHANGED = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
SHIFTED = {f"num_{i}" for i in range(10)} | {f"cat_{i}" for i in range(3)}


def scenario(rows: int, seed: int, shifted: bool) -> pa.Table:
    """40 numeric and 10 categorical columns; when shifted, 10 numeric move by +0.3 sd and 3 categorical
    change their distribution."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(40):
        columns[f"num_{i}"] = rng.normal(0.3 if shifted and i < 10 else 0.0, 1.0, rows)
    for i in range(10):
        p = CHANGED if shifted and i < 3 else np.full(8, 1 / 8)
        columns[f"cat_{i}"] = VALUES[rng.choice(8, rows, p=p)]
    return pa.table(columns)


def strict_json(report: DriftReport) -> str:
    """The report as JSON that refuses NaN and inf: no number in it may be either."""
    return json.dumps(report.to_json(), allow_nan=False)


# -- the headline scenario ------------------------------------------------------------------------------


def test_default_tests_flag_exactly_the_shifted_columns() -> None:
    report = drift(scenario(20_000, 1, False), scenario(20_000, 2, True))
    assert set(report.drifted_columns) == SHIFTED
    assert report.drift_share == pytest.approx(13 / 50)
    assert report.dataset_drift is False and report.share == 0.5
    assert {f.test for f in report.features if f.kind == "numeric"} == {"wasserstein"}
    assert {f.test for f in report.features if f.kind == "categorical"} == {"jensenshannon"}
    shifted = report.feature("num_0")
    assert shifted is not None and shifted.statistic == pytest.approx(0.3, abs=0.03)
    assert shifted.threshold == 0.1 and shifted.p_value is None
    assert drift(
        scenario(20_000, 1, False), scenario(20_000, 2, True), DriftOptions(share=0.25)
    ).dataset_drift
    strict_json(report)


def test_the_same_distribution_does_not_drift() -> None:
    report = drift(scenario(5000, 3, False), scenario(5000, 4, False))
    assert report.drifted_columns == [] and report.drift_share == 0.0


def test_small_references_use_ks_and_chisquare() -> None:
    assert default_test("numeric", 1000) == "ks" and default_test("numeric", 1001) == "wasserstein"
    assert (
        default_test("categorical", 999) == "chisquare"
        and default_test("categorical", 5000) == "jensenshannon"
    )
    rng = np.random.default_rng(5)
    reference = pa.table(
        {"x": rng.normal(size=500), "y": rng.normal(size=500), "s": rng.choice(["a", "b"], 500)}
    )
    current = pa.table(
        {
            "x": rng.normal(1.0, 1, 400),
            "y": rng.normal(size=400),
            "s": rng.choice(["a", "b"], 400, p=[0.9, 0.1]),
        }
    )
    report = drift(reference, current)
    x, y, s = (report.feature(c) for c in ("x", "y", "s"))
    assert x is not None and y is not None and s is not None
    assert (x.test, s.test) == ("ks", "chisquare")
    assert x.drifted and x.p_value is not None and x.p_value < 1e-6
    assert not y.drifted and y.p_value is not None and y.p_value > 0.05
    assert s.drifted and s.statistic is not None and s.statistic > 100


# -- scores against scipy on the raw data ---------------------------------------------------------------


def summaries_of(reference: np.ndarray, current: np.ndarray, bins: int = 100) -> DriftReport:
    ref = reference_summary(pa.table({"x": reference}), bins=bins)
    return compare(ref, summarize(pa.table({"x": current}), ref))


def test_ks_is_a_close_lower_bound_of_scipy_ks_2samp() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(0, 1, 5000), rng.normal(0.2, 1.1, 4000)
    ref = reference_summary(pa.table({"x": x}))
    cur = summarize(pa.table({"x": y}), ref)
    ks = compare(ref, cur).features[0].scores["ks"]
    exact = stats.ks_2samp(x, y).statistic
    p = np.array(ref.columns["x"].counts) / len(x)
    q = np.array(cur.columns["x"].counts) / len(y)
    bound = np.maximum(p, q).max()  # the documented error bound
    assert ks is not None and ks <= exact + 1e-12 and exact - ks <= bound
    assert exact - ks < 0.01


@pytest.mark.parametrize(("n", "m"), [(300, 200), (800, 900), (40_000, 30_000)])
def test_ks_and_its_p_value_match_scipy_when_every_value_has_a_bin(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.binomial(20, 0.5, n).astype(float)
    y = rng.binomial(20, 0.52, m).astype(float)
    feature = summaries_of(x, y, bins=100).features[0]
    expected = stats.ks_2samp(x, y, method="asymp")
    assert feature.scores["ks"] == pytest.approx(expected.statistic, abs=1e-12)
    assert feature.scores["ks_p_value"] == pytest.approx(expected.pvalue, rel=0.02, abs=1e-12)


def test_normalised_wasserstein_matches_scipy_within_the_bound() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(5, 2, 8000), rng.normal(5.4, 2.5, 6000)
    ref = reference_summary(pa.table({"x": x}))
    cur = summarize(pa.table({"x": y}), ref)
    value = compare(ref, cur).features[0].scores["wasserstein"]
    exact = stats.wasserstein_distance(x, y) / np.std(x)
    assert value is not None and abs(value - exact) < 0.01
    edges = np.array(ref.columns["x"].edges)
    points = np.concatenate([[min(x.min(), y.min())], edges, [max(x.max(), y.max())]])
    p = np.array(ref.columns["x"].counts) / len(x)
    q = np.array(cur.columns["x"].counts) / len(y)
    assert abs(value - exact) <= np.sum(np.diff(points) * (p + q)) / np.std(x)


def test_numeric_psi_and_jensenshannon_are_over_the_reference_deciles() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.gamma(2.0, 1.0, 6000), rng.gamma(2.4, 1.0, 5000)
    ref = reference_summary(pa.table({"x": x}), bins=10)
    feature = compare(ref, summarize(pa.table({"x": y}), ref)).features[0]
    ordered = np.sort(x)
    deciles = ordered[(np.linspace(0, 1, 11) * (len(x) - 1)).astype(int)]  # as the summary places them
    assert set(deciles) <= set(ref.columns["x"].edges)
    p = np.histogram(x, deciles)[0] / len(x)
    q = np.histogram(np.clip(y, deciles[0], deciles[-1]), deciles)[0] / len(y)
    p, q = np.where(p > 0, p, 1e-4), np.where(q > 0, q, 1e-4)
    assert feature.scores["psi"] == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-9)
    assert feature.scores["jensenshannon"] == pytest.approx(jensenshannon(p, q, base=2), rel=1e-6)


def test_categorical_scores_match_scipy() -> None:
    rng = np.random.default_rng(9)
    x = rng.choice(["a", "b", "c", "d"], 3000, p=[0.4, 0.3, 0.2, 0.1])
    y = rng.choice(["a", "b", "c", "e"], 2000, p=[0.35, 0.35, 0.2, 0.1])
    ref = reference_summary(pa.table({"s": x}))
    feature = compare(ref, summarize(pa.table({"s": y}), ref)).features[0]
    table = np.array([ref.columns["s"].counts, summarize(pa.table({"s": y}), ref).columns["s"].counts])
    assert table[1, -1] == (y == "e").sum()  # the unseen value is OTHER
    table = table[:, table.sum(axis=0) > 0]
    chi, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert feature.scores["chisquare"] == pytest.approx(chi)
    assert feature.scores["chisquare_p_value"] == pytest.approx(p_value)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert feature.scores["jensenshannon"] == pytest.approx(jensenshannon(p, q, base=2))
    pe, qe = np.where(p > 0, p, 1e-4), np.where(q > 0, q, 1e-4)
    assert feature.scores["psi"] == pytest.approx(np.sum((qe - pe) * np.log(qe / pe)))


# -- summaries of windows ---------------------------------------------------------------------------------


def test_a_report_from_thirty_merged_windows_equals_one_over_all_their_rows() -> None:
    reference = reference_summary(scenario(6000, 10, False))
    tables = [scenario(400, 100 + day, day >= 15) for day in range(30)]
    merged = compare(reference, merge([summarize(t, reference) for t in tables]))
    whole = compare(reference, summarize(pa.concat_tables(tables), reference))
    assert merged.drifted_columns == whole.drifted_columns and merged.drifted_columns
    assert merged.drift_share == whole.drift_share
    for a, b in zip(merged.features, whole.features, strict=True):
        assert (a.column, a.test, a.drifted, a.current_count) == (
            b.column,
            b.test,
            b.drifted,
            b.current_count,
        )
        assert a.scores == pytest.approx(b.scores, rel=1e-9)


def test_stored_summaries_compare_after_a_json_round_trip() -> None:
    reference = reference_summary(scenario(3000, 11, False))
    window = summarize(scenario(3000, 12, True), reference)
    again = [type(s).from_json(json.loads(json.dumps(s.to_json()))) for s in (reference, window)]
    assert compare(*again).to_json() == compare(reference, window).to_json()


def test_summaries_of_different_references_are_refused() -> None:
    first = reference_summary(pa.table({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]}))
    second = reference_summary(pa.table({"x": [1.0, 5.0, 9.0], "s": ["c", "c", "b"]}))
    with pytest.raises(InvalidInput, match="'x'") as info:
        compare(first, second)
    assert info.value.details == {"column": "x", "field": "edges"}
    with pytest.raises(InvalidInput, match="categories"):
        compare(first, second, DriftOptions(columns=["s"]))


# -- edge cases: a documented result, never a NaN ------------------------------------------------------


def test_an_empty_window_has_no_verdict() -> None:
    reference = scenario(2000, 13, False)
    report = drift(reference, reference.slice(0, 0))
    assert report.drift_share is None and report.dataset_drift is False and report.current_rows == 0
    assert any("empty" in n for n in report.notes)
    assert all(f.note == "empty window" and f.statistic is None and not f.drifted for f in report.features)
    assert len(report.features) == 50
    strict_json(report)
    empty_reference = drift(reference.slice(0, 0), reference)
    assert (
        empty_reference.drift_share is None
        and "the reference is empty (0 rows): no verdict" in empty_reference.notes
    )
    strict_json(empty_reference)


def test_an_all_null_column_is_noted_and_left_out_of_the_share() -> None:
    rng = np.random.default_rng(14)
    reference = pa.table(
        {"x": rng.normal(size=3000), "z": rng.normal(size=3000), "s": rng.choice(["a"], 3000)}
    )
    current = pa.table(
        {"x": rng.normal(2, 1, 2000), "z": pa.nulls(2000, pa.float64()), "s": pa.nulls(2000, pa.string())}
    )
    report = drift(reference, current)
    z, s = report.feature("z"), report.feature("s")
    assert z is not None and s is not None
    assert z.note == "no non-null values in the current window: not compared" and not z.drifted
    assert z.statistic is None and all(v is None for v in z.scores.values())
    assert s.current_count == 0 and not s.drifted
    assert report.drift_share == 1.0  # x drifted; z and s could not be compared
    all_null_reference = drift(pa.table({"x": pa.nulls(10, pa.float64())}), pa.table({"x": [1.0, 2.0]}))
    assert all_null_reference.features[0].note == "no non-null values in the reference: not compared"
    assert all_null_reference.drift_share is None
    strict_json(report)
    strict_json(all_null_reference)


def test_a_constant_reference_column_drifts_when_the_window_has_other_values() -> None:
    reference = pa.table({"c": [3.0] * 2000})
    same = drift(reference, pa.table({"c": [3.0] * 500})).features[0]
    assert not same.drifted and same.note == "constant (3) in the reference and in the current window"
    assert same.statistic is None and same.scores["wasserstein"] is None  # no spread to normalise by
    other = drift(reference, pa.table({"c": [3.0] * 499 + [4.0]})).features[0]
    assert other.drifted and "0.20% of the current values differ" in other.note
    assert other.scores["ks"] == pytest.approx(0.002)
    small = drift(pa.table({"c": [3.0] * 50}), pa.table({"c": [2.0, 3.0]})).features[0]
    assert small.test == "ks" and small.drifted and small.statistic == pytest.approx(0.5)
    strict_json(drift(reference, pa.table({"c": [3.0] * 499 + [4.0]})))


def test_huge_values_still_give_finite_scores() -> None:
    rng = np.random.default_rng(15)
    reference = pa.table({"x": rng.normal(0, 1e200, 3000)})
    report = drift(reference, pa.table({"x": rng.normal(3e199, 1e200, 3000)}))
    feature = report.features[0]
    assert feature.scores["wasserstein"] == pytest.approx(0.3, abs=0.05)  # the spread came from the bins
    strict_json(report)


def test_columns_on_one_side_only_are_named_in_the_notes() -> None:
    reference = pa.table({"x": [1.0, 2.0, 3.0], "gone": [1, 2, 3]})
    current = pa.table({"x": [1.0, 2.0], "new": ["a", "b"]})
    report = drift(reference, current)
    assert [f.column for f in report.features] == ["x"]
    assert "column 'gone' is only in the reference: not compared" in report.notes
    assert "column 'new' is only in the current window: not compared" in report.notes
    summary_report = compare(reference_summary(reference), summarize(current, reference_summary(reference)))
    assert "column 'gone' is only in the reference: not compared" in summary_report.notes
    chosen = drift(reference, current, DriftOptions(columns=["x", "new", "nowhere"]))
    assert "column 'new' is only in the current window: not compared" in chosen.notes
    assert "column 'nowhere' is in neither table: not compared" in chosen.notes


def test_columns_of_other_types_are_noted_and_kind_changes_refused() -> None:
    reference = pa.table({"x": [1.0, 2.0], "at": pa.array([dt.datetime(2026, 1, 1)] * 2)})
    report = drift(reference, reference)
    assert [f.column for f in report.features] == ["x"]
    assert any("'at'" in n and "not numeric or categorical" in n for n in report.notes)
    with pytest.raises(InvalidInput, match="'x'"):
        drift(reference, pa.table({"x": ["a", "b"]}))


# -- options --------------------------------------------------------------------------------------------


def test_thresholds_override_by_test_and_by_column() -> None:
    reference, current = scenario(5000, 16, False), scenario(5000, 17, True)
    lenient = drift(reference, current, DriftOptions(thresholds={"wasserstein": 0.5}))
    assert set(lenient.drifted_columns) == {"cat_0", "cat_1", "cat_2"}
    one = drift(reference, current, DriftOptions(thresholds={"wasserstein": 0.5, "num_0": 0.2}))
    assert set(one.drifted_columns) == {"num_0", "cat_0", "cat_1", "cat_2"}
    feature = one.feature("num_0")
    assert feature is not None and feature.threshold == 0.2
    strict = drift(reference, current, DriftOptions(thresholds={"jensenshannon": 0.0}))
    assert len(strict.drifted_columns) == 20  # every categorical column is a little apart


def test_tests_override_per_column() -> None:
    reference, current = scenario(5000, 18, False), scenario(5000, 19, True)
    options = DriftOptions(tests={"num_0": "psi", "num_20": "ks", "cat_0": "chisquare", "cat_5": "psi"})
    report = drift(reference, current, options)
    psi, ks, chi = report.feature("num_0"), report.feature("num_20"), report.feature("cat_0")
    assert psi is not None and ks is not None and chi is not None
    assert (
        psi.test == "psi"
        and psi.threshold == DEFAULT_THRESHOLDS["psi"]
        and psi.statistic == psi.scores["psi"]
    )
    assert (
        psi.statistic == pytest.approx(0.09, abs=0.03) and not psi.drifted
    )  # PSI is milder on a 0.3 sd shift
    assert psi.p_value is None
    assert ks.test == "ks" and ks.p_value == ks.scores["ks_p_value"] and not ks.drifted
    assert chi.test == "chisquare" and chi.drifted and chi.p_value is not None and chi.p_value < 1e-10
    very_strict = drift(reference, current, DriftOptions(tests={"num_20": "ks"}, thresholds={"ks": 1.0}))
    assert "num_20" in very_strict.drifted_columns  # any p-value is below 1
    sensitive = drift(reference, current, DriftOptions(tests={"num_0": "psi"}, thresholds={"psi": 0.05}))
    assert "num_0" in sensitive.drifted_columns


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (DriftOptions(tests={"x": "t-test"}), "tests.x"),
        (DriftOptions(tests={"x": "chisquare"}), "tests.x"),
        (DriftOptions(tests={"s": "wasserstein"}), "tests.s"),
        (DriftOptions(thresholds={"psi": float("nan")}), "thresholds.psi"),
        (DriftOptions(thresholds={"x": -1.0}), "thresholds.x"),
        (DriftOptions(share=0.0), "share"),
        (DriftOptions(share=1.5), "share"),
    ],
)
def test_bad_options_are_refused_with_the_field(options: DriftOptions, field: str) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "a"]})
    with pytest.raises(InvalidInput) as info:
        drift(table, table, options)
    assert info.value.details["field"] == field


def test_unknown_columns_in_tests_are_noted() -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0]})
    report = drift(table, table, DriftOptions(tests={"y": "psi"}))
    assert "options.tests names column 'y', which the reference does not have" in report.notes


def test_outputs_are_prediction_drift_outside_the_share() -> None:
    rng = np.random.default_rng(20)
    reference = pa.table({"x": rng.normal(size=3000), "score": rng.uniform(size=3000)})
    current = pa.table({"x": rng.normal(size=3000), "score": rng.uniform(0.3, 1.0, size=3000)})
    report = drift(reference, current, outputs=["score"])
    assert [f.column for f in report.features] == ["x"] and report.drift_share == 0.0
    assert [f.column for f in report.prediction] == ["score"] and report.prediction[0].drifted
    assert report.feature("score") is report.prediction[0]


# -- multivariate -----------------------------------------------------------------------------------------


def correlated(rows: int, rho: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=rows)
    c = rng.choice(["u", "v", "w", None], rows)
    return pa.table({"a": a, "b": b, "c": pa.array(c, pa.string())})


def test_the_domain_classifier_cannot_tell_the_same_distribution_apart() -> None:
    result = domain_classifier_auc(
        correlated(8000, 0.8, 21), correlated(8000, 0.8, 22), ["a", "b", "c"], rows=3000
    )
    assert result["roc_auc"] == pytest.approx(0.5, abs=0.04)
    assert result["drifted"] is False and result["threshold"] == 0.55 and result["rows"] == 6000


def test_the_domain_classifier_sees_a_flipped_correlation_the_marginals_hide() -> None:
    reference, current = correlated(4000, 0.8, 23), correlated(4000, -0.8, 24)
    report = drift(reference, current, DriftOptions(multivariate=True, multivariate_rows=3000))
    assert report.drifted_columns == []  # each column alone looks the same
    assert report.multivariate is not None
    assert report.multivariate["roc_auc"] > 0.7 and report.multivariate["drifted"] is True
    assert report.multivariate["columns"] == ["a", "b", "c"]
    strict_json(report)


def test_the_domain_classifier_needs_rows_and_columns() -> None:
    table = correlated(100, 0.0, 25)
    empty = drift(table, table.slice(0, 0), DriftOptions(multivariate=True))
    assert empty.multivariate is not None and empty.multivariate["roc_auc"] is None
    assert empty.multivariate["drifted"] is False and "no column" in empty.multivariate["note"]
    result = domain_classifier_auc(table, table.slice(0, 0), ["a"])
    assert result["roc_auc"] is None and result["drifted"] is False and "fewer than 3 rows" in result["note"]
    with pytest.raises(InvalidInput, match="at least one column"):
        domain_classifier_auc(table, table, [])
    with pytest.raises(InvalidInput, match="'zz'"):
        domain_classifier_auc(table, table, ["zz"])
    with pytest.raises(InvalidInput, match="threshold"):
        domain_classifier_auc(table, table, ["a"], threshold=0.3)


@settings(max_examples=80, deadline=None)
@given(
    reference=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=40),
    current=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=40),
    labels=st.lists(st.one_of(st.none(), st.sampled_from("abc")), min_size=0, max_size=40),
)
@example(reference=[0.0, 1.1125369292536007e-308], current=[1.0], labels=[])  # a subnormal spread
def test_no_input_yields_nan_or_inf_in_a_report(
    reference: list[float | None], current: list[float | None], labels: list[str | None]
) -> None:
    def table(values: list[float | None], n: int) -> pa.Table:
        cut = labels[:n] + [None] * (n - len(labels[:n]))
        return pa.table({"x": pa.array(values, pa.float64()), "s": pa.array(cut, pa.string())})

    report = drift(table(reference, len(reference)), table(current, len(current)))
    strict_json(report)
    for feature in report.features:
        assert feature.drifted in (True, False)
        assert feature.statistic is not None or feature.note
