"""The expectations a dataset's batches must meet: ``ColumnRule`` and ``DatasetSchema``.

These are plain, frozen values. They check themselves when built, so a bad rule is refused when a user
writes it (``InvalidInput`` naming the field, e.g. ``columns.age.min``), not at the next ingestion.
``steward.data.validation`` runs them against a batch. Their YAML (and dict) form::

    columns:
      id: {type: int64, nullable: false, unique: true}
      amount: {type: float64, min: 0, max: 100000}
      country: {type: string, allowed: [AE, SA, FR]}
      email: {type: string, regex: "[^@]+@[^@]+"}
      created_at: {type: datetime, min: "2020-01-01T00:00:00+00:00"}
    required: true              # every listed column must be present (default)
    allow_extra_columns: true   # columns not listed are fine (default)
    min_rows: 1
    max_rows: 10000000
    freshness: {column: created_at, max_age: 86400}   # seconds, or "30m", "24h", "7d"
    sql_checks:
      refund_has_reason: "NOT refunded OR reason IS NOT NULL"

Types are ``bool``, ``int32``, ``int64``, ``float32``, ``float64``, ``string``, ``binary``, ``date`` and
``datetime``. Ranges are inclusive; their bounds are numbers, or ISO 8601 strings for ``date`` and
``datetime`` columns (or strings, compared lexically, for ``string`` columns). YAML reads a bare ``NO``
or ``yes`` as a boolean: quote such words in ``allowed``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import yaml

from steward.errors import InvalidInput

__all__ = ["TYPES", "ColumnRule", "DatasetSchema"]

TYPES = ("bool", "int32", "int64", "float32", "float64", "string", "binary", "date", "datetime")
"""The column types a ``ColumnRule`` can ask for."""

NUMERIC = frozenset({"int32", "int64", "float32", "float64"})
Scalar = bool | int | float | str
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _fail(path: str, message: str) -> NoReturn:
    raise InvalidInput(f"{path}: {message}" if path else message, {"field": path})


def _nested(prefix: str, exc: InvalidInput) -> InvalidInput:
    inner = str(exc.details.get("field", ""))
    path = f"{prefix}.{inner}" if inner else prefix
    message = exc.message.removeprefix(f"{inner}: ") if inner else exc.message
    return InvalidInput(f"{path}: {message}", {"field": path})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_moment(text: str, kind: str | None) -> date | datetime | None:
    """Parse an ISO 8601 bound for a ``date`` or ``datetime`` column; ``None`` if it is not one."""
    try:
        return date.fromisoformat(text) if kind == "date" else datetime.fromisoformat(text)
    except ValueError:
        return None


def _scalar(value: object, path: str) -> Scalar:
    """Normalise one bound or allowed value: dates become ISO strings, numbers must be finite."""
    if isinstance(value, date):  # YAML reads 2024-01-01 as a date
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        _fail(path, "expected a finite number")
    if not isinstance(value, bool | int | float | str):
        _fail(path, f"expected a number, a string or a boolean, got {type(value).__name__}")
    return value


def _fits(value: Scalar, kind: str | None, path: str) -> None:
    """Refuse a bound or allowed value that a column of type ``kind`` can never be compared with."""
    if kind in NUMERIC and not _is_number(value):
        _fail(path, f"expected a number for a {kind} column, got {value!r}")
    if kind in ("date", "datetime") and (not isinstance(value, str) or parse_moment(value, kind) is None):
        _fail(path, f"expected an ISO 8601 {kind} string for a {kind} column, got {value!r}")
    if kind == "string" and not isinstance(value, str):
        hint = " (YAML reads bare yes/no/on/off as booleans: quote it)" if isinstance(value, bool) else ""
        _fail(path, f"expected a string for a string column, got {value!r}{hint}")
    if kind == "bool" and not isinstance(value, bool):
        _fail(path, f"expected true or false for a bool column, got {value!r}")


@lru_cache(maxsize=256)
def _regex_problem(pattern: str) -> str | None:
    """Compile ``pattern`` with DuckDB's RE2, the engine that will run it; return its error, if any."""
    con = duckdb.connect()
    try:
        con.sql(f"SELECT regexp_full_match('', {quote_literal(pattern)})").fetchall()
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    finally:
        con.close()
    return None


