"""A view's rows in DuckDB for the offline store: the connection, reading Parquet or Arrow, and checking
the data against the view's definition (columns present, types that cast to the declared ones).

Every time is compared as microseconds since the epoch in UTC (``epoch_sql``): naive timestamps count
as UTC, dates as midnight UTC, and nanoseconds are floored to microseconds.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from steward.errors import InvalidInput, ServiceUnavailable
from steward.features.models import FEATURE_TYPES, ViewInput

DEFAULT_MEMORY_LIMIT = 3 * 1024**3
"""DuckDB's memory cap in bytes when the caller gives none (or half the RAM, if less): it leaves room for
the Arrow result and the caller within a 4 GiB budget; beyond it DuckDB spills to ``temp_directory``."""

ARROW_TYPES: Mapping[str, pa.DataType] = {
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
"""The Arrow type of each feature type's output column."""

_SQL_TYPES = {"float64": "DOUBLE", "float32": "FLOAT", "int64": "BIGINT", "int32": "INTEGER"}
_SQL_TYPES |= {"bool": "BOOLEAN", "string": "VARCHAR"}

_TIMES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE", "DATE"}
_TIMES_NS_TZ = "TIMESTAMPTZ_NS"  # epoch_us has no overload for it
_NULL = '"NULL"'  # an all-null Arrow column
_SIGNED = {"TINYINT": 8, "SMALLINT": 16, "INTEGER": 32, "BIGINT": 64, "HUGEINT": 128}
_UNSIGNED = {"UTINYINT": 8, "USMALLINT": 16, "UINTEGER": 32, "UBIGINT": 64, "UHUGEINT": 128}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
# The integer magnitude bits each numeric feature type holds exactly (a double's mantissa has 53), and
# the decimal digits it round-trips (15 for a double, 6 for a float; 18 and 9 for whole numbers).
_EXACT_BITS = {"float64": 53, "float32": 24, "int64": 63, "int32": 31}
_EXACT_DIGITS = {"float64": 15, "float32": 6, "int64": 18, "int32": 9}
_MEMORY = re.compile(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def is_time(sql_type: str) -> bool:
    """Whether DuckDB's ``sql_type`` is a timestamp (naive or not, any unit) or a date."""
    return sql_type in _TIMES or sql_type == _TIMES_NS_TZ


def epoch_sql(column: str, sql_type: str) -> str:
    """SQL for a time column (quoted name) as BIGINT microseconds since the epoch, UTC."""
    return f"epoch_us({column}::TIMESTAMPTZ)" if sql_type == _TIMES_NS_TZ else f"epoch_us({column})"


def cast_sql(column: str, sql_type: str, dtype: str) -> str:
    """SQL casting ``column`` (of DuckDB's ``sql_type``) to feature type ``dtype``; a timestamp feature
    becomes a naive UTC timestamp, labelled UTC on the Arrow side."""
    if dtype == "timestamp":
        return f"make_timestamp({epoch_sql(column, sql_type)})" if sql_type != _NULL else "NULL::TIMESTAMP"
    return f"CAST({column} AS {_SQL_TYPES[dtype]})"


def casts_without_loss(sql_type: str, dtype: str) -> bool:
    """Whether data of DuckDB's ``sql_type`` casts to feature type ``dtype`` without losing values:
    narrower numbers into wider ones (``int32`` into ``int64``, ``int32`` or ``float32`` into
    ``float64``), decimals of few enough digits, dates into timestamps; never floats into integers,
    ``int64`` into ``float64`` (beyond 2**53) or text into numbers."""
    if sql_type == _NULL:
        return True
    if dtype == "timestamp":
        return is_time(sql_type)
    if dtype == "string":
        return sql_type == "VARCHAR" or sql_type.startswith("ENUM(")
    if dtype == "bool":
        return sql_type == "BOOLEAN"
    if sql_type in _SIGNED:
        return _SIGNED[sql_type] - 1 <= _EXACT_BITS[dtype]
    if sql_type in _UNSIGNED:
        return _UNSIGNED[sql_type] <= _EXACT_BITS[dtype]
    if sql_type in ("FLOAT", "DOUBLE"):
        return dtype == "float64" or (dtype == "float32" and sql_type == "FLOAT")
    decimal = _DECIMAL.fullmatch(sql_type)
    if decimal is not None:
        digits, scale = int(decimal.group(1)), int(decimal.group(2))
        return digits <= _EXACT_DIGITS[dtype] and (scale == 0 or dtype.startswith("float"))
    return False


def key_kind(sql_type: str) -> str:
    """The family a join key's type belongs to; keys of one family compare with each other."""
    if sql_type in _SIGNED or sql_type in _UNSIGNED:
        return "integer"
    if sql_type == "VARCHAR" or sql_type.startswith("ENUM("):
        return "string"
    if is_time(sql_type):
        return "time"
    if sql_type in ("FLOAT", "DOUBLE"):
        return "float"
    return "decimal" if sql_type.startswith("DECIMAL") else sql_type


def default_memory_limit() -> str:
    """``DEFAULT_MEMORY_LIMIT``, or half the machine's RAM if that is less, as DuckDB's setting."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not a POSIX system
        ram = 0
    limit = min(DEFAULT_MEMORY_LIMIT, ram // 2) if ram > 0 else DEFAULT_MEMORY_LIMIT
    return f"{limit // 1024**2}MiB"


@contextmanager
def connect(memory_limit: str | None, temp_directory: str | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory DuckDB connection, capped at ``memory_limit`` and spilling to ``temp_directory`` (a
    fresh directory removed afterwards when None), closed on exit.

    Raises:
        InvalidInput: The memory limit is not a size (``"3GB"``, ``"512MiB"``) or the directory cannot
            be created.
    """
    limit = memory_limit if memory_limit is not None else default_memory_limit()
    if not _MEMORY.fullmatch(limit):
        raise InvalidInput(
            f"memory_limit must be a size such as '3GB', not {limit!r}", {"field": "memory_limit"}
        )
    own = temp_directory is None
    try:
        spill = tempfile.mkdtemp(prefix="steward-offline-") if own else str(temp_directory)
        os.makedirs(spill, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(
            f"cannot use {temp_directory} for spilling: {exc}", {"field": "temp_directory"}
        ) from exc
    try:
        # Results come back keyed by row numbers, so DuckDB may reorder rows: that saves memory.
        con = duckdb.connect(
            ":memory:",
            config={"memory_limit": limit, "temp_directory": spill, "preserve_insertion_order": False},
        )
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
    finally:
        if own:
            shutil.rmtree(spill, ignore_errors=True)


def engine_error(exc: duckdb.Error, what: str) -> Exception:
    """The Steward error for a DuckDB failure while doing ``what``."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ServiceUnavailable(f"{what}: DuckDB ran out of memory; raise memory_limit ({exc})")
    if isinstance(exc, duckdb.IOException):
        return ServiceUnavailable(f"{what}: {exc}")
    return InvalidInput(f"{what}: {exc}")


@dataclass(frozen=True)
class ViewData:
    """A view's rows registered in DuckDB.

    Attributes:
        input: What the caller asked of the view.
        relation: The (quoted) name of the DuckDB relation holding its rows.
        types: DuckDB's type of each column.
    """

    input: ViewInput
    relation: str
    types: Mapping[str, str]

    def epoch(self, column: str) -> str:
        """SQL for a time column of the view as UTC microseconds."""
        return epoch_sql(quote(column), self.types[column])


def open_view(con: duckdb.DuckDBPyConnection, view_input: ViewInput, name: str) -> ViewData:
    """Register a view's rows (Parquet, read lazily, or an Arrow table) as relation ``name`` and check them
    against the definition.

    Raises:
        InvalidInput: As :func:`check_columns` says, or the data cannot be read.
    """
    view = view_input.view
    needed = _needed_columns(view_input)
    if (view_input.table is None) == (not view_input.parquet):
        raise InvalidInput(
            f"view {view.name!r} needs exactly one of parquet files or a table", {"view": view.name}
        )
    try:
        if view_input.table is not None:
            table = view_input.table
            table = table.select([c for c in needed if c in table.column_names])
            for i, f in enumerate(table.schema):  # DuckDB cannot scan float16
                if pa.types.is_float16(f.type):
                    table = table.set_column(i, f.name, table.column(i).cast(pa.float32()))
            con.register(name, table)
        else:
            paths = [str(p) for p in view_input.parquet]
            con.read_parquet(paths, union_by_name=len(paths) > 1).create_view(name)
        relation = con.sql(f"SELECT * FROM {quote(name)} LIMIT 0")
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot read the data of view {view.name!r}: {exc}", {"view": view.name}) from exc
    types = {c: str(t) for c, t in zip(relation.columns, relation.types, strict=True)}
    check_columns(view_input, types)
    return ViewData(view_input, quote(name), types)


def _needed_columns(view_input: ViewInput) -> list[str]:
    view = view_input.view
    columns = [*view_input.join_keys, view.timestamp]
    columns += [view.created_timestamp] if view.created_timestamp else []
    return list(dict.fromkeys([*columns, *view_input.features]))


def check_columns(view_input: ViewInput, types: Mapping[str, str]) -> None:
    """Check a view's data (DuckDB's type of each column) against what is asked of the view.

    Raises:
        InvalidInput: A wanted feature is not declared by the view or has an unknown type, or a join key,
            the timestamp or created timestamp, or a feature is missing from the data or of a type that
            does not cast to the declared one without loss. ``details`` name the view and the column.
    """
    view = view_input.view
    for key in view_input.join_keys:
        if key not in types:
            raise InvalidInput(
                f"the data of view {view.name!r} has no join key column {key!r}", _at(view.name, key)
            )
    for column in (view.timestamp, view.created_timestamp):
        if column is None:
            continue
        if column not in types:
            raise InvalidInput(
                f"the data of view {view.name!r} has no timestamp column {column!r}", _at(view.name, column)
            )
        if not is_time(types[column]):
            raise InvalidInput(
                f"column {column!r} of view {view.name!r} is {types[column]}, not a timestamp or date",
                _at(view.name, column),
            )
    for name in view_input.features:
        feature = view.feature(name)
        details = _at(view.name, name) | {"feature": f"{view.name}:{name}"}
        if feature is None:
            raise InvalidInput(f"view {view.name!r} has no feature {name!r}", details)
        if feature.dtype not in FEATURE_TYPES:
            raise InvalidInput(
                f"feature {name!r} of view {view.name!r} has type {feature.dtype!r}, not one of "
                f"{', '.join(FEATURE_TYPES)}",
                details,
            )
        if name not in types:
            raise InvalidInput(f"the data of view {view.name!r} has no column for feature {name!r}", details)
        if not casts_without_loss(types[name], feature.dtype):
            raise InvalidInput(
                f"feature {name!r} of view {view.name!r} is declared {feature.dtype} but its data is "
                f"{types[name]}, which does not cast to {feature.dtype} without loss",
                details | {"declared": feature.dtype, "actual": types[name]},
            )


def _at(view: str, column: str) -> dict[str, str]:
    return {"view": view, "field": column}
