"""Run a dataset's expectations (``steward.data.expectations``) against a batch: ``validate``.

Every check over the values is one aggregate in a single DuckDB scan of the batch (null counts, range,
allowed-value, regex and SQL failures together); uniqueness is one grouped count per unique column.
Examples of failing values are fetched only for the checks that failed, so a passing batch costs one
scan plus the unique columns. Type, presence and row-count checks read the Arrow schema and need no scan.

Columns reach SQL by position (``#1 AS c0``), so any column name is safe; SQL checks see the batch's own
column names, as their author wrote them.
"""

from __future__ import annotations

import os
import time as clock
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from steward.data import fastchecks
from steward.data.expectations import TYPES, ColumnRule, DatasetSchema, parse_moment, quote_literal
from steward.errors import InvalidInput

__all__ = ["TYPES", "CheckResult", "ColumnRule", "DatasetSchema", "ValidationReport", "validate"]

EXAMPLES = 5
"""Failing values shown per failed check."""
_CHECK_ORDER = [
    "required", "type", "not_null", "range", "allowed", "regex", "unique", "freshness",
    "extra_columns", "row_count", "sql",
]  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        check: ``required``, ``extra_columns``, ``type``, ``not_null``, ``range``, ``allowed``, ``regex``,
            ``unique``, ``row_count``, ``freshness`` or ``sql``.
        column: The column it is about (``None`` for checks over the whole batch).
        passed: Whether it passed.
        failing_rows: Rows that fail it (``None`` where rows are not the measure, e.g. a type).
        examples: Up to ``EXAMPLES`` failing values (for ``unique``: the duplicated values).
        message: What was expected and what was found.
        name: The name of a SQL check.
    """

    check: str
    column: str | None
    passed: bool
    failing_rows: int | None = None
    examples: tuple[Any, ...] = ()
    message: str = ""
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out: dict[str, Any] = {
            "check": self.check,
            "column": self.column,
            "passed": self.passed,
            "failing_rows": self.failing_rows,
            "examples": [json_value(v) for v in self.examples],
            "message": self.message,
        }
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Build from the dict ``to_dict`` returns (examples stay in their JSON form)."""
        failing = data.get("failing_rows")
        return cls(
            check=str(data["check"]),
            column=data.get("column"),
            passed=bool(data["passed"]),
            failing_rows=int(failing) if failing is not None else None,
            examples=tuple(data.get("examples") or ()),
            message=str(data.get("message", "")),
            name=data.get("name"),
        )


@dataclass(frozen=True)
class ValidationReport:
    """Every check's result over one batch."""

    rows: int
    results: tuple[CheckResult, ...] = field(default=())
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(r for r in self.results if not r.passed)

    def summary(self) -> str:
        """One line: how many checks passed, or which failed."""
        if self.passed:
            return f"all {len(self.results)} checks passed on {self.rows:,} rows"
        names = ", ".join(f"{r.check}({r.column or r.name or ''})".replace("()", "") for r in self.failures)
        return f"{len(self.failures)} of {len(self.results)} checks failed on {self.rows:,} rows: {names}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (what a quarantined batch keeps as its report)."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "seconds": round(self.seconds, 6),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        """Build from the dict ``to_dict`` returns (``passed`` is derived from the results)."""
        results = tuple(CheckResult.from_dict(r) for r in data.get("results") or ())
        return cls(int(data["rows"]), results, float(data.get("seconds", 0.0)))


def json_value(value: Any) -> Any:
    """Return ``value`` in a form JSON (and orjson) can carry: dates as ISO text, decimals as text …"""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal):
        return str(value)  # exact, where a float would round
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


# -- types -----------------------------------------------------------------------------------------

_INT_FITS = {
    "int64": (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32()),
    "int32": (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16()),
}


def type_matches(wanted: str, actual: pa.DataType) -> bool:
    """Whether a column of Arrow type ``actual`` satisfies a rule's ``type`` (see ``ColumnRule``)."""
    t = actual.value_type if pa.types.is_dictionary(actual) else actual
    if pa.types.is_null(t):
        return True
    if wanted in _INT_FITS:
        return t in _INT_FITS[wanted]
    if wanted == "float64":
        return bool(pa.types.is_floating(t))
    if wanted == "float32":
        return bool(pa.types.is_float16(t) or pa.types.is_float32(t))
    if wanted == "string":
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))
    if wanted == "binary":
        return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t))
    checks = {"bool": pa.types.is_boolean, "date": pa.types.is_date, "datetime": pa.types.is_timestamp}
    return bool(checks[wanted](t))


