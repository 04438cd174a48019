"""Tests of steward.data.profile: statistics of tables, their JSON form, and the diff of two profiles."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steward.data.profile import (
    BINS,
    MAX_STRING,
    SAMPLE_ROWS,
    DatasetProfile,
    diff_profiles,
    profile_table,
)
from steward.errors import InvalidInput

X = [3.5, 1.0, None, 2.0, 8.0, 2.0, 5.25, None, -1.5, 2.0]
N = [4, 1, 1, None, 7, 1, 4, 9, 0, 1]
S = ["b", "a", None, "c", "a", "b", "a", None, "d", "a"]
B = [True, False, True, None, True, True, False, True, None, True]


def small() -> pa.Table:
    return pa.table({"x": X, "n": N, "s": S, "b": B})


def round_trip(profile: DatasetProfile) -> DatasetProfile:
    return DatasetProfile.from_dict(json.loads(json.dumps(profile.to_dict(), allow_nan=False)))


def test_small_table_statistics_match_numpy() -> None:
    profile = profile_table(small())
    x = np.array([v for v in X if v is not None])
    col = profile.column("x")
    assert profile.rows == 10 and profile.quantile_sample is None
    assert (col.type, col.count, col.null_count, col.null_share) == ("double", 10, 2, 0.2)
    assert (col.distinct, col.distinct_approx, col.min, col.max) == (6, False, -1.5, 8.0)
    assert col.mean == pytest.approx(x.mean()) and col.std == pytest.approx(x.std(ddof=1))
    expected = np.quantile(x, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    assert list(col.quantiles) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    assert list(col.quantiles.values()) == pytest.approx(expected)
    assert col.histogram is not None
    counts, edges = np.histogram(x, bins=BINS, range=(-1.5, 8.0))
    assert col.histogram["counts"] == counts.tolist() and col.histogram["edges"] == pytest.approx(edges)
    assert sum(col.histogram["counts"]) == 8
    assert col.top_k == [(2.0, 3), (-1.5, 1), (1.0, 1), (3.5, 1), (5.25, 1), (8.0, 1)]

    n = profile.column("n")
    assert (n.type, n.null_count, n.distinct, n.min, n.max) == ("int64", 1, 5, 0, 9)
    assert n.top_k == [(1, 4), (4, 2), (0, 1), (7, 1), (9, 1)]
    assert n.mean == pytest.approx(28 / 9) and n.histogram is not None and sum(n.histogram["counts"]) == 9

    s = profile.column("s")
    assert (s.type, s.null_count, s.distinct, s.min, s.max) == ("string", 2, 4, "a", "d")
    assert s.top_k == [("a", 4), ("b", 2), ("c", 1), ("d", 1)]
    assert s.mean is None and s.histogram is None and s.quantiles == {}

    b = profile.column("b")
    assert (b.type, b.null_count, b.distinct, b.min, b.max) == ("bool", 2, 2, False, True)
    assert b.top_k == [(True, 6), (False, 2)]


def test_nan_and_infinity_are_values_counted_apart_from_the_statistics() -> None:
    profile = profile_table(pa.table({"x": [1.0, float("nan"), None, float("inf"), -math.inf, 3.0]}))
    col = profile.column("x")
    assert (col.null_count, col.nan_count, col.inf_count, col.distinct) == (1, 1, 2, 5)
    assert (col.min, col.max, col.mean) == (1.0, 3.0, 2.0)
    assert col.histogram is not None and sum(col.histogram["counts"]) == 2
    assert dict(col.top_k) == {1.0: 1, 3.0: 1, "nan": 1, "inf": 1, "-inf": 1}
    assert round_trip(profile) == profile


def test_parquet_files_profile_like_the_arrow_table(tmp_path: Path) -> None:
    table = small()
    pq.write_table(table.slice(0, 6), tmp_path / "a.parquet")
    pq.write_table(table.slice(6), tmp_path / "b.parquet")
    pq.write_table(table, tmp_path / "all.parquet")
    expected = profile_table(table)
    assert profile_table(tmp_path / "all.parquet") == expected
    assert profile_table(str(tmp_path / "all.parquet")) == expected
    assert profile_table([tmp_path / "a.parquet", tmp_path / "b.parquet"]) == expected


def test_odd_column_names_are_profiled_by_position() -> None:
    names = ['we"ird', "a b", "ünï ✓", "A", "a", "select", "'; DROP TABLE t; --", ""]
    table = pa.table({name: [i, i + 1, None] for i, name in enumerate(names)})
    profile = profile_table(table)
    assert [c.name for c in profile.columns] == names
    assert [(c.min, c.max, c.null_count) for c in profile.columns] == [
        (i, i + 1, 1) for i in range(len(names))
    ]
    assert profile.column("a").min == 4 and profile.column("A").min == 3


def test_empty_table_and_all_null_columns() -> None:
    table = pa.table(
        {"x": pa.array([], pa.float64()), "s": pa.array([], pa.string()), "b": pa.array([], pa.bool_())}
    )
    for col in profile_table(table).columns:
        assert (col.count, col.null_count, col.null_share, col.distinct) == (0, 0, 0.0, 0)
        assert (col.min, col.max, col.mean, col.histogram, col.quantiles, col.top_k) == (
            None,
            None,
            None,
            None,
            {},
            [],
        )
    nulls = pa.table(
        {"x": pa.array([None] * 3, pa.float64()), "s": pa.array([None] * 3, pa.string()), "z": [None] * 3}
    )
    profile = profile_table(nulls)
    for col in profile.columns:
        assert (col.count, col.null_count, col.null_share, col.distinct, col.min, col.histogram) == (
            3, 3, 1.0, 0, None, None,
        )  # fmt: skip
    assert round_trip(profile) == profile
    assert profile_table(pa.table({})).columns == ()


def test_other_types() -> None:
    utc = dt.UTC
    huge = "é" * 100_000
    table = pa.table(
        {
            "date": pa.array([dt.date(2024, 1, 2), None, dt.date(2023, 5, 1)]),
            "ts": pa.array(
                [dt.datetime(2024, 1, 1, 12, tzinfo=utc)] * 3, pa.timestamp("us", tz="Europe/Paris")
            ),
            "ns": pa.array([1, 2, None], pa.timestamp("ns")),
            "dec": pa.array([Decimal("1.25"), Decimal("-3.50"), None], pa.decimal128(10, 2)),
            "list": pa.array([[1, 2], None, []]),
            "struct": pa.array([{"a": 1}, None, {"a": 2}]),
            "bytes": pa.array([b"x", b"y", b"x"]),
            "dict": pa.array(["b", "a", "b"]).dictionary_encode(),
            "huge": pa.array([huge, huge + "!", None], pa.large_string()),
            "half": pa.array([1.5, None, 2.5], pa.float16()),
            "duration": pa.array([dt.timedelta(1), None, dt.timedelta(2)]),
        }
    )
    profile = profile_table(table)
    date, ts, ns = profile.column("date"), profile.column("ts"), profile.column("ns")
    assert (date.min, date.max, date.distinct) == ("2023-05-01", "2024-01-02", 2)
    assert (ts.type, ts.min, ts.max) == ("timestamp[us, tz=Europe/Paris]", "2024-01-01T12:00:00+00", ts.min)
    assert (ns.min, ns.max) == ("1970-01-01T00:00:00.000000001", "1970-01-01T00:00:00.000000002")
    dec = profile.column("dec")
    assert (dec.min, dec.max, dec.mean, dec.top_k) == (-3.5, 1.25, -1.125, [(-3.5, 1), (1.25, 1)])
    for name in ("list", "struct"):
        col = profile.column(name)
        assert (col.count, col.null_count, col.distinct, col.min, col.top_k) == (3, 1, None, None, [])
    for name, distinct in (("bytes", 2), ("duration", 2)):
        assert (profile.column(name).distinct, profile.column(name).min) == (distinct, None)
    assert profile.column("dict").top_k == [("b", 2), ("a", 1)]
    big = profile.column("huge")
    assert big.min == huge[:MAX_STRING] and big.distinct == 2 and len(big.top_k[0][0]) == MAX_STRING
    assert (profile.column("half").type, profile.column("half").mean) == ("halffloat", 2.0)
    assert round_trip(profile) == profile


def test_a_constant_column_gets_bins_around_its_value() -> None:
    col = profile_table(pa.table({"x": [7.0] * 5})).column("x")
    assert col.histogram is not None and col.std == 0.0
    assert col.histogram["edges"][0] < 7.0 < col.histogram["edges"][-1] and sum(col.histogram["counts"]) == 5


def test_large_tables_sample_quantiles_and_estimate_distinct_counts() -> None:
    rng = np.random.default_rng(1)
    rows = 150_000
    x = rng.normal(10, 2, rows)
    table = pa.table({"x": x, "k": rng.integers(0, 50, rows)})
    profile = profile_table(table)
    assert profile.quantile_sample == SAMPLE_ROWS < rows
    col = profile.column("x")
    assert col.distinct_approx and col.distinct == pytest.approx(rows, rel=0.1)
    assert col.quantiles["p50"] == pytest.approx(float(np.median(x)), abs=0.05)
    assert col.histogram is not None and sum(col.histogram["counts"]) == rows
    assert col.mean == pytest.approx(x.mean()) and col.std == pytest.approx(x.std(ddof=1))
    k = profile.column("k")
    assert (k.distinct, k.distinct_approx) == (50, False) and k.mean == pytest.approx(
        table["k"].to_numpy().mean()
    )
    assert profile_table(table) == profile  # the sample is repeatable


def test_json_round_trip_is_exact() -> None:
    profile = profile_table(small())
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert json.loads(text) == profile.to_dict() and round_trip(profile) == profile


def test_lookups_and_bad_input_raise_invalid_input(tmp_path: Path) -> None:
    profile = profile_table(small())
    with pytest.raises(InvalidInput) as info:
        profile.column("nope")
    assert info.value.details == {"column": "nope"}
    bad_inputs: list[Any] = [[], 42, tmp_path / "missing.parquet", [tmp_path / "missing.parquet"]]
    for bad in bad_inputs:
        with pytest.raises(InvalidInput):
            profile_table(bad)
    with pytest.raises(InvalidInput):
        DatasetProfile.from_dict({"rows": 1})
    with pytest.raises(InvalidInput):
        DatasetProfile.from_dict({"rows": 1, "columns": [{"name": "x"}]})


def test_diff_detects_schema_changes() -> None:
    before = profile_table(pa.table({"a": [1, 2], "b": [1.0, 2.0], "c": ["x", "y"]}))
    after = profile_table(pa.table({"a": [1, 2], "b": ["1", "2"], "d": [True, False]}))
    diff = diff_profiles(before, after)
    changes = {c.name: (c.change, c.old_type, c.new_type) for c in diff.columns}
    assert changes == {
        "a": ("same", "int64", "int64"),
        "b": ("type", "double", "string"),
        "c": ("removed", "string", None),
        "d": ("added", None, "bool"),
    }
    assert [c.name for c in diff.columns] == ["a", "b", "c", "d"]
    assert diff.schema_changed and not diff_profiles(before, before).schema_changed
    assert json.loads(json.dumps(diff.to_dict(), allow_nan=False))["schema_changed"] is True


def test_identical_data_does_not_shift_and_a_moved_distribution_does() -> None:
    rng = np.random.default_rng(7)
    words = np.array(["a", "b", "c", "d"])

    def table(loc: float, p: list[float], null_every: int = 0) -> pa.Table:
        s = words[rng.choice(4, 20_000, p=p)].tolist()
        if null_every:
            s = [None if i % null_every == 0 else v for i, v in enumerate(s)]
        return pa.table({"x": rng.normal(loc, 1, 20_000), "k": rng.integers(0, 3, 20_000), "s": s})

    before = profile_table(table(0, [0.4, 0.3, 0.2, 0.1]))
    same = diff_profiles(before, profile_table(table(0, [0.4, 0.3, 0.2, 0.1])))
    for col in same.columns:
        assert col.change == "same" and col.psi is not None and col.psi < 0.02, col
    moved = diff_profiles(before, profile_table(table(1.5, [0.1, 0.2, 0.3, 0.4], null_every=4)))
    x, s = moved.columns[0], moved.columns[2]
    assert x.change == "shift" and x.psi is not None and x.psi > 0.2
    assert x.mean_shift_std == pytest.approx(1.5, abs=0.1)
    assert (
        s.change == "shift"
        and s.psi is not None
        and s.psi > 0.2
        and s.null_share_delta == pytest.approx(0.25)
    )
    assert moved.columns[1].change == "same"  # k: counted values, exact categorical PSI


def test_psi_is_none_when_not_comparable() -> None:
    before = profile_table(pa.table({"x": [1.0, 2.0], "t": pa.array([1, 2], pa.timestamp("s"))}))
    after = profile_table(
        pa.table({"x": pa.array([None, None], pa.float64()), "t": pa.array([3, 4], pa.timestamp("s"))})
    )
    assert [c.psi for c in diff_profiles(before, after).columns] == [None, None]


cell_values = {
    "int": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "float": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "str": st.one_of(st.none(), st.text(max_size=20)),
}
arrow_types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 40))
    names = draw(st.lists(st.text(max_size=8), min_size=1, max_size=5, unique=True))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(cell_values)))
        values = draw(st.lists(cell_values[kind], min_size=rows, max_size=rows))
        columns[name] = pa.array(values, arrow_types[kind])
    return pa.table(columns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_any_table_profiles_consistently(table: pa.Table) -> None:
    profile = profile_table(table)
    assert profile.rows == table.num_rows and [c.name for c in profile.columns] == table.column_names
    for col, array in zip(profile.columns, table.columns, strict=True):
        values = [v for v in array.to_pylist() if v is not None]
        assert col.count == table.num_rows and col.null_count == array.null_count
        assert 0.0 <= col.null_share <= 1.0 and col.distinct is not None and col.distinct <= len(values)
        finite = [v for v in values if not isinstance(v, float) or math.isfinite(v)]
        assert col.nan_count + col.inf_count == len(values) - len(finite)
        if col.histogram is not None:
            assert sum(col.histogram["counts"]) == len(finite) and len(col.histogram["edges"]) == BINS + 1
            assert col.histogram["edges"] == sorted(col.histogram["edges"])
        if finite:
            assert (col.min, col.max) == (min(finite), max(finite))
        assert sum(n for _, n in col.top_k) <= len(values)
    assert round_trip(profile) == profile
    diff = diff_profiles(profile, profile)
    assert all(c.change == "same" and (c.psi is None or c.psi < 1e-9) for c in diff.columns)
