"""``validate``: every expectation is checked, counted and shown with examples; nothing skipped silently."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from steward.data.validation import DatasetSchema, ValidationReport, type_matches, validate
from steward.errors import InvalidInput

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def check(report: ValidationReport, kind: str, column: str | None = None) -> dict[str, Any]:
    """The one result of check ``kind`` on ``column``."""
    [found] = [r for r in report.to_dict()["results"] if r["check"] == kind and r["column"] == column]
    return found


def run(table: pa.Table, **schema: Any) -> ValidationReport:
    return validate(table, DatasetSchema.from_dict(schema), now=NOW)


def test_a_clean_batch_passes_every_check() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "amount": [0.0, 5.5, 10.0],
            "country": ["AE", "FR", "AE"],
            "code": ["AB-1", "CD-22", "EF-333"],
            "at": pa.array([NOW - timedelta(hours=1)] * 3, pa.timestamp("us", tz="UTC")),
        }
    )
    report = run(
        table,
        columns={
            "id": {"type": "int64", "nullable": False, "unique": True},
            "amount": {"type": "float64", "min": 0, "max": 10},
            "country": {"type": "string", "allowed": ["AE", "FR"]},
            "code": {"regex": "[A-Z]{2}-[0-9]+"},
            "at": {"type": "datetime"},
        },
        min_rows=1,
        max_rows=3,
        freshness={"column": "at", "max_age": "2h"},
        sql_checks={"positive_or_zero": "amount >= 0"},
    )
    assert report.passed, report.summary()
    assert report.rows == 3 and report.failures == ()
    assert "all" in report.summary() and "passed" in report.summary()
    kinds = {r.check for r in report.results}
    assert kinds == {"required", "type", "not_null", "unique", "range", "allowed", "regex", "row_count"} | {
        "freshness",
        "sql",
    }


def test_each_failing_check_counts_its_rows_and_shows_examples() -> None:
    table = pa.table(
        {
            "id": [1, 2, 2, None],
            "amount": [1.0, float("nan"), -3.0, 11.0],
            "country": ["AE", "XX", "FR", None],
            "code": ["AB-1", "nope", None, "CD-2"],
        }
    )
    report = run(
        table,
        columns={
            "id": {"nullable": False, "unique": True},
            "amount": {"min": 0, "max": 10},
            "country": {"allowed": ["AE", "FR"]},
            "code": {"regex": "[A-Z]{2}-[0-9]+"},
        },
    )
    assert not report.passed
    assert check(report, "not_null", "id")["failing_rows"] == 1
    unique = check(report, "unique", "id")
    assert (unique["failing_rows"], unique["examples"]) == (2, [2])
    amount = check(report, "range", "amount")  # NaN is outside every range
    assert amount["failing_rows"] == 3 and set(amount["examples"]) == {"NaN", -3.0, 11.0}
    allowed = check(report, "allowed", "country")  # nulls are the nullable check's business
    assert (allowed["failing_rows"], allowed["examples"]) == (1, ["XX"])
    regex = check(report, "regex", "code")
    assert (regex["failing_rows"], regex["examples"]) == (1, ["nope"])
    assert "1 row fails" in regex["message"]
    assert set(report.summary().split(": ", 1)[1].split(", ")) == {
        "not_null(id)",
        "unique(id)",
        "range(amount)",
        "allowed(country)",
        "regex(code)",
    }


def test_a_wrong_type_fails_and_its_value_checks_are_not_run_on_it() -> None:
    table = pa.table({"amount": ["1.5", "x"]})
    report = run(table, columns={"amount": {"type": "float64", "min": 0}})
    result = check(report, "type", "amount")
    assert not result["passed"] and "found string" in result["message"]
    assert [r.check for r in report.results] == ["required", "type"]


@pytest.mark.parametrize(
    ("wanted", "arrow_type", "ok"),
    [
        ("int64", pa.int32(), True),
        ("int64", pa.uint64(), False),
        ("int32", pa.int64(), False),
        ("float64", pa.float32(), True),
        ("float32", pa.float64(), False),
        ("string", pa.large_string(), True),
        ("string", pa.dictionary(pa.int8(), pa.string()), True),
        ("datetime", pa.timestamp("ns", tz="Asia/Dubai"), True),
        ("date", pa.timestamp("s"), False),
        ("bool", pa.null(), True),
    ],
)
def test_types_widen_but_never_narrow(wanted: str, arrow_type: pa.DataType, ok: bool) -> None:
    assert type_matches(wanted, arrow_type) is ok


def test_missing_and_extra_columns_are_reported() -> None:
    table = pa.table({"a": [1], "surprise": [2]})
    report = run(table, columns={"a": {}, "b": {}}, allow_extra_columns=False)
    assert not check(report, "required", "b")["passed"]
    assert check(report, "required", "a")["passed"]
    extra = check(report, "extra_columns")
    assert not extra["passed"] and extra["examples"] == ["surprise"]
    optional = run(table, columns={"b": {}}, required=False)
    assert optional.passed


def test_row_count_bounds() -> None:
    table = pa.table({"a": list(range(5))})
    assert not run(table, min_rows=6).passed
    assert not run(table, max_rows=4).passed
    assert run(table, min_rows=5, max_rows=5).passed
    assert "found 5" in check(run(table, max_rows=4), "row_count")["message"]


def test_freshness_measures_the_newest_value_and_treats_naive_times_as_utc() -> None:
    fresh = pa.table({"at": [datetime(2026, 12, 1, 11, 30), datetime(2020, 1, 1)]})
    stale = pa.table({"at": [datetime(2026, 11, 29)]})
    days = pa.table({"day": [date(2026, 11, 30)]})
    assert run(fresh, freshness={"column": "at", "max_age": "1h"}).passed
    report = run(stale, freshness={"column": "at", "max_age": "1d"})
    assert not report.passed and "2026-11-29" in check(report, "freshness", "at")["message"]
    assert run(days, freshness={"column": "day", "max_age": "2d"}).passed
    wrong = run(pa.table({"at": ["2026-12-01"]}), freshness={"column": "at", "max_age": 60})
    assert "timestamp or date column" in check(wrong, "freshness", "at")["message"]


def test_datetime_bounds_compare_across_zones() -> None:
    dubai = pa.array([datetime(2026, 1, 1, 3, 0, tzinfo=UTC)], pa.timestamp("us", tz="Asia/Dubai"))
    naive = pa.array([datetime(2026, 1, 1, 3, 0)], pa.timestamp("us"))
    for values in (dubai, naive):
        table = pa.table({"at": values})
        assert run(table, columns={"at": {"min": "2026-01-01T02:59:00+00:00"}}).passed
        assert not run(table, columns={"at": {"min": "2026-01-01T07:30:00+04:00"}}).passed


def test_sql_checks_fail_on_false_and_null_and_show_the_rows() -> None:
    table = pa.table({"refunded": [True, False, True], "reason": ["late", None, None]})
    report = run(table, sql_checks={"refund_has_reason": "NOT refunded OR reason IS NOT NULL"})
    [result] = report.failures
    assert (result.check, result.name, result.failing_rows) == ("sql", "refund_has_reason", 1)
    assert result.examples == ({"refunded": True, "reason": None},)


def test_a_sql_check_that_cannot_run_fails_alone_and_names_the_problem() -> None:
    table = pa.table({"a": [1, 2]})
    report = run(table, sql_checks={"ok": "a > 0", "broken": "nosuch > 1"})
    by_name = {r.name: r for r in report.results}
    assert by_name["ok"].passed
    assert not by_name["broken"].passed and "nosuch" in by_name["broken"].message


def test_column_names_that_need_quoting_are_safe() -> None:
    table = pa.table({'we"ird name': [1, 2, 3], "A": [1, 1, 1], "a": [1, 2, 3]})
    report = run(table, columns={'we"ird name': {"max": 2}, "A": {"unique": True}, "a": {"unique": True}})
    assert check(report, "range", 'we"ird name')["failing_rows"] == 1
    assert not check(report, "unique", "A")["passed"]
    assert check(report, "unique", "a")["passed"]


def test_an_empty_table_and_a_table_without_columns() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert run(empty, columns={"a": {"nullable": False, "unique": True, "min": 0}}).passed
    assert not run(pa.table({}), columns={"a": {}}).passed


def test_report_round_trips_as_json_ready_dict() -> None:
    table = pa.table({"at": [datetime(2020, 1, 1)], "b": [b"\x00\x01"]})
    report = run(table, columns={"at": {"max": "2019-01-01T00:00:00"}}, sql_checks={"x": "b IS NULL"})
    data = report.to_dict()
    assert data["passed"] is False and data["rows"] == 1
    sql = next(r for r in data["results"] if r["check"] == "sql")
    assert sql["examples"] == [{"at": "2020-01-01T00:00:00", "b": "0001"}]


def test_validate_refuses_something_that_is_not_a_table() -> None:
    with pytest.raises(InvalidInput, match="Arrow table"):
        validate({"a": [1]}, DatasetSchema())  # type: ignore[arg-type]


def test_decimals_durations_and_times_in_examples_are_json_ready() -> None:
    import json
    from datetime import time
    from decimal import Decimal

    table = pa.table(
        {
            "price": pa.array([Decimal("1.10"), Decimal("-2.25")], pa.decimal128(5, 2)),
            "took": pa.array([timedelta(seconds=3), timedelta(seconds=-1)], pa.duration("us")),
            "at": pa.array([time(9, 30), time(23, 0)], pa.time64("us")),
        }
    )
    report = run(table, sql_checks={"positive": "price > 0"})
    [failure] = report.to_dict()["results"]
    assert failure["examples"] == [{"price": "-2.25", "took": -1.0, "at": "23:00:00"}]
    json.dumps(report.to_dict())  # no Decimal, timedelta or time left


@pytest.mark.parametrize(
    "ids",
    [
        [5, 3, 4, 1, 2],  # dense and scrambled: the bitmap proves it
        [1, 1_000_000_000, 7],  # sparse: DuckDB counts
        [3, 1, 3, None, 2],  # a repeat in a dense range
        [2, 1, None, None],
    ],
)
def test_uniqueness_is_the_same_whichever_way_it_is_decided(ids: list[int | None]) -> None:
    table = pa.table({"id": pa.array(ids, pa.int64())})
    schema = {"columns": {"id": {"unique": True}}}
    fast, counted = run(table, **schema), validate(table, DatasetSchema.from_dict(schema), fast=False)
    assert check(fast, "unique", "id") == check(counted, "unique", "id")
    assert check(fast, "unique", "id")["passed"] is (
        len({i for i in ids if i is not None}) == sum(1 for i in ids if i is not None)
    )