# -- SQL for one column's value checks --------------------------------------------------------------


def _literal(value: Any, arrow_type: pa.DataType) -> str:
    """A bound or allowed value as a SQL literal comparable with a column of ``arrow_type``."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if pa.types.is_timestamp(t):
        moment = parse_moment(value, "datetime")
        assert isinstance(moment, datetime)
        if t.tz is not None:
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return f"TIMESTAMPTZ {quote_literal(moment.isoformat())}"
        if moment.tzinfo is not None:  # a naive column holds UTC times
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return f"TIMESTAMP {quote_literal(moment.isoformat(sep=' '))}"
    if pa.types.is_date(t):
        return f"DATE {quote_literal(str(value))}"
    return quote_literal(str(value))


def _range_failure(c: str, rule: ColumnRule, arrow_type: pa.DataType) -> str | None:
    if rule.min is None and rule.max is None:
        return None
    parts = []
    if rule.min is not None:
        parts.append(f"{c} < {_literal(rule.min, arrow_type)}")
    if rule.max is not None:
        parts.append(f"{c} > {_literal(rule.max, arrow_type)}")
    if pa.types.is_floating(arrow_type):
        parts.append(f"isnan({c})")  # NaN is outside every range
    return f"({' OR '.join(parts)})"


def _allowed_failure(c: str, rule: ColumnRule, arrow_type: pa.DataType) -> str | None:
    if rule.allowed is None:
        return None
    if not rule.allowed:
        return f"({c} IS NOT NULL)"
    values = ", ".join(_literal(v, arrow_type) for v in rule.allowed)
    return f"({c} NOT IN ({values}))"


def _regex_failure(c: str, rule: ColumnRule) -> str | None:
    if rule.regex is None:
        return None
    return f"(NOT regexp_full_match({c}::VARCHAR, {quote_literal(rule.regex)}))"


def _range_message(rule: ColumnRule) -> str:
    low = "-∞" if rule.min is None else repr(rule.min)
    high = "∞" if rule.max is None else repr(rule.max)
    return f"values must lie in [{low}, {high}]"


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A value check waiting for its count from the shared scan."""

    check: str
    column: str | None
    failure_sql: str  # true where a row fails
    message: str
    name: str | None = None
    example_sql: str | None = None  # what to show of a failing row
    index: int | None = None  # the column's position, for the Arrow proof
    rule: ColumnRule | None = None


def validate(
    table: pa.Table, schema: DatasetSchema, *, now: datetime | None = None, fast: bool = True
) -> ValidationReport:
    """Check ``table`` against ``schema``: every check is run and reported, failed or not.

    Args:
        table: The batch.
        schema: Its expectations.
        now: The time freshness is measured against (now, by default).
        fast: Clear the checks that Arrow's aggregates prove first (``steward.data.fastchecks``);
            ``False`` counts every check in DuckDB. The report is the same either way.

    Returns:
        The report; ``report.passed`` says whether the batch may be published.

    Raises:
        InvalidInput: If ``table`` is not an Arrow table or DuckDB cannot scan one of its column types.
    """
    if not isinstance(table, pa.Table):
        raise InvalidInput(f"validate takes an Arrow table, got {type(table).__name__}", {"field": "table"})
    started = clock.perf_counter()
    results: list[CheckResult] = []
    positions = {name: i for i, name in enumerate(table.column_names)}
    results += _presence_checks(table, schema, positions)
    results += _row_count_checks(table.num_rows, schema)
    pending: list[_Pending] = []
    uniques: list[tuple[str, int]] = []
    for name, rule in schema.columns.items():
        if name not in positions:
            continue
        i = positions[name]
        arrow_type = table.schema.field(i).type
        if rule.type is not None:
            ok = type_matches(rule.type, arrow_type)
            message = f"expected {rule.type}, found {arrow_type}"
            results.append(CheckResult("type", name, ok, None, () if ok else (str(arrow_type),), message))
            if not ok:
                continue  # its value checks would compare values of the wrong type
        for p in _value_checks(name, i, rule, arrow_type):
            pending.append(replace(p, index=i, rule=rule))
        if rule.unique:
            uniques.append((name, i))
    for check_name, expression in schema.sql_checks.items():
        pending.append(
            _Pending("sql", None, f"(NOT coalesce(({expression}), FALSE))", expression, name=check_name)
        )
    if fast:
        proven, pending, uniques = _prove(table, pending, uniques)
        results += proven
    if schema.freshness is not None:
        results.append(_freshness_check(table, schema.freshness, positions, now))
    if pending or uniques:  # what the proofs could not clear: counted, with examples, by DuckDB
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            if table.num_columns:
                con.register("src", table)
                select = ", ".join(f"#{i + 1} AS c{i}" for i in range(table.num_columns))
                con.execute(f"CREATE VIEW t AS SELECT {select} FROM src")
            results += _run_value_checks(con, pending)
            results += [_unique_check(con, name, i) for name, i in uniques]
        finally:
            con.close()
    order = {name: k for k, name in enumerate(schema.columns)}
    results.sort(key=lambda r: (r.column is None, order.get(r.column or "", 0), _CHECK_ORDER.index(r.check)))
    return ValidationReport(table.num_rows, tuple(results), clock.perf_counter() - started)


