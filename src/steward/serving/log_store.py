"""Where the prediction log and its labels live on the artifact root, and how they are read back.

The tree, on the platform's artifact root (``file://…`` or ``s3://…``)::

    predictions/project=<p>/endpoint=<e>/hour=<YYYY-MM-DDTHH>/part-<uuid7>.parquet
    labels/project=<p>/endpoint=<e or _any>/day=<YYYY-MM-DD>/part-<uuid7>.parquet

Files are immutable once they appear: local files are written under a hidden temporary name and renamed;
on S3 an object appears when its upload completes. Readers list only the partitions a time window needs
(so a one-hour read opens one hour's files) and hand the files to DuckDB, which reads files of different
columns together (``union_by_name``): versions with different signatures share one log. Every path
names the project, so one project's reads never see another's files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import to_ms
from steward.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    import duckdb

    from steward.config import Settings
    from steward.store.platform import Platform

PREDICTIONS: Final = "predictions"
LABELS: Final = "labels"
ANY_ENDPOINT: Final = "_any"
"""The endpoint folder of labels logged without an endpoint: they join predictions of any endpoint."""
COMPRESSION: Final = "zstd"
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS

PREDICTION_SCHEMA: Final = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("at", pa.timestamp("ms", tz="UTC")),
        ("endpoint", pa.string()),
        ("model", pa.string()),
        ("version", pa.string()),
        ("role", pa.string()),
        ("latency_ms", pa.float64()),
        ("status", pa.int32()),
    ]
)
"""The columns every prediction row has, in this order, before its ``in.*`` and ``out.*`` columns."""

_hours: dict[int, str] = {}


def hour_of(at_ms: int) -> str:
    """The hour partition (``YYYY-MM-DDTHH``, UTC) of a Unix-ms time."""
    hour = at_ms // HOUR_MS
    found = _hours.get(hour)
    if found is None:
        if len(_hours) > 4096:
            _hours.clear()
        found = _hours[hour] = time.strftime("%Y-%m-%dT%H", time.gmtime(hour * 3600))
    return found


def day_of(at_ms: int) -> str:
    """The day partition (``YYYY-MM-DD``, UTC) of a Unix-ms time."""
    return time.strftime("%Y-%m-%d", time.gmtime(at_ms // 1000))


def window_ms(since: datetime | None, until: datetime | None) -> tuple[int | None, int | None]:
    """``since`` and ``until`` as Unix ms (naive times are UTC).

    Raises:
        InvalidInput: If either is not a datetime, or ``since`` is after ``until``.
    """
    for name, value in (("since", since), ("until", until)):
        if value is not None and not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, not {type(value).__name__}", {"field": name})
    low = to_ms(since) if since is not None else None
    high = to_ms(until) if until is not None else None
    if low is not None and high is not None and low > high:
        raise InvalidInput("since is after until", {"field": "since"})
    return low, high


class LogStore:
    """The prediction log's folder tree on one artifact root.

    Args:
        root_url: The artifact root: ``file:///path``, a local path, or ``s3://bucket/prefix``.
        storage_options: fsspec options (``{"endpoint_url": …}`` for an S3-compatible store).
        filesystem: An fsspec filesystem to use instead of the one ``root_url`` names; ``root_url`` is
            then a path on it.

    Raises:
        InvalidInput: If the URL cannot be opened (an unknown scheme, s3fs missing).
    """

    def __init__(
        self,
        root_url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        filesystem: fsspec.AbstractFileSystem | None = None,
    ) -> None:
        self.url = root_url.rstrip("/")
        if filesystem is None:
            options = dict(storage_options or {})
            if root_url.startswith(("s3://", "s3a://")):
                options.setdefault("use_listings_cache", False)  # other processes add files
            try:
                filesystem, root = fsspec.url_to_fs(root_url, **options)
            except (ImportError, ValueError) as exc:
                raise InvalidInput(f"cannot open {root_url!r}: {exc}", {"field": "artifacts"}) from None
        else:
            root = filesystem._strip_protocol(root_url)
        self.fs: fsspec.AbstractFileSystem = filesystem
        self.root = str(root).rstrip("/")
        self.local = isinstance(filesystem, LocalFileSystem)

    @classmethod
    def from_settings(cls, settings: Settings) -> LogStore:
        """The tree on ``settings.artifacts_url`` (on ``settings.s3_endpoint_url`` if set)."""
        url = settings.artifacts_url
        options: dict[str, Any] = {}
        if settings.s3_endpoint_url and url.startswith(("s3://", "s3a://")):
            options["endpoint_url"] = settings.s3_endpoint_url
        return cls(url, options)

    @classmethod
    def of(cls, source: Settings | Platform | LogStore, project: str | None) -> tuple[LogStore, str]:
        """The store and project a read names: ``project``, else the platform's acting project (the
        request's in the API), else the settings' ``project``.

        Raises:
            InvalidInput: For a bad project name or an unknown source.
        """
        from steward.config import Settings
        from steward.store.platform import Platform

        if isinstance(source, LogStore):
            store, default = source, "default"
        elif isinstance(source, Platform):
            store, default = cls.from_settings(source.settings), source.project
        elif isinstance(source, Settings):
            store, default = cls.from_settings(source), source.project
        else:
            raise InvalidInput(f"expected settings or a platform, not {type(source).__name__}")
        return store, validate_name(project if project is not None else default, "project")

    def __repr__(self) -> str:
        return f"LogStore({self.url!r})"

    def predictions_dir(self, project: str, endpoint: str) -> str:
        """The folder of one endpoint's predictions (its hour partitions are inside)."""
        return f"{self.root}/{PREDICTIONS}/project={project}/endpoint={endpoint}"

    def labels_dir(self, project: str, endpoint: str) -> str:
        """The folder of the labels logged for one endpoint (or for :data:`ANY_ENDPOINT`)."""
        return f"{self.root}/{LABELS}/project={project}/endpoint={endpoint}"

    def write(self, folder: str, table: pa.Table) -> str:
        """Write ``table`` as a new ``part-<uuid7>.parquet`` in ``folder``; return its path.

        The file appears whole: locally it is written under a hidden name, synced and renamed.

        Raises:
            OSError: If the storage fails (nothing is left under the final name).
        """
        name = f"part-{new_id()}.parquet"
        final = f"{folder}/{name}"
        if not self.local:
            with self.fs.open(final, "wb") as out:
                pq.write_table(table, out, compression=COMPRESSION, use_dictionary=_dictionary_columns(table))
            return final
        temporary = f"{folder}/.{name}.tmp"
        self.fs.makedirs(folder, exist_ok=True)
        try:
            with self.fs.open(temporary, "wb") as out:
                pq.write_table(table, out, compression=COMPRESSION, use_dictionary=_dictionary_columns(table))
                out.flush()
                os.fsync(out.fileno())
            self.fs.mv(temporary, final)
        except BaseException:
            with suppress(OSError):
                self.fs.rm_file(temporary)
            raise
        return final

    def files(self, folder: str, key: str, low: str | None = None, high: str | None = None) -> list[str]:
        """The Parquet files under ``folder/<key>=<value>/`` with ``low <= value <= high`` (by name).

        Raises:
            ServiceUnavailable: If the storage cannot be listed.
        """
        found: list[str] = []
        with self._guard():
            for partition in sorted(self._ls(folder)):
                value = partition.rsplit("/", 1)[-1].partition(f"{key}=")[2]
                if not value or (low is not None and value < low) or (high is not None and value > high):
                    continue
                names = self._ls(partition)
                found.extend(sorted(p for p in names if _is_part(p)))
        return found

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection that reads this store's files (UTC session time zone)."""
        import duckdb

        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not self.local:
                con.register_filesystem(self.fs)
            yield con
        finally:
            con.close()

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run ``sql`` on ``con`` and return its rows as an Arrow table.

        Raises:
            InvalidInput: If DuckDB refuses it (files that cannot be read together, clashing types).
            ServiceUnavailable: If the storage fails while it reads.
        """
        import duckdb

        try:
            return con.sql(sql, params=params).to_arrow_table()
        except duckdb.IOException as exc:
            raise ServiceUnavailable(f"prediction log {self.url} failed: {exc}", {"url": self.url}) from exc
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot read the prediction log: {exc}") from exc

    def duckdb_path(self, path: str) -> str:
        """How DuckDB names a file of this store: a plain path locally, else with the fs protocol."""
        if self.local:
            return path
        protocol = self.fs.protocol
        return f"{protocol if isinstance(protocol, str) else protocol[0]}://{path}"

    def _ls(self, folder: str) -> list[str]:
        try:
            entries = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return [str(e).rstrip("/") for e in entries if str(e).rstrip("/") != folder]

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise ServiceUnavailable(f"prediction log {self.url} failed: {exc}", {"url": self.url}) from exc


def _is_part(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".parquet") and not name.startswith(".")


def read_files(
    con: duckdb.DuckDBPyConnection, store: LogStore, files: list[str], view: str, *, filename: bool
) -> None:
    """Create ``view`` over ``files`` read together by column name (files may differ in columns).

    Raises:
        InvalidInput: If DuckDB cannot read them together (a column with clashing types).
    """
    import duckdb

    try:
        con.read_parquet(
            [store.duckdb_path(f) for f in files],
            union_by_name=True,
            filename=filename,
            hive_partitioning=False,
        ).create_view(view)
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot read the prediction log: {exc}") from exc


def prediction_files(
    store: LogStore, project: str, endpoint: str, low_ms: int | None, high_ms: int | None
) -> list[str]:
    """The files of one endpoint's predictions whose hour overlaps ``[low_ms, high_ms)``."""
    low = hour_of(low_ms) if low_ms is not None else None
    high = hour_of(max(high_ms - 1, 0)) if high_ms is not None else None
    return store.files(store.predictions_dir(project, endpoint), "hour", low, high)


