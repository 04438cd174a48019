"""SQL: stream a query's rows through SQLAlchemy into Arrow batches of ``batch_rows`` rows.

Rows are fetched with ``stream_results=True`` (a server-side cursor on PostgreSQL; SQLite's cursor is
lazy already), so the connector holds one batch at a time. The query runs read-only on PostgreSQL and
SQLite, so a statement that would write (``DELETE``, ``DROP``) is refused and changes nothing.

Types: PostgreSQL declares each column's type (its OID), which fixes the Arrow type before any row
arrives, so an all-NULL first batch is typed too. Elsewhere (SQLite, whose columns have no fixed type)
a column's Arrow type is inferred from the first batch in which it has values, and later batches are
converted to it without loss: where a later batch needs a wider numeric type (integers, then a float;
decimals of a larger scale) the column widens from that batch on and the data service promotes the
earlier batches when it joins them. No value is ever truncated. SQLite has no timestamp type: its
dates and times arrive as the text they are stored as.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from steward.data.connectors.base import Batch, missing_extra
from steward.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

# PostgreSQL type OIDs (``pg_type``) that map to one Arrow type whatever the values.
_PG_TYPES: dict[int, Any] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 700: pa.float32(), 701: pa.float64(),
    25: pa.string(), 1043: pa.string(), 1042: pa.string(), 17: pa.binary(), 1082: pa.date32(),
    1083: pa.time64("us"), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
    1186: pa.duration("us"), 2950: pa.string(), 114: pa.string(), 3802: pa.string(),
}  # fmt: skip
_PG_NUMERIC = 1700
# An inferred decimal column keeps this many digits before the point, whatever its scale: batches of
# different scales then join (pyarrow's permissive promotion) into one decimal128 of the largest scale.
_INTEGER_DIGITS = 28
_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres"}
_PLAIN = (bool, int, float, str, bytes, Decimal)
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
# Query-string keys of a database URL that hold a secret (libpq's ``?password=``).
_SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})


class SqlConnector:
    """Read the rows of one SQL query.

    Args:
        url: A SQLAlchemy URL (``sqlite:///data.db``, ``postgresql+psycopg://user:pw@host/db``).
        query: The query; ``:name`` placeholders take their values from ``params`` (write ``\\:`` for a
            literal colon before a word, e.g. in JSON text).
        params: Values of the query's placeholders.
        batch_rows: Rows per batch.

    Raises:
        InvalidInput: The URL is not a database URL, or ``batch_rows`` is below 1.
    """

    def __init__(
        self, url: str, query: str, params: Mapping[str, Any] | None = None, batch_rows: int = 100_000
    ) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self._url = make_url(url)
        except (ArgumentError, ValueError) as exc:
            # Not the parser's own message: it may quote a part of the URL, which can be the password.
            problem = "its port is not a number" if isinstance(exc, ValueError) else "it does not parse"
            raise InvalidInput(
                f"not a database URL ({problem}); expected e.g. postgresql+psycopg://user:pw@host:5432/db",
                {"field": "url"},
            ) from None
        if batch_rows < 1:
            raise InvalidInput("batch_rows must be at least 1", {"field": "batch_rows"})
        self.url = _masked(self._url)
        self.query = query
        self.params = dict(params or {})
        self.batch_rows = batch_rows

    def batches(self) -> Iterator[Batch]:
        """Run the query and yield its rows, ``batch_rows`` at a time (one empty batch for no rows).

        Raises:
            ServiceUnavailable: The database cannot be reached (the message shows the masked URL).
            InvalidInput: The database refused the query (its message), the query does not return rows,
                a column mixes types, or the URL names a database SQLAlchemy does not know.
        """
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        source = {"kind": "sql", "url": self.url, "query": self.query}
        engine = self._engine()
        try:
            conn = self._connect(engine)
            with conn:
                streaming = conn.execution_options(stream_results=True, max_row_buffer=self.batch_rows)
                result = None
                try:
                    result = streaming.execute(text(self.query), self.params)
                    if not result.returns_rows:
                        raise InvalidInput("the query returns no rows (use a SELECT)", {"field": "query"})
                    names = list(result.keys())
                    postgres = self._url.get_backend_name() == "postgresql"
                    columns = _Columns(
                        names, _declared_types(result.cursor.description, len(names), postgres)
                    )
                    emitted = False
                    while rows := result.fetchmany(self.batch_rows):
                        yield Batch(columns.table(rows), source)
                        emitted = True
                    if not emitted:
                        yield Batch(columns.empty(), source)
                except DBAPIError as exc:
                    if exc.connection_invalidated:
                        raise ServiceUnavailable(
                            f"lost the connection to {self.url}: {_reason(exc)}", {"url": self.url}
                        ) from exc
                    raise InvalidInput(
                        f"the database refused the query: {_reason(exc)}", {"field": "query"}
                    ) from exc
                except SQLAlchemyError as exc:
                    raise InvalidInput(f"cannot run the query: {_reason(exc)}", {"field": "query"}) from exc
                finally:
                    if result is not None:  # a server-side cursor stays open until closed, even unread
                        result.close()
        finally:
            engine.dispose()

    def _engine(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import NoSuchModuleError
        from sqlalchemy.pool import NullPool

        try:
            return create_engine(self._url, poolclass=NullPool)
        except NoSuchModuleError as exc:
            raise InvalidInput(
                f"SQLAlchemy knows no database {self._url.drivername!r} (in {self.url})", {"field": "url"}
            ) from exc
        except ImportError as exc:
            # The URL's driver part, or the dialect's default driver (``postgresql://`` is psycopg2).
            driver = (exc.name or "").split(".")[0] or self._url.drivername
            if driver in _DRIVER_EXTRAS:
                raise missing_extra(f"the {driver} driver", _DRIVER_EXTRAS[driver], exc) from exc
            raise InvalidInput(
                f"the {driver} driver for {self.url} is not installed ({exc}): install it with pip",
                {"field": "url", "driver": driver},
            ) from exc

    def _connect(self, engine: Engine) -> Connection:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(
                f"cannot connect to {self.url}: {_reason(exc)}", {"url": self.url}
            ) from exc
        backend = self._url.get_backend_name()
        try:
            if backend == "postgresql":
                return conn.execution_options(postgresql_readonly=True)
            if backend == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
        except SQLAlchemyError as exc:
            conn.close()
            raise ServiceUnavailable(f"cannot use {self.url}: {_reason(exc)}", {"url": self.url}) from exc
        return conn


def _masked(url: URL) -> str:
    """The URL as text with its password, and any password in its query string, replaced by ``***``."""
    secrets = {key: "***" for key in url.query if key.lower() in _SECRET_KEYS}
    shown = url.update_query_dict(secrets) if secrets else url
    return shown.render_as_string(hide_password=True)


def _reason(exc: Exception) -> str:
    """The database's own message, without SQLAlchemy's SQL echo and background link."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def _declared_types(description: Sequence[Any] | None, width: int, postgres: bool) -> list[Any]:
    """Arrow types from the cursor description, where it gives PostgreSQL type OIDs (else ``None``)."""
    if not postgres or not description:
        return [None] * width  # other drivers' type codes are their own numbers (MySQL's 16 is BIT)
    return [_pg_type(column) for column in description]


def _pg_type(column: Sequence[Any]) -> Any:
    code = column[1]
    if code == _PG_NUMERIC:  # numeric(p, s) is exact; a bare numeric has no scale: inferred from values
        precision, scale = (column[4], column[5]) if len(column) > 5 else (None, None)
        if isinstance(precision, int) and isinstance(scale, int) and 0 < precision <= 76:
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        return None
    return _PG_TYPES.get(code) if isinstance(code, int) else None


class _Columns:
    """The columns of one query's result: each one's Arrow type, and whether the database declared it."""

    def __init__(self, names: list[str], declared: list[Any]) -> None:
        self.names = names
        self.types = list(declared)
        self.declared = [t is not None for t in declared]

    def table(self, rows: Sequence[Sequence[Any]]) -> pa.Table:
        """Build one batch column by column, fixing (or widening) each column's type as values arrive."""
        arrays = [self._column(index, list(values)) for index, values in enumerate(zip(*rows, strict=True))]
        return pa.Table.from_arrays(arrays, names=self.names)

    def empty(self) -> pa.Table:
        """The table of a query that found no rows: its columns, typed where the database said how."""
        arrays = [pa.array([], type=t if t is not None else pa.null()) for t in self.types]
        return pa.Table.from_arrays(arrays, names=self.names)

    def _column(self, index: int, values: list[Any]) -> Any:
        name, known = self.names[index], self.types[index]
        if self.declared[index]:
            try:
                return pa.array(values, type=known)
            except _ARROW_ERRORS as exc:  # JSON, UUID, network addresses: text
                return _as_text(name, values, exc)
        try:
            array = pa.array(values)  # inferred on its own: converting to a known type could truncate
        except _ARROW_ERRORS as exc:
            array = _as_text(name, values, exc)
        if pa.types.is_decimal(array.type):  # room for wider values in later batches
            array = _cast(name, array, _decimal(array.type.scale))
        if known is not None and array.type != known:
            array = _fit(name, array, known)
        if not pa.types.is_null(array.type):
            self.types[index] = array.type
        return array


def _fit(name: str, array: Any, known: Any) -> Any:
    """A later batch's column in the type of the earlier ones, or a wider one that holds both, losslessly."""
    kind = array.type
    if pa.types.is_null(kind):
        return array.cast(known)
    if pa.types.is_integer(known) and pa.types.is_floating(kind):
        return array  # the column widens to float from here on
    if pa.types.is_decimal(known) and pa.types.is_decimal(kind):
        return array if kind.scale > known.scale else _cast(name, array, known)  # widens to the scale
    if pa.types.is_integer(kind) and (pa.types.is_floating(known) or pa.types.is_decimal(known)):
        try:
            return array.cast(known)  # a safe cast: it fails rather than lose digits
        except _ARROW_ERRORS:
            pass
    raise InvalidInput(
        f"column {name!r} of the query changes type: {kind} values after rows of type {known}",
        {"field": "query", "column": name},
    )


def _decimal(scale: int) -> Any:
    return pa.decimal128(min(38, _INTEGER_DIGITS + scale), scale)


def _cast(name: str, array: Any, to: Any) -> Any:
    try:
        return array.cast(to)  # a safe cast: it fails rather than lose digits
    except _ARROW_ERRORS as exc:
        raise InvalidInput(
            f"column {name!r} of the query has values that do not fit {to}: {exc}",
            {"field": "query", "column": name},
        ) from exc


def _as_text(name: str, values: list[Any], exc: Exception) -> Any:
    """Values Arrow cannot infer (UUID, JSON, network addresses) become text; mixed types are an error."""
    kinds = {type(v) for v in values if v is not None}
    if len(kinds) == 1 and not kinds <= set(_PLAIN):
        return pa.array(
            [None if v is None else json.dumps(v) if isinstance(v, dict | list) else str(v) for v in values],
            type=pa.string(),
        )
    found = ", ".join(sorted(k.__name__ for k in kinds))
    raise InvalidInput(
        f"column {name!r} of the query cannot become an Arrow column (values: {found}): {exc}",
        {"field": "query", "column": name},
    ) from exc
