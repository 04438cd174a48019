"""Random tables through ingest → validate → profile (hypothesis): what goes in comes out, counted right."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steward.config import load_settings
from steward.data.service import DataService
from steward.data.validation import DatasetSchema, validate
from steward.store.platform import Platform

NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
FLOATS = st.floats(allow_nan=True, allow_infinity=False, width=64)
INTS = st.integers(min_value=-(2**53), max_value=2**53)
TEXT = st.text(max_size=20)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    """A table of 0-40 rows with 1-5 columns of floats, ints, strings or bools, each with some nulls."""
    rows = draw(st.integers(min_value=0, max_value=40))
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique_by=str.casefold))
    columns = {}
    for name in names:
        kind, values = draw(
            st.sampled_from(
                [(pa.float64(), FLOATS), (pa.int64(), INTS), (pa.string(), TEXT), (pa.bool_(), st.booleans())]
            )
        )
        cells = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        columns[name] = pa.array(cells, type=kind)
    return pa.table(columns)


@pytest.fixture(scope="module")
def data() -> Iterator[DataService]:
    """One data service for every example (hypothesis runs many examples per test)."""
    with tempfile.TemporaryDirectory(prefix="steward-props-") as tmp:
        platform = Platform.from_settings(load_settings(home=Path(tmp)))
        yield DataService(platform)
        platform.close()


def _cells(table: pa.Table) -> list[list[Any]]:
    return [["NaN" if v != v else v for v in column.to_pylist()] for column in table.columns]


def _finite(column: pa.ChunkedArray) -> list[Any]:
    return [v for v in column.to_pylist() if v is not None and not (isinstance(v, float) and math.isnan(v))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables())
def test_ingest_round_trips_and_the_same_content_is_the_same_version(
    data: DataService, table: pa.Table
) -> None:
    first = data.ingest(table, "random")
    again = data.ingest(table, "random")
    assert first.version is not None and again.version == first.version and again.reused == (True,)
    back = data.read_table(first.version)
    assert back.schema.equals(table.schema) and _cells(back) == _cells(table)  # NaN != NaN for equals()
    assert first.version.rows == table.num_rows


@settings(max_examples=40, deadline=None)
@given(table=tables())
def test_the_profile_counts_what_is_there(table: pa.Table) -> None:
    from steward.data.profile import profile_table

    profile = profile_table(table)
    assert profile.rows == table.num_rows
    for name, column in zip(table.column_names, table.columns, strict=True):
        stats = profile.column(name)
        assert stats.count == table.num_rows
        assert stats.null_count == column.null_count
        values = _finite(column)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            if values:
                assert stats.min == min(values) and stats.max == max(values)
            if pa.types.is_floating(column.type):
                assert stats.nan_count == int(pc.sum(pc.is_nan(column)).as_py() or 0)
        if pa.types.is_string(column.type) or pa.types.is_boolean(column.type):
            assert stats.distinct == len(set(values))


@settings(max_examples=40, deadline=None)
@given(table=tables(), data=st.data())
def test_rules_drawn_from_the_data_pass_and_a_tighter_bound_counts_exactly_the_rows_it_cuts(
    table: pa.Table, data: st.DataObject
) -> None:
    rules: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = _finite(column)
        rule: dict[str, Any] = {"nullable": column.null_count > 0}
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        nan = pa.types.is_floating(column.type) and bool(pc.any(pc.is_nan(column)).as_py())
        if numeric and values and not nan:
            rule |= {"min": min(values), "max": max(values)}
        if pa.types.is_string(column.type) and values:
            rule["allowed"] = sorted(set(values))
        rules[name] = rule
    schema = DatasetSchema.from_dict({"columns": rules, "min_rows": table.num_rows})
    report = validate(table, schema)
    assert report.passed, report.summary()

    numeric = [
        n
        for n, r in rules.items()
        if "min" in r and not pa.types.is_floating(table.column(n).type) and r["min"] < r["max"]
    ]
    if not numeric:
        return
    name = data.draw(st.sampled_from(numeric))
    bound = data.draw(st.integers(min_value=rules[name]["min"] + 1, max_value=rules[name]["max"]))
    tighter = DatasetSchema.from_dict({"columns": {name: {"min": bound}}})
    [result] = [r for r in validate(table, tighter).results if r.check == "range"]
    assert result.failing_rows == sum(1 for v in _finite(table.column(name)) if v < bound)
    assert not result.passed


@st.composite
def rules_for(draw: st.DrawFn, table: pa.Table) -> dict[str, Any]:
    """Rules over ``table``'s columns with bounds and sets drawn near, inside and outside its values."""
    rules: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = _finite(column)
        rule: dict[str, Any] = {"nullable": draw(st.booleans())}
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if numeric and values:
            low, high = min(values), max(values)
            rule["min"] = draw(st.sampled_from([low, low + 1, low - 1]))
            if draw(st.booleans()):
                rule["max"] = max(rule["min"], draw(st.sampled_from([high, high - 1, high + 1])))
        if pa.types.is_string(column.type) and values:
            rule["allowed"] = draw(st.lists(st.sampled_from(sorted(set(values))), unique=True))
            rule["regex"] = draw(st.sampled_from([".*", "[a-z]*", ".{0,3}"]))
        rule["unique"] = draw(st.booleans())
        rules[name] = rule
    return rules


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_arrow_proofs_never_change_a_report(data: st.DataObject) -> None:
    table = data.draw(tables())
    schema = DatasetSchema.from_dict({"columns": data.draw(rules_for(table))})
    proven, counted = validate(table, schema), validate(table, schema, fast=False)
    assert [(r.check, r.column, r.passed, r.failing_rows) for r in proven.results] == [
        (r.check, r.column, r.passed, r.failing_rows) for r in counted.results
    ]