def prediction_view(
    con: duckdb.DuckDBPyConnection,
    store: LogStore,
    project: str,
    endpoint: str,
    low_ms: int | None,
    high_ms: int | None,
    view: str = "predictions",
) -> bool:
    """Create ``view`` over one endpoint's predictions in ``[low_ms, high_ms)`` (for SQL over the log
    without loading it: what monitoring aggregates). Returns False, creating nothing, if there are none.

    Raises:
        InvalidInput: If the files cannot be read together.
        ServiceUnavailable: If the storage cannot be listed.
    """
    files = prediction_files(store, project, endpoint, low_ms, high_ms)
    if not files:
        return False
    read_files(con, store, files, f"{view}_files", filename=False)
    where = []
    if low_ms is not None:
        where.append(f'"at" >= make_timestamp({int(low_ms) * 1000})')
    if high_ms is not None:
        where.append(f'"at" < make_timestamp({int(high_ms) * 1000})')
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    con.execute(f"CREATE VIEW {view} AS SELECT * FROM {view}_files{condition}")
    return True


def read_predictions(
    source: Settings | Platform | LogStore,
    endpoint: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    project: str | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Read one endpoint's logged predictions, oldest first.

    Args:
        source: The platform (its acting project by default), its settings, or a ``LogStore``.
        endpoint: The endpoint.
        since: From this time (inclusive; naive times are UTC); the start of the log if None.
        until: To this time (exclusive); now if None.
        project: The project (default: the platform's acting project, or the settings' project).
        limit: At most this many rows (the oldest).

    Returns:
        One row per input row of each logged request: :data:`PREDICTION_SCHEMA`, then the ``in.*`` and
        ``out.*`` columns of every version's files, null where a file lacks a column.

    Raises:
        InvalidInput: For a bad endpoint or project name, window or limit.
        ServiceUnavailable: If the storage cannot be read.
    """
    store, project = LogStore.of(source, project)
    validate_name(endpoint, "endpoint")
    low, high = window_ms(since, until)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInput(f"limit must be a non-negative integer, not {limit!r}", {"field": "limit"})
    with store.connect() as con:
        if not prediction_view(con, store, project, endpoint, low, high):
            return PREDICTION_SCHEMA.empty_table()
        order = 'ORDER BY "at", request_id, "row"' + (f" LIMIT {limit}" if limit is not None else "")
        table = store.query(con, f"SELECT * FROM predictions {order}")
    return with_ms_times(table)


def with_ms_times(table: pa.Table) -> pa.Table:
    """``table`` with its UTC timestamp columns at millisecond precision, as they were written."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit != "ms":
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp("ms", tz="UTC")))
    return table


def _dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary-encoding: strings (endpoint, version, role, categorical inputs),
    except the request id, which never repeats. Numbers are not: a dictionary of distinct floats costs
    four times the rest of the write and saves nothing."""
    return [
        f.name
        for f in table.schema
        if f.name != "request_id" and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]