def _prove(
    table: pa.Table, pending: list[_Pending], uniques: list[tuple[str, int]]
) -> tuple[list[CheckResult], list[_Pending], list[tuple[str, int]]]:
    """Clear the checks Arrow's aggregates prove, on a thread pool; return them and what is left."""
    jobs = [(p.check, p.index, p.rule) for p in pending if p.index is not None and p.rule is not None]
    jobs += [("unique", i, ColumnRule()) for _, i in uniques]
    if not jobs or table.num_rows == 0:
        return [], pending, uniques
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        verdicts = list(pool.map(lambda job: fastchecks.proves(job[0], table.column(job[1]), job[2]), jobs))
    cleared = {(check, index) for (check, index, _), ok in zip(jobs, verdicts, strict=True) if ok}
    proven = [
        CheckResult(p.check, p.column, True, 0, (), p.message, p.name)
        for p in pending
        if (p.check, p.index) in cleared
    ]
    proven += [
        CheckResult("unique", n, True, 0, (), "values must be unique")
        for n, i in uniques
        if ("unique", i) in cleared
    ]
    left = [p for p in pending if (p.check, p.index) not in cleared]
    return proven, left, [(n, i) for n, i in uniques if ("unique", i) not in cleared]


def _presence_checks(
    table: pa.Table, schema: DatasetSchema, positions: Mapping[str, int]
) -> list[CheckResult]:
    out = []
    if schema.required:
        for name in schema.columns:
            present = name in positions
            message = "the column is present" if present else "the column is missing from the batch"
            out.append(CheckResult("required", name, present, None, (), message))
    if not schema.allow_extra_columns:
        extra = tuple(n for n in table.column_names if n not in schema.columns)
        message = f"unexpected columns: {', '.join(extra)}" if extra else "no unexpected columns"
        out.append(CheckResult("extra_columns", None, not extra, None, extra, message))
    return out


def _row_count_checks(rows: int, schema: DatasetSchema) -> list[CheckResult]:
    if schema.min_rows is None and schema.max_rows is None:
        return []
    low = schema.min_rows if schema.min_rows is not None else 0
    high = schema.max_rows
    ok = rows >= low and (high is None or rows <= high)
    bounds = f"between {low:,} and {high:,}" if high is not None else f"at least {low:,}"
    return [CheckResult("row_count", None, ok, None, (), f"expected {bounds} rows, found {rows:,}")]


def _value_checks(name: str, i: int, rule: ColumnRule, arrow_type: pa.DataType) -> list[_Pending]:
    c = f"c{i}"
    out = []
    if not rule.nullable:
        out.append(_Pending("not_null", name, f"({c} IS NULL)", "nulls are not allowed", example_sql="NULL"))
    if (sql := _range_failure(c, rule, arrow_type)) is not None:
        out.append(_Pending("range", name, sql, _range_message(rule), example_sql=c))
    if (sql := _allowed_failure(c, rule, arrow_type)) is not None:
        allowed = ", ".join(map(repr, rule.allowed or ()))
        out.append(_Pending("allowed", name, sql, f"values must be one of {allowed}", example_sql=c))
    if (sql := _regex_failure(c, rule)) is not None:
        out.append(_Pending("regex", name, sql, f"values must match {rule.regex!r} in full", example_sql=c))
    return out


