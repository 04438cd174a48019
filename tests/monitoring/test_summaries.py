"""Tests of steward.monitoring.summaries: reference profiles, windows counted into them, and merges."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.errors import InvalidInput
from steward.monitoring.models import ColumnSummary, TableSummary
from steward.monitoring.summaries import (
    FLOAT_MAX,
    QUANTILE_SAMPLE,
    column_kind,
    merge,
    reference_summary,
    summarize,
)


def expected_counts(values: np.ndarray, edges: tuple[float, ...]) -> list[int]:
    """The contract of ColumnSummary.counts, written the slow obvious way."""
    finite = values[np.isfinite(values)]
    e = np.asarray(edges)
    bins = np.searchsorted(e, finite, side="right")
    if len(e) >= 2:
        bins[finite == e[-1]] -= 1  # the last inner bin is closed
    return np.bincount(bins, minlength=len(e) + 1).tolist()


def test_numeric_reference_bins_at_quantiles_between_min_and_max() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(10, 2, 5000)
    summary = reference_summary(pa.table({"x": values}), bins=20).columns["x"]
    assert summary.kind == "numeric"
    assert summary.edges[0] == values.min() and summary.edges[-2:] == (values.max(), values.max())
    assert list(summary.edges[:-1]) == sorted(set(summary.edges))
    assert len(summary.counts) == len(summary.edges) + 1
    assert summary.counts[0] == 0 and summary.counts[-1] == 0  # nothing outside the reference's range
    assert summary.counts[-2] == 1  # the maximum, in its own bin
    assert list(summary.counts) == expected_counts(values, summary.edges)
    inner = np.array(summary.counts[1:-2])
    assert inner.max() <= 251  # no bin holds more than a twentieth
    assert inner[0] <= 2 and inner[-1] <= 2  # the tails get finer bins
    assert 21 < len(summary.edges) <= 21 + 2 * 11 + 1
    assert summary.count == 5000 and summary.nulls == 0
    assert summary.total == pytest.approx(values.sum()) and summary.total_sq == pytest.approx(values @ values)
    assert summary.minimum == values.min() and summary.maximum == values.max()


def test_nan_inf_and_null_count_as_nulls() -> None:
    table = pa.table({"x": pa.array([1.0, None, float("nan"), 2.0, float("inf"), -float("inf"), 3.0])})
    summary = reference_summary(table).columns["x"]
    assert summary.count == 3 and summary.nulls == 4
    assert summary.total == 6.0 and summary.total_sq == 14.0
    assert (summary.minimum, summary.maximum) == (1.0, 3.0)


def test_integers_with_nulls_and_decimals_are_numeric() -> None:
    table = pa.table(
        {
            "n": pa.array([1, None, 3, 3], pa.int32()),
            "d": pa.array([Decimal("1.50"), Decimal("2.25"), None, Decimal("2.25")], pa.decimal128(6, 2)),
        }
    )
    summary = reference_summary(table)
    assert summary.columns["n"].edges == (1.0, 3.0, 3.0) and summary.columns["n"].counts == (0, 1, 2, 0)
    assert summary.columns["d"].edges == (1.5, 2.25, 2.25) and summary.columns["d"].nulls == 1


def test_every_distinct_value_of_a_discrete_column_gets_its_own_bin() -> None:
    values = np.repeat([0.0, 1.0, 5.0], [50, 30, 20])
    summary = reference_summary(pa.table({"x": values}))
    assert summary.columns["x"].edges == (0.0, 1.0, 5.0, 5.0)
    assert summary.columns["x"].counts == (0, 50, 30, 20, 0)
    window = summarize(pa.table({"x": [0.0, 3.0, 5.0, 6.0]}), summary).columns["x"]
    assert window.counts == (0, 1, 1, 1, 1)


def test_constant_column_gets_two_equal_edges_and_counts_other_values_apart() -> None:
    reference = reference_summary(pa.table({"x": [7.0] * 10}))
    column = reference.columns["x"]
    assert column.edges == (7.0, 7.0) and column.counts == (0, 10, 0)
    window = summarize(pa.table({"x": [6.0, 7.0, 7.0, 8.0, 9.0]}), reference).columns["x"]
    assert window.counts == (1, 2, 2)


def test_all_null_numeric_column_has_no_edges() -> None:
    reference = reference_summary(pa.table({"x": pa.array([None, None], pa.float64())}))
    column = reference.columns["x"]
    assert (column.count, column.nulls, column.edges, column.counts) == (0, 2, (), (0,))
    assert column.minimum is None and column.maximum is None
    window = summarize(pa.table({"x": [1.0, 2.0, None]}), reference).columns["x"]
    assert (window.count, window.nulls, window.counts) == (2, 1, (2,))


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300),
    window=st.lists(st.one_of(st.floats(-2e6, 2e6), st.sampled_from([0.0, 1.0])), max_size=300),
    bins=st.integers(1, 40),
)
def test_window_counts_follow_the_contract(reference: list[float], window: list[float], bins: int) -> None:
    summary = reference_summary(pa.table({"x": reference}), bins=bins)
    edges = summary.columns["x"].edges
    counted = summarize(pa.table({"x": pa.array(window, pa.float64())}), summary).columns["x"]
    values = np.asarray(window, dtype=np.float64)
    assert list(counted.counts) == expected_counts(values, edges)
    assert counted.count + counted.nulls == len(window)


def test_values_on_and_next_to_every_edge_land_in_the_right_bin() -> None:
    rng = np.random.default_rng(5)
    reference = reference_summary(pa.table({"x": rng.lognormal(0, 3, 20_000)}))
    edges = np.asarray(reference.columns["x"].edges)
    probe = np.concatenate(
        [edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf), [1e300, -1e300]]
    )
    counted = summarize(pa.table({"x": probe}), reference).columns["x"]
    assert list(counted.counts) == expected_counts(probe, tuple(edges))


def test_large_reference_takes_edges_from_a_sample_but_counts_exactly() -> None:
    rng = np.random.default_rng(8)
    values = rng.exponential(size=QUANTILE_SAMPLE * 3)
    summary = reference_summary(pa.table({"x": values})).columns["x"]
    assert list(summary.counts) == expected_counts(values, summary.edges)
    shares = np.array(summary.counts[1:-2]) / len(values)
    assert shares.max() < 0.012  # sample quantiles still make even bins ...
    assert np.count_nonzero(np.abs(shares - 0.01) < 0.002) == 98  # ... and the two tail percentiles finer
    again = reference_summary(pa.table({"x": values})).columns["x"]
    assert again.edges == summary.edges  # the sample is seeded


def test_chunked_tables_summarise_like_one_chunk() -> None:
    rng = np.random.default_rng(9)
    values = rng.normal(size=3000)
    cats = rng.choice(["a", "b", "c"], 3000)
    whole = pa.table({"x": values, "c": cats})
    chunked = pa.Table.from_batches(whole.to_batches(max_chunksize=700))
    assert chunked.column("x").num_chunks > 1
    a, b = reference_summary(whole), reference_summary(chunked)
    assert a.columns["c"] == b.columns["c"]
    assert a.columns["x"].counts == b.columns["x"].counts and a.columns["x"].edges == b.columns["x"].edges


def test_categorical_reference_keeps_top_values_and_counts_the_rest_as_other() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + ["d"] * 2 + ["e"] + [None] * 2
    summary = reference_summary(pa.table({"s": values}), top_k=3).columns["s"]
    assert summary.kind == "categorical"
    assert summary.categories == ("a", "b", "c")  # by count, then value
    assert summary.counts == (5, 5, 3, 3)
    assert (summary.count, summary.nulls) == (16, 2)


def test_window_values_the_reference_never_had_count_as_other() -> None:
    reference = reference_summary(pa.table({"s": ["a", "b", "b"]}))
    window = summarize(pa.table({"s": ["b", "z", "y", None, "a"]}), reference).columns["s"]
    assert window.categories == ("b", "a")
    assert window.counts == (1, 1, 2) and window.nulls == 1


def test_bools_and_dictionaries_are_categorical() -> None:
    table = pa.table(
        {
            "flag": [True, False, True, None],
            "city": pa.array(["x", "y", "x", "x"]).dictionary_encode(),
            "big": pa.array(["p", "q", "p", "p"], pa.large_string()),
        }
    )
    summary = reference_summary(table)
    assert summary.columns["flag"].categories == ("true", "false")
    assert summary.columns["flag"].counts == (2, 1, 0)
    assert summary.columns["city"].categories == ("x", "y") and summary.columns["city"].counts == (3, 1, 0)
    window = pa.table(
        {
            "flag": [False, False],
            "city": pa.chunked_array(
                [pa.array(["y"]).dictionary_encode(), pa.array(["w"]).dictionary_encode()]
            ),
            "big": pa.array(["q"], pa.string()).take([0, 0]),
        }
    )
    counted = summarize(window, summary)
    assert counted.columns["flag"].counts == (0, 2, 0)
    assert counted.columns["city"].counts == (0, 1, 1)
    assert counted.columns["big"].counts == (0, 2, 0)


def test_other_types_are_skipped_unless_asked_for() -> None:
    table = pa.table({"x": [1.0, 2.0], "at": pa.array([dt.datetime(2026, 1, 1)] * 2), "b": [b"1", b"2"]})
    assert list(reference_summary(table).columns) == ["x"]
    with pytest.raises(InvalidInput, match="'at'") as info:
        reference_summary(table, ["x", "at"])
    assert info.value.details["column"] == "at"
    with pytest.raises(InvalidInput, match="not in the reference"):
        reference_summary(table, ["nope"])
    assert column_kind(pa.timestamp("us")) is None and column_kind(pa.int8()) == "numeric"


def test_bad_bins_and_top_k_are_refused() -> None:
    table = pa.table({"x": [1.0]})
    with pytest.raises(InvalidInput, match="bins"):
        reference_summary(table, bins=0)
    with pytest.raises(InvalidInput, match="top_k"):
        reference_summary(table, top_k=0)


def test_summarize_leaves_out_missing_columns_and_refuses_another_kind() -> None:
    reference = reference_summary(pa.table({"x": [1.0, 2.0], "s": ["a", "b"]}))
    window = summarize(pa.table({"x": [1.5], "extra": [1]}), reference)
    assert list(window.columns) == ["x"] and window.rows == 1
    with pytest.raises(InvalidInput, match="'x'") as info:
        summarize(pa.table({"x": ["text"]}), reference)
    assert info.value.details == {"column": "x", "expected": "numeric", "type": "string"}


def test_a_null_typed_column_is_all_null_in_the_window() -> None:
    reference = reference_summary(pa.table({"x": [1.0, 2.0], "s": ["a", "b"]}))
    window = summarize(pa.table({"x": pa.nulls(3), "s": pa.nulls(3)}), reference)
    assert window.columns["x"].count == 0 and window.columns["x"].nulls == 3
    assert window.columns["s"].counts == (0, 0, 0)


def test_thirty_merged_windows_equal_the_summary_of_all_of_them() -> None:
    rng = np.random.default_rng(11)
    reference = reference_summary(
        pa.table({"x": rng.normal(size=2000), "s": rng.choice(["a", "b", "c"], 2000)}), top_k=2
    )
    day = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    windows, tables = [], []
    for i in range(30):
        size = int(rng.integers(0, 200))
        table = pa.table({"x": rng.normal(0.5, 1, size), "s": rng.choice(["a", "b", "c", "d"], size)})
        tables.append(table)
        start = day + dt.timedelta(days=i)
        windows.append(summarize(table, reference, start=start, end=start + dt.timedelta(days=1)))
    merged = merge(windows)
    whole = summarize(pa.concat_tables(tables), reference)
    assert merged.rows == whole.rows
    assert merged.start == day and merged.end == day + dt.timedelta(days=30)
    assert merged.columns["s"] == whole.columns["s"]
    x, y = merged.columns["x"], whole.columns["x"]
    assert (x.counts, x.count, x.nulls, x.minimum, x.maximum) == (
        y.counts,
        y.count,
        y.nulls,
        y.minimum,
        y.maximum,
    )
    assert x.total == pytest.approx(y.total) and x.total_sq == pytest.approx(y.total_sq)


def test_merge_of_nothing_is_an_empty_summary() -> None:
    empty = merge([])
    assert empty.rows == 0 and dict(empty.columns) == {} and empty.start is None


def test_merge_adds_a_column_only_some_windows_have() -> None:
    reference = reference_summary(pa.table({"x": [1.0, 2.0], "s": ["a", "b"]}))
    one = summarize(pa.table({"x": [1.0], "s": ["a"]}), reference)
    two = summarize(pa.table({"x": [2.0, 2.0]}), reference)
    merged = merge([one, two])
    assert merged.rows == 3
    assert merged.columns["x"].count == 3 and merged.columns["s"].count == 1


def test_merge_refuses_windows_of_different_references() -> None:
    first = reference_summary(pa.table({"x": [1.0, 2.0, 3.0]}))
    second = reference_summary(pa.table({"x": [1.0, 5.0, 9.0]}))
    with pytest.raises(InvalidInput, match="different edges") as info:
        merge([first, second])
    assert info.value.details == {"column": "x", "field": "edges"}
    cats = reference_summary(pa.table({"x": ["a"]}))
    with pytest.raises(InvalidInput, match="different kinds"):
        merge([first, cats])


def test_summaries_survive_strict_json() -> None:
    rng = np.random.default_rng(12)
    table = pa.table(
        {"x": rng.normal(size=500), "n": rng.integers(0, 9, 500), "s": rng.choice(["a", "b"], 500)}
    )
    summary = reference_summary(table, start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    text = json.dumps(summary.to_json(), allow_nan=False)
    again = TableSummary.from_json(json.loads(text))
    assert again == summary
    assert all(isinstance(c, int) for c in summary.columns["n"].counts)
    assert isinstance(again.columns["x"], ColumnSummary)


def test_sums_that_overflow_saturate_instead_of_becoming_inf() -> None:
    summary = reference_summary(pa.table({"x": [1e200, -1e200, 3e200]}))
    column = summary.columns["x"]
    assert column.total == 3e200 and column.total_sq == FLOAT_MAX
    json.dumps(summary.to_json(), allow_nan=False)
    assert merge([summary, summary]).columns["x"].total_sq == FLOAT_MAX
