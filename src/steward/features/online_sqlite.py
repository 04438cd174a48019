"""The embedded online store: one SQLite file (``<home>/online.db`` by default).

One table per project and view (``"online:<project>:<view>"``), keyed by the entity key alone without a
rowid, so a read is one B-tree lookup on a short key (a third faster than one table keyed by project,
view and key); WAL, so readers never wait for a writer; one connection per thread (the inference server
reads from several), each with its statements cached. A write is one ``executemany`` UPSERT in one
transaction whose ``WHERE excluded.ts >= ts`` keeps a fresher value than the one written. Project and
view names are Steward names (letters, digits, ``.``, ``_``, ``-``), so a table name never needs more
than its quotes.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import orjson

from steward.errors import ServiceUnavailable
from steward.features.models import OnlineRecord

_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "{table}" (key TEXT PRIMARY KEY, ts INTEGER NOT NULL, value BLOB NOT NULL) '
    "WITHOUT ROWID"
)
_UPSERT = (
    'INSERT INTO "{table}" (key, ts, value) VALUES (?, ?, ?) '
    "ON CONFLICT (key) DO UPDATE SET ts = excluded.ts, value = excluded.value "
    'WHERE excluded.ts >= "{table}".ts'
)
_READ_ONE = 'SELECT ts, value FROM "{table}" WHERE key = ?'
# One statement for any number of keys (a JSON array), so the statement cache never churns.
_READ_MANY = 'SELECT key, ts, value FROM "{table}" WHERE key IN (SELECT value FROM json_each(?))'
_DELETE = 'DELETE FROM "{table}"'
# Several views' values of the same keys in one statement: one parse of the keys, one lookup per key and
# view, rows in the keys' order (each key matches at most one row of a view: its primary key).
_KEYS_MANY = "json_each(?) AS k"
_KEYS_ONE = "(SELECT ? AS value) AS k"
_MMAP_BYTES = 256 * 1024 * 1024


def _table(project: str, view: str) -> str:
    name = f"online:{project}:{view}"
    if '"' in name:
        raise ServiceUnavailable(f"not a project or view name: {name!r}", {"store": "sqlite"})
    return name


def _views_statement(tables: Sequence[str], single: bool) -> str:
    """The ``read_views`` statement over these tables, for one key or a JSON array of keys."""
    values = ", ".join(f"v{i}.ts, v{i}.value" for i in range(len(tables)))
    joins = " ".join(f'LEFT JOIN "{t}" AS v{i} ON v{i}.key = k.value' for i, t in enumerate(tables))
    return f"SELECT {values} FROM {_KEYS_ONE if single else _KEYS_MANY} {joins}"


def _missing(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


class _Connection(sqlite3.Connection):
    """A connection that a ``WeakSet`` can hold (the built-in one takes no weak references)."""


class SqliteOnlineStore:
    """The online store in a SQLite file, safe to share between threads.

    Args:
        path: The database file (created, with its folder, if missing).
        timeout: Seconds a writer waits for another writer's lock before failing.

    Raises:
        ServiceUnavailable: If the file cannot be created or opened.
    """

    name = "sqlite"

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak, so that a finished thread's connection closes with its thread-local storage.
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(exc)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            self._fail(exc)

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({str(self.path)!r})"

    def _fail(self, exc: Exception) -> NoReturn:
        raise ServiceUnavailable(
            f"the online store {self.url} failed: {exc}", {"url": self.url, "store": self.name}
        ) from exc

    def _connect(self) -> _Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
                factory=_Connection,
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            # Reads through a memory map skip a system call per page the page cache lacks.
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        except sqlite3.Error as exc:
            self._fail(exc)
        self._local.conn = conn
        with self._lock:
            self._connections.add(conn)
        return conn

    def _conn(self) -> _Connection:
        try:
            conn: _Connection = self._local.conn
        except AttributeError:
            return self._connect()
        return conn

    def write(self, project: str, view: str, records: Iterable[OnlineRecord]) -> int:
        """Store each record unless its entity has one with a later event time, in one transaction.

        Returns:
            How many records were stored (an older one for an entity counts as not stored).

        Raises:
            ServiceUnavailable: If the database cannot be written.
        """
        conn = self._conn()
        table = _table(project, view)
        try:
            conn.execute(_SCHEMA.format(table=table))
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(_UPSERT.format(table=table), records)
                stored = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._fail(exc)
        return stored

    def read(self, project: str, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        """Return ``(event time, encoded values)`` per key, in order, None for an unknown entity.

        Raises:
            ServiceUnavailable: If the database cannot be read.
        """
        try:
            conn: _Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        table = _table(project, view)
        try:
            if len(keys) == 1:
                # The temporary cursor is freed at once, which resets the statement and ends the
                # read transaction (a kept one would pin an old WAL snapshot).
                return [conn.execute(_READ_ONE.format(table=table), (keys[0],)).fetchone()]
            if not keys:
                return []
            rows = conn.execute(
                _READ_MANY.format(table=table), (orjson.dumps(list(keys)).decode(),)
            ).fetchall()
        except sqlite3.Error as exc:
            if _missing(exc):  # nothing was ever written for this view: every entity is unknown
                return [None] * len(keys)
            self._fail(exc)
        found = {key: (ts, value) for key, ts, value in rows}
        return [found.get(key) for key in keys]

    def read_views(
        self, project: str, views: Sequence[str], keys: Sequence[str]
    ) -> list[list[tuple[int, bytes] | None]]:
        """Return, per view, ``(event time, encoded values)`` per key, in order (None: unknown entity).

        One statement for every view (a left join of each view's table on the keys), so the keys are
        parsed once; a view that was never written reads as all unknown.

        Raises:
            ServiceUnavailable: If the database cannot be read.
        """
        if not keys or not views:
            return [[] if not keys else [None] * len(keys) for _ in views]
        if len(views) == 1:
            return [self.read(project, views[0], keys)]
        try:
            conn: _Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        tables = [_table(project, view) for view in views]
        try:
            rows = conn.execute(
                _views_statement(tables, len(keys) == 1),
                (keys[0],) if len(keys) == 1 else (orjson.dumps(list(keys)).decode(),),
            ).fetchall()
        except sqlite3.Error as exc:
            if _missing(exc):  # a view never written: read the views one by one
                return [self.read(project, view, keys) for view in views]
            self._fail(exc)
        found: list[list[tuple[int, bytes] | None]] = []
        for i in range(len(views)):
            ts_at, value_at = 2 * i, 2 * i + 1
            found.append([None if row[ts_at] is None else (row[ts_at], row[value_at]) for row in rows])
        return found

    def delete(self, project: str, view: str) -> int:
        """Remove every entity of a view; return how many there were.

        Raises:
            ServiceUnavailable: If the database cannot be written.
        """
        try:
            return self._conn().execute(_DELETE.format(table=_table(project, view))).rowcount
        except sqlite3.Error as exc:
            if _missing(exc):
                return 0
            self._fail(exc)

    def close(self) -> None:
        """Close every thread's connection; a later call opens new ones."""
        with self._lock:
            connections = list(self._connections)
            self._connections = weakref.WeakSet()
            self._local = threading.local()
        for conn in connections:
            conn.close()