def _run_value_checks(con: duckdb.DuckDBPyConnection, pending: list[_Pending]) -> list[CheckResult]:
    if not pending:
        return []
    column_checks = [p for p in pending if p.check != "sql"]
    sql_checks = [p for p in pending if p.check == "sql"]
    counts: dict[int, int] = {}
    if column_checks:
        aggregates = ", ".join(f"count_if({p.failure_sql})" for p in column_checks)
        row = con.execute(f"SELECT {aggregates} FROM t").fetchone() or ()
        counts |= {id(p): int(n or 0) for p, n in zip(column_checks, row, strict=True)}
    results = []
    errors: dict[int, str] = {}
    if sql_checks:  # all together, or, if one is broken, each on its own so the others still count
        aggregates = ", ".join(f"count_if({p.failure_sql})" for p in sql_checks)
        try:
            row = con.execute(f"SELECT {aggregates} FROM src").fetchone() or ()
            counts |= {id(p): int(n or 0) for p, n in zip(sql_checks, row, strict=True)}
        except duckdb.Error:
            for p in sql_checks:
                try:
                    one = con.execute(f"SELECT count_if({p.failure_sql}) FROM src").fetchone() or (0,)
                    counts[id(p)] = int(one[0] or 0)
                except duckdb.Error as exc:
                    errors[id(p)] = str(exc).splitlines()[0]
    for p in pending:
        if id(p) in errors:
            message = f"{p.message}: cannot be evaluated: {errors[id(p)]}"
            results.append(CheckResult(p.check, p.column, False, None, (), message, p.name))
            continue
        failing = counts[id(p)]
        examples: tuple[Any, ...] = ()
        if failing:
            examples = _examples(con, p)
        message = (
            p.message
            if not failing
            else f"{p.message}: {_rows(failing)} {'fails' if failing == 1 else 'fail'}"
        )
        results.append(CheckResult(p.check, p.column, failing == 0, failing, examples, message, p.name))
    return results


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _examples(con: duckdb.DuckDBPyConnection, p: _Pending) -> tuple[Any, ...]:
    if p.check == "not_null":
        return ()
    if p.check == "sql":  # the whole failing row, as its author named the columns
        rows = con.execute(f"SELECT * FROM src WHERE {p.failure_sql} LIMIT {EXAMPLES}")
        names = [d[0] for d in rows.description or ()]
        return tuple(dict(zip(names, r, strict=True)) for r in rows.fetchall())
    failing = f"(SELECT * FROM t WHERE {p.failure_sql} LIMIT 1000)"
    query = f"SELECT DISTINCT {p.example_sql} FROM {failing} LIMIT {EXAMPLES}"
    return tuple(r[0] for r in con.execute(query).fetchall())


def _unique_check(con: duckdb.DuckDBPyConnection, name: str, i: int) -> CheckResult:
    c = f"c{i}"
    row = con.execute(f"SELECT count({c}), count(DISTINCT {c}) FROM t").fetchone() or (0, 0)
    values, distinct = int(row[0]), int(row[1])
    if values == distinct:
        return CheckResult("unique", name, True, 0, (), "values must be unique")
    groups = f"SELECT count(*) AS n FROM t WHERE {c} IS NOT NULL GROUP BY {c} HAVING n > 1"
    duplicated = con.execute(f"SELECT sum(n)::BIGINT FROM ({groups})").fetchone() or (0,)
    examples = con.execute(
        f"SELECT {c} FROM t WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1 LIMIT {EXAMPLES}"
    ).fetchall()
    failing = int(duplicated[0] or 0)
    message = f"values must be unique: {values - distinct:,} repeated, in {_rows(failing)}"
    return CheckResult("unique", name, False, failing, tuple(r[0] for r in examples), message)


def _freshness_check(
    table: pa.Table,
    freshness: tuple[str, float],
    positions: Mapping[str, int],
    now: datetime | None,
) -> CheckResult:
    column, max_age = freshness
    if column not in positions:
        return CheckResult("freshness", column, False, None, (), "the timestamp column is missing")
    i = positions[column]
    arrow_type = table.schema.field(i).type
    if not (pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)):
        message = f"freshness needs a timestamp or date column, found {arrow_type}"
        return CheckResult("freshness", column, False, None, (), message)
    newest = pc.max(table.column(i)).as_py()
    if newest is None:
        return CheckResult("freshness", column, False, None, (), "the column holds no timestamps")
    if not isinstance(newest, datetime):
        newest = datetime(newest.year, newest.month, newest.day)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)  # naive times are UTC
    age = ((now or datetime.now(UTC)) - newest).total_seconds()
    ok = age <= max_age
    message = f"the newest value must be at most {max_age:g} s old; it is {age:,.0f} s old"
    message += f" ({newest.isoformat()})"
    return CheckResult("freshness", column, ok, None, () if ok else (newest,), message)