def quote_literal(text: str) -> str:
    """Return ``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_problem(expression: str) -> str | None:
    """Return why ``expression`` is not a single SQL expression, or ``None`` if it is one."""
    if not expression.strip():
        return "expected a SQL boolean expression, got an empty string"
    if ";" in expression:
        return "a check is one SQL expression: ';' is not allowed"
    try:
        duckdb.SQLExpression(expression)
    except duckdb.Error as exc:
        return f"not a single SQL expression: {str(exc).splitlines()[0]}"
    return None


@dataclass(frozen=True)
class ColumnRule:
    """What every value of one column must satisfy.

    Args:
        type: One of ``TYPES``, checked against the batch's Arrow type. Integers widen (``int64`` accepts
            int8..int64 and uint8..uint32; ``int32`` accepts int8..int32 and uint8..uint16), floats widen
            (``float64`` accepts float16/32), ``string`` accepts large/view/dictionary strings,
            ``datetime`` any timestamp unit and zone. A column of Arrow type ``null`` matches any type.
        nullable: Whether nulls are allowed. Other checks ignore nulls.
        min: Inclusive lower bound: a number, or an ISO 8601 string for dates and datetimes.
        max: Inclusive upper bound, like ``min``. NaN is outside every range.
        allowed: The only values the column may hold.
        regex: A pattern (RE2 syntax) every string must match in full.
        unique: Whether non-null values must all differ.

    Raises:
        InvalidInput: Naming the field (``min``, ``allowed[2]``...) of a rule that can never be checked.
    """

    type: str | None = None
    nullable: bool = True
    min: float | int | str | None = None
    max: float | int | str | None = None
    allowed: tuple[Any, ...] | None = None
    regex: str | None = None
    unique: bool = False

    def __post_init__(self) -> None:
        kind = self.type
        if kind is not None and kind not in TYPES:
            _fail("type", f"unknown type {kind!r}; use one of {', '.join(TYPES)}")
        for name in ("nullable", "unique"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, f"expected true or false, got {getattr(self, name)!r}")
        for name in ("min", "max"):
            bound = getattr(self, name)
            if bound is not None:
                if kind in ("bool", "binary"):
                    _fail(name, f"a {kind} column has no range")
                object.__setattr__(self, name, _scalar(bound, name))
                _fits(getattr(self, name), kind, name)
        self._check_order()
        if self.allowed is not None:
            if isinstance(self.allowed, str | bytes) or not isinstance(self.allowed, tuple | list):
                _fail("allowed", "expected a list of values")
            values = tuple(_scalar(v, f"allowed[{i}]") for i, v in enumerate(self.allowed))
            for i, value in enumerate(values):
                _fits(value, kind, f"allowed[{i}]")
            object.__setattr__(self, "allowed", values)
        if self.regex is not None:
            if not isinstance(self.regex, str):
                _fail("regex", f"expected a pattern string, got {self.regex!r}")
            if kind not in (None, "string"):
                _fail("regex", f"a regex applies to string columns, not {kind}")
            problem = _regex_problem(self.regex)
            if problem:
                _fail("regex", f"invalid pattern: {problem}")

    def _check_order(self) -> None:
        low, high = self.min, self.max
        if low is None or high is None:
            return
        if _is_number(low) and _is_number(high):
            wrong = low > high  # type: ignore[operator]
        elif isinstance(low, str) and isinstance(high, str):
            moments = (parse_moment(low, self.type), parse_moment(high, self.type))
            try:
                wrong = moments[0] > moments[1] if None not in moments else low > high  # type: ignore[operator]
            except TypeError:  # a naive and an aware datetime
                _fail("max", "min and max must both carry a time zone, or neither")
        else:
            _fail("max", f"min {low!r} and max {high!r} are not of one kind")
        if wrong:
            _fail("max", f"max {high!r} is below min {low!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict form, keeping only the fields that differ from the defaults."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ColumnRule:
        """Build a rule from its dict form (``None`` is a rule with no checks).

        Raises:
            InvalidInput: For an unknown key or a bad value, naming the field.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            _fail("", f"expected a mapping of checks, got {data!r}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                _fail(str(key), f"unknown check; use {', '.join(sorted(known))}")
        return cls(**dict(data))


def _parse_seconds(value: object, path: str) -> float:
    if isinstance(value, str) and (match := _DURATION.match(value)):
        value = float(match.group(1)) * _SECONDS[match.group(2)]
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    _fail(path, f"expected a positive number of seconds or a duration like '24h', got {value!r}")


@dataclass(frozen=True)
class DatasetSchema:
    """The expectations of a dataset: its columns' rules and checks over the whole batch.

    Args:
        columns: A ``ColumnRule`` per column name.
        required: Whether every listed column must be present.
        allow_extra_columns: Whether columns that are not listed are accepted.
        min_rows: The fewest rows a batch may have.
        max_rows: The most rows a batch may have.
        freshness: ``(timestamp column, max age in seconds)``: the newest value may be at most that old.
        sql_checks: Named SQL boolean expressions over the batch's columns that every row must satisfy
            (a row fails when the expression is false or null), e.g. ``"amount >= 0 OR refunded"``.
            Each is one expression: no ``;``, no statements.

    Raises:
        InvalidInput: Naming the field (``min_rows``, ``sql_checks.x``...) that is wrong.
    """

    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    required: bool = True
    allow_extra_columns: bool = True
    min_rows: int | None = None
    max_rows: int | None = None
    freshness: tuple[str, float] | None = None
    sql_checks: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.columns, Mapping):
            _fail("columns", "expected a mapping of column name to rule")
        for name, rule in self.columns.items():
            if not isinstance(name, str) or not name:
                _fail("columns", f"column names are non-empty strings, got {name!r}")
            if not isinstance(rule, ColumnRule):
                _fail(f"columns.{name}", f"expected a ColumnRule, got {type(rule).__name__}")
        object.__setattr__(self, "columns", dict(self.columns))
        for flag in ("required", "allow_extra_columns"):
            if not isinstance(getattr(self, flag), bool):
                _fail(flag, f"expected true or false, got {getattr(self, flag)!r}")
        for bound in ("min_rows", "max_rows"):
            value = getattr(self, bound)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                _fail(bound, f"expected a whole number >= 0, got {value!r}")
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            _fail("max_rows", f"max_rows {self.max_rows} is below min_rows {self.min_rows}")
        if self.freshness is not None:
            if not isinstance(self.freshness, tuple | list) or len(self.freshness) != 2:
                _fail("freshness", "expected (column, max age in seconds)")
            column, age = self.freshness
            if not isinstance(column, str) or not column:
                _fail("freshness.column", f"expected a column name, got {column!r}")
            object.__setattr__(self, "freshness", (column, _parse_seconds(age, "freshness.max_age")))
        if not isinstance(self.sql_checks, Mapping):
            _fail("sql_checks", "expected a mapping of check name to SQL expression")
        for name, expression in self.sql_checks.items():
            if not isinstance(name, str) or not name:
                _fail("sql_checks", f"check names are non-empty strings, got {name!r}")
            if not isinstance(expression, str):
                _fail(f"sql_checks.{name}", f"expected a SQL expression string, got {expression!r}")
            problem = sql_problem(expression)
            if problem:
                _fail(f"sql_checks.{name}", problem)
        object.__setattr__(self, "sql_checks", dict(self.sql_checks))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict form (the YAML form's content); defaults are left out."""
        out: dict[str, Any] = {"columns": {name: rule.to_dict() for name, rule in self.columns.items()}}
        if not self.required:
            out["required"] = False
        if not self.allow_extra_columns:
            out["allow_extra_columns"] = False
        for bound in ("min_rows", "max_rows"):
            if getattr(self, bound) is not None:
                out[bound] = getattr(self, bound)
        if self.freshness is not None:
            age = self.freshness[1]
            out["freshness"] = {"column": self.freshness[0], "max_age": int(age) if age.is_integer() else age}
        if self.sql_checks:
            out["sql_checks"] = dict(self.sql_checks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSchema:
        """Build a schema from its dict form (see the module docstring).

        Raises:
            InvalidInput: For an unknown key or a bad value, with the path of the field in
                ``details["field"]``, e.g. ``columns.age.min``.
        """
        if not isinstance(data, Mapping):
            _fail("", f"expected a mapping with 'columns', got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                _fail(str(key), f"unknown field; use {', '.join(sorted(known))}")
        kwargs = dict(data)
        columns = kwargs.get("columns") or {}
        if not isinstance(columns, Mapping):
            _fail("columns", "expected a mapping of column name to checks")
        rules: dict[str, ColumnRule] = {}
        for name, spec in columns.items():
            try:
                rules[str(name)] = ColumnRule.from_dict(spec)
            except InvalidInput as exc:
                raise _nested(f"columns.{name}", exc) from None
        kwargs["columns"] = rules
        fresh = kwargs.get("freshness")
        if isinstance(fresh, Mapping):
            unknown = set(fresh) - {"column", "max_age"}
            if unknown or "column" not in fresh or "max_age" not in fresh:
                _fail("freshness", "expected {column: <timestamp column>, max_age: <seconds>}")
            kwargs["freshness"] = (fresh["column"], fresh["max_age"])
        if kwargs.get("sql_checks") is None:
            kwargs.pop("sql_checks", None)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, source: str | Path) -> DatasetSchema:
        """Build a schema from YAML text, or from a ``.yaml``/``.yml`` file given as a path.

        Raises:
            InvalidInput: For unreadable or malformed YAML (with its line) or a bad field (with its path).
        """
        text = source
        if isinstance(source, Path) or ("\n" not in source and source.strip().endswith((".yaml", ".yml"))):
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                message = f"cannot read expectations file {source}: {exc}"
                raise InvalidInput(message, {"field": "yaml"}) from None
        try:
            data = yaml.safe_load(str(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise InvalidInput(f"malformed YAML{where}: {problem}", {"field": "yaml"}) from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        """Return the YAML form, which ``from_yaml`` reads back to an equal schema."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
