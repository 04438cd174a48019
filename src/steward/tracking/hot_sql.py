"""The statements every tracked run makes, run on the database driver's own cursor.

A run logged through the SDK makes six statements in three transactions: the run and its environment
artifact, its params, then its end, metric chunks and latest values. Through SQLAlchemy's compiled
statements each costs ~100 µs of Python around ~30 µs in the driver, most of the time of a run. These
are the same statements as the ``repository``'s SQLAlchemy forms (a test runs both on SQLite and
PostgreSQL), written once with ``:name`` parameters, which sqlite3 takes as they are and which become
``%(name)s`` for psycopg. They run inside the caller's SQLAlchemy transaction, on its connection; a driver
error is raised as SQLAlchemy's exception, as ``Connection.execute`` raises it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

_PARAMETER: Final = re.compile(r"(?<![:\w]):(\w+)")

RUN_COLUMNS: Final = (
    "id", "experiment_id", "name", "status", "start_time", "parent_run_id", "user_name", "host",
    "entry_point", "git_commit", "git_dirty", "python_version", "environment_digest",
)  # fmt: skip
"""The columns ``create_run`` gives a new run (the others start NULL)."""

_SQL: Final = {
    "insert_run": (
        f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join(':' + c for c in RUN_COLUMNS)})"
    ),
    "insert_artifact": (
        "INSERT INTO artifacts (run_id, path, digest, size, created_at) "
        "VALUES (:run_id, :path, :digest, :size, :created_at)"
    ),
    # Inserted only while the run is writable; a key logged before is left (the caller compares values).
    # The casts tell PostgreSQL the parameters' types, which a bare SELECT list cannot.
    "insert_params": (
        'INSERT INTO params (run_id, "key", value) '
        "SELECT CAST(:run_id AS VARCHAR), CAST(:key AS VARCHAR), CAST(:value AS TEXT) WHERE EXISTS "
        "(SELECT 1 FROM runs WHERE runs.id = CAST(:run_id AS VARCHAR) AND runs.status = 'RUNNING' "
        "AND runs.deleted_at IS NULL) "
        'ON CONFLICT (run_id, "key") DO NOTHING'
    ),
    "end_run": (
        "UPDATE runs SET status = :status, end_time = :end_time, error = :error "
        "WHERE runs.id = :target_id AND runs.status = 'RUNNING' AND runs.deleted_at IS NULL"
    ),
    "insert_chunks": (
        'INSERT INTO metric_chunks (run_id, "key", count, steps, "values", timestamps) '
        "VALUES (:run_id, :key, :count, :steps, :values, :timestamps)"
    ),
    # A metric's latest value moves only forward: a later step, or the same step logged later.
    "upsert_latest": (
        'INSERT INTO latest_metrics (run_id, "key", value, step, "timestamp") '
        "VALUES (:run_id, :key, :value, :step, :timestamp) "
        'ON CONFLICT (run_id, "key") DO UPDATE SET value = excluded.value, step = excluded.step, '
        '"timestamp" = excluded."timestamp" WHERE excluded.step > latest_metrics.step OR '
        '(excluded.step = latest_metrics.step AND excluded."timestamp" >= latest_metrics."timestamp")'
    ),
}

# Everything attached to a page of runs, the ids as one parameter: a JSON array, a PostgreSQL array.
_EXTRAS = (
    "SELECT run_id, 'params', \"key\", value, CAST(NULL AS DOUBLE PRECISION) FROM params "
    "WHERE run_id {match} "
    "UNION ALL SELECT run_id, 'tags', \"key\", value, NULL FROM tags WHERE run_id {match} "
    "UNION ALL SELECT run_id, 'metrics', \"key\", CAST(NULL AS TEXT), value FROM latest_metrics "
    "WHERE run_id {match}"
)

_BY_DIALECT: Final = {
    "sqlite": {**_SQL, "extras_of_runs": _EXTRAS.format(match="IN (SELECT value FROM json_each(:ids))")},
    "postgresql": {
        **{name: _PARAMETER.sub(r"%(\1)s", sql) for name, sql in _SQL.items()},
        "extras_of_runs": _EXTRAS.format(match="= ANY(%(ids)s)"),
    },
}


def statement(conn: Connection, name: str) -> str:
    """The SQL of statement ``name`` for ``conn``'s dialect (SQLite or PostgreSQL, the two the metadata
    store runs on)."""
    return _BY_DIALECT[conn.dialect.name][name]


@contextmanager
def _cursor(conn: Connection, sql: str, parameters: Any) -> Iterator[Any]:
    """The driver cursor of ``conn``, closed after use; a driver error raised as SQLAlchemy's."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    error = conn.dialect.loaded_dbapi.Error
    try:
        yield cursor
    except error as exc:
        raise DBAPIError.instance(sql, parameters, exc, error, dialect=conn.dialect) from exc
    finally:
        cursor.close()


def execute(conn: Connection, sql: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """Run ``sql`` once per row on ``conn``'s driver cursor; return the rows changed in all.

    Raises:
        sqlalchemy.exc.DBAPIError: The driver's error, wrapped as ``Connection.execute`` wraps it
            (``sqlalchemy.exc.IntegrityError`` for a constraint).
    """
    with _cursor(conn, sql, rows) as cursor:
        if len(rows) == 1:
            cursor.execute(sql, rows[0])
        else:
            cursor.executemany(sql, rows)
        return int(cursor.rowcount)


def fetch(conn: Connection, sql: str, parameters: Mapping[str, Any]) -> list[Any]:
    """Run a query on ``conn``'s driver cursor; return its rows as plain tuples.

    Raises:
        sqlalchemy.exc.DBAPIError: The driver's error, wrapped as in ``execute``.
    """
    with _cursor(conn, sql, parameters) as cursor:
        cursor.execute(sql, parameters)
        return list(cursor.fetchall())
