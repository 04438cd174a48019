"""SQL of the tracking domain, through the engine and tables of ``steward.store``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Float,
    Row,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from steward.core.time import from_ms
from steward.errors import Conflict, NotFound
from steward.store.tables import artifacts, experiments, latest_metrics, metric_chunks, params, runs, tags
from steward.tracking import hot_sql
from steward.tracking.models import RUN_BASE_COLUMNS, Artifact, Experiment, MetricSeries, Run, RunStatus
from steward.tracking.search import ATTRIBUTES, Expr, Field, to_sql

# Hot statements are built once: constructing a SELECT costs ~4x more than executing a cached one.
# Tenancy: every read of an experiment or a run names the acting project in its WHERE clause.
_IN_PROJECT = experiments.c.project == bindparam("project")
_EXPERIMENT_BY_NAME = select(experiments).where(experiments.c.name == bindparam("name"), _IN_PROJECT)
_EXPERIMENT_BY_ID = select(experiments).where(experiments.c.id == bindparam("id"), _IN_PROJECT)
_INSERT_EXPERIMENT = insert(experiments)
_INSERT_RUN = insert(runs)
_RUN_BY_ID = (
    select(runs)
    .join(experiments, experiments.c.id == runs.c.experiment_id)
    .where(runs.c.id == bindparam("run_id"), _IN_PROJECT)
)
_UPDATE_RUN = update(runs).where(runs.c.id == bindparam("target_id"))
_END_RUNNING_RUN = update(runs).where(
    runs.c.id == bindparam("target_id"), runs.c.status == "RUNNING", runs.c.deleted_at.is_(None)
)
_INSERT_ARTIFACT = insert(artifacts)
_PARAMS_OF_RUN = select(params.c.key, params.c.value).where(params.c.run_id == bindparam("run_id"))
# The rows the driver-level statements take as they are (``hot_sql``); anything else goes through these.
_HOT_RUN_COLUMNS = frozenset(hot_sql.RUN_COLUMNS)
_HOT_END_COLUMNS = frozenset({"status", "end_time", "error"})
_HOT_ARTIFACT_COLUMNS = frozenset({"run_id", "path", "digest", "size", "created_at"})


def _extras(where: Any) -> Any:
    """One round trip for everything attached to runs: (run_id, kind, key, text value, number value)."""
    return union_all(
        select(
            params.c.run_id,
            literal("params"),
            params.c.key,
            params.c.value,
            cast(null(), Float).label("number"),
        ).where(where(params.c.run_id)),
        select(tags.c.run_id, literal("tags"), tags.c.key, tags.c.value, cast(null(), Float)).where(
            where(tags.c.run_id)
        ),
        select(
            latest_metrics.c.run_id,
            literal("metrics"),
            latest_metrics.c.key,
            cast(null(), Text),
            latest_metrics.c.value,
        ).where(where(latest_metrics.c.run_id)),
    )


_EXTRAS_OF_RUN = _extras(lambda column: column == bindparam("run_id"))


def _extras_of_runs(conn: Connection, ids: list[str]) -> list[tuple[str, str, str, str | None, float | None]]:
    """``(run_id, kind, key, text, number)`` of everything attached to the runs ``ids``, through the
    driver with the ids as one parameter (SQLAlchemy's expanding IN and result rows cost as much as the
    query)."""
    ids_value: Any = json.dumps(ids) if conn.dialect.name == "sqlite" else ids
    return hot_sql.fetch(conn, hot_sql.statement(conn, "extras_of_runs"), {"ids": ids_value})


def _dialect_statements(dialect: Any) -> dict[str, Any]:
    tag_insert = dialect.insert(tags)
    artifact = dialect.insert(artifacts)
    return {
        "tags": tag_insert.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": tag_insert.excluded.value}
        ),
        "artifact": artifact.on_conflict_do_update(
            index_elements=["run_id", "path"],
            set_={
                "digest": artifact.excluded.digest,
                "size": artifact.excluded.size,
                "created_at": artifact.excluded.created_at,
            },
        ),
    }


_STATEMENTS = {"sqlite": _dialect_statements(sqlite), "postgresql": _dialect_statements(postgresql)}


def _statement(conn: Connection, name: str) -> Any:
    return _STATEMENTS[conn.dialect.name][name]


def experiment_from_row(row: Row[Any]) -> Experiment:
    """Build an ``Experiment`` from a row of ``experiments``."""
    created = from_ms(row.created_at)
    assert created is not None
    return Experiment(row.id, row.name, row.description, created, row.deleted_at is not None)


def find_experiment(conn: Connection, project: str, name_or_id: str) -> Experiment | None:
    """Return the project's experiment with that name (or else that id), or ``None``."""
    row = conn.execute(_EXPERIMENT_BY_NAME, {"name": name_or_id, "project": project}).first()
    if row is None:
        row = conn.execute(_EXPERIMENT_BY_ID, {"id": name_or_id, "project": project}).first()
    return experiment_from_row(row) if row else None


def insert_experiment(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert an experiment row."""
    conn.execute(_INSERT_EXPERIMENT, dict(values))


def list_experiments(conn: Connection, project: str, include_deleted: bool) -> list[Experiment]:
    """Return the project's experiments, oldest first."""
    query = (
        select(experiments)
        .where(experiments.c.project == project)
        .order_by(experiments.c.created_at, experiments.c.id)
    )
    if not include_deleted:
        query = query.where(experiments.c.deleted_at.is_(None))
    return [experiment_from_row(row) for row in conn.execute(query)]


def insert_run(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a run row."""
    if values.keys() == _HOT_RUN_COLUMNS:
        hot_sql.execute(conn, hot_sql.statement(conn, "insert_run"), [values])
    else:
        conn.execute(_INSERT_RUN, dict(values))


def run_row(conn: Connection, run_id: str, project: str) -> Row[Any]:
    """Return the ``runs`` row of ``run_id`` if its experiment is in ``project``.

    Raises:
        NotFound: If there is no such run in the project (another project's runs are not visible).
    """
    row = conn.execute(_RUN_BY_ID, {"run_id": run_id, "project": project}).first()
    if row is None:
        raise NotFound(f"run {run_id!r} not found", {"field": "run_id", "run_id": run_id})
    return row


def writable_run(conn: Connection, run_id: str, project: str, what: str) -> Row[Any]:
    """Return the run row if it is in ``project`` and can still be written to.

    Raises:
        NotFound: If there is no such run in the project.
        Conflict: If it has ended or is deleted; the message names ``what`` was being written.
    """
    row = run_row(conn, run_id, project)
    if row.deleted_at is not None:
        raise Conflict(f"run {run_id} is deleted: cannot log {what}", {"field": "run_id", "run_id": run_id})
    if row.status != RunStatus.RUNNING:
        raise Conflict(
            f"run {run_id} is {row.status}: cannot log {what} to a finished run",
            {"field": "run_id", "run_id": run_id, "status": row.status},
        )
    return row


def run_from_values(values: Mapping[str, Any], tags: Mapping[str, str]) -> Run:
    """Build the ``Run`` just inserted with ``values`` (no read needed: it has no params or metrics yet)."""
    row = {column.name: None for column in runs.columns} | dict(values)
    return _run_from_row(_AttrRow(row), {"params": {}, "tags": dict(tags), "metrics": {}})


class _AttrRow(dict[str, Any]):
    def __getattr__(self, name: str) -> Any:
        return self[name]


def load_runs(
    conn: Connection, rows: Sequence[Row[Any]], override: Mapping[str, Any] | None = None
) -> list[Run]:
    """Attach params, tags and latest metrics to run rows, keeping their order.

    Args:
        conn: The connection.
        rows: Rows of ``runs``.
        override: Column values to use instead of the rows' (for a row just updated).
    """
    if override:
        rows = [_AttrRow({**row._asdict(), **override}) for row in rows]  # type: ignore[misc]
    ids = [row.id for row in rows]
    found: dict[str, dict[str, dict[str, Any]]] = {i: {"params": {}, "tags": {}, "metrics": {}} for i in ids}
    batches: list[Sequence[Any]]
    if len(ids) == 1:
        batches = [conn.execute(_EXTRAS_OF_RUN, {"run_id": ids[0]}).all()]
    else:
        batches = [_extras_of_runs(conn, ids[start : start + 5000]) for start in range(0, len(ids), 5000)]
    for batch in batches:
        for run_id, kind, key, text, number in batch:
            found[run_id][kind][key] = number if kind == "metrics" else text
    return [_run_from_row(row, found[row.id]) for row in rows]


def _run_from_row(row: Any, extra: Mapping[str, dict[str, Any]]) -> Run:
    start = from_ms(row.start_time)
    assert start is not None
    return Run(
        id=row.id,
        experiment_id=row.experiment_id,
        name=row.name,
        status=RunStatus(row.status),
        start_time=start,
        end_time=from_ms(row.end_time),
        parent_run_id=row.parent_run_id,
        error=row.error,
        user=row.user_name,
        host=row.host,
        entry_point=row.entry_point,
        git_commit=row.git_commit,
        git_dirty=None if row.git_dirty is None else bool(row.git_dirty),
        python_version=row.python_version,
        environment_digest=row.environment_digest,
        deleted=row.deleted_at is not None,
        params=dict(sorted(extra["params"].items())),
        tags=dict(sorted(extra["tags"].items())),
        metrics=dict(sorted(extra["metrics"].items())),
    )


def update_run(conn: Connection, run_id: str, values: Mapping[str, Any]) -> None:
    """Update columns of one run."""
    conn.execute(_UPDATE_RUN, {"target_id": run_id, **values})


def end_writable_run(conn: Connection, run_id: str, project: str, values: Mapping[str, Any]) -> None:
    """Set the end columns of a RUNNING, undeleted run in one statement.

    Raises:
        NotFound: If there is no such run.
        Conflict: If it has already ended or is deleted.
    """
    row = {"target_id": run_id, **values}
    if values.keys() == _HOT_END_COLUMNS:
        changed = hot_sql.execute(conn, hot_sql.statement(conn, "end_run"), [row])
    else:
        changed = conn.execute(_END_RUNNING_RUN, row).rowcount
    if changed != 1:
        writable_run(conn, run_id, project, "its end")
        raise Conflict(f"run {run_id} changed while ending it", {"field": "run_id", "run_id": run_id})


def insert_params(conn: Connection, run_id: str, project: str, values: Mapping[str, str]) -> None:
    """Record parameters of a writable run, refusing a key already logged with another value.

    Raises:
        NotFound: If there is no such run.
        Conflict: If the run has ended or is deleted, or naming the first clashing ``params.<key>``.
    """
    if not values:
        writable_run(conn, run_id, project, "params")
        return
    rows = [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]
    inserted = hot_sql.execute(conn, hot_sql.statement(conn, "insert_params"), rows)
    if inserted == len(rows):
        return  # every key was new, so nothing can clash (drivers that cannot count report -1)
    # Nothing or not everything was inserted: the run is not writable, or keys were logged before.
    writable_run(conn, run_id, project, "params")
    for key, value in conn.execute(_PARAMS_OF_RUN, {"run_id": run_id}):
        if key in values and value != values[key]:
            raise Conflict(
                f"params.{key} was already logged as {value!r}; cannot change it to {values[key]!r}",
                {"field": f"params.{key}", "stored": value, "given": values[key]},
            )


def upsert_tags(conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Set tags, overwriting earlier values."""
    if not values:
        return
    conn.execute(
        _statement(conn, "tags"), [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]
    )


def insert_metric_series(conn: Connection, run_id: str, series: Iterable[MetricSeries]) -> int:
    """Append each series as one chunk and move each metric's latest value forward."""
    series = list(series)
    chunk_rows: list[dict[str, Any]] = []
    latest_rows: list[dict[str, Any]] = []
    for item in series:
        if len(item) == 0:
            continue
        chunk_rows.append(
            {
                "run_id": run_id,
                "key": item.key,
                "count": len(item),
                "steps": item.steps.astype("<i8", copy=False).tobytes(),
                "values": item.values.astype("<f8", copy=False).tobytes(),
                "timestamps": item.timestamps.astype("<i8", copy=False).tobytes(),
            }
        )
        last = 0 if len(item) == 1 else int(np.lexsort((item.timestamps, item.steps))[-1])
        latest_rows.append(
            {
                "run_id": run_id,
                "key": item.key,
                "value": float(item.values[last]),
                "step": int(item.steps[last]),
                "timestamp": int(item.timestamps[last]),
            }
        )
    if not chunk_rows:
        return 0
    hot_sql.execute(conn, hot_sql.statement(conn, "insert_chunks"), chunk_rows)
    hot_sql.execute(conn, hot_sql.statement(conn, "upsert_latest"), latest_rows)
    return sum(len(item) for item in series if len(item))


def metric_history(conn: Connection, run_id: str, key: str) -> MetricSeries | None:
    """Return every point of ``key`` in ``run_id`` sorted by step, then time; ``None`` if never logged."""
    rows = conn.execute(
        select(metric_chunks.c.steps, metric_chunks.c["values"], metric_chunks.c.timestamps)
        .where(metric_chunks.c.run_id == run_id, metric_chunks.c.key == key)
        .order_by(metric_chunks.c.id)
    ).all()
    if not rows:
        return None
    steps = np.concatenate([np.frombuffer(r[0], dtype="<i8") for r in rows]).astype(np.int64)
    values = np.concatenate([np.frombuffer(r[1], dtype="<f8") for r in rows]).astype(np.float64)
    stamps = np.concatenate([np.frombuffer(r[2], dtype="<i8") for r in rows]).astype(np.int64)
    order = np.lexsort((stamps, steps), axis=0)
    return MetricSeries(key, steps[order], values[order], stamps[order])


def upsert_artifact(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record (or replace) the artifact at a path of a run."""
    conn.execute(_statement(conn, "artifact"), dict(values))


def insert_artifact(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record an artifact at a path the run does not have yet."""
    if values.keys() == _HOT_ARTIFACT_COLUMNS:
        hot_sql.execute(conn, hot_sql.statement(conn, "insert_artifact"), [values])
    else:
        conn.execute(_INSERT_ARTIFACT, dict(values))


def list_artifacts(conn: Connection, run_id: str) -> list[Artifact]:
    """Return a run's artifacts sorted by path."""
    rows = conn.execute(select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.path))
    return [Artifact(r.path, r.digest, r.size, from_ms(r.created_at)) for r in rows]


def search_runs(
    conn: Connection,
    experiment_ids: Sequence[str],
    where: Expr | None,
    order: Sequence[tuple[Field, bool]],
    max_results: int,
    include_deleted: bool,
) -> list[Run]:
    """Return runs of the experiments that match ``where``, ordered, up to ``max_results``."""
    query = _search_query(select(runs), experiment_ids, where, order, max_results, include_deleted)
    return load_runs(conn, conn.execute(query).all())


_COLUMN_RUN_FIELDS = (
    runs.c.id, runs.c.experiment_id, runs.c.name, runs.c.status, runs.c.start_time, runs.c.end_time,
    runs.c.parent_run_id,
)  # fmt: skip


def search_run_columns(
    conn: Connection,
    experiment_ids: Sequence[str],
    where: Expr | None,
    order: Sequence[tuple[Field, bool]],
    max_results: int,
    include_deleted: bool,
) -> dict[str, list[Any]]:
    """``search_runs`` laid out by column (``models.run_columns``' shape), without a ``Run`` per row."""
    query = _search_query(
        select(*_COLUMN_RUN_FIELDS), experiment_ids, where, order, max_results, include_deleted
    )
    rows = conn.execute(query).all()
    if not rows:
        return {name: [] for name in RUN_BASE_COLUMNS}
    columns: dict[str, list[Any]] = dict(
        zip(RUN_BASE_COLUMNS, map(list, zip(*rows, strict=True)), strict=True)
    )
    position = {run_id: i for i, run_id in enumerate(columns["run_id"])}
    ids = columns["run_id"]
    extras: dict[str, dict[str, list[Any]]] = {"metrics": {}, "params": {}, "tags": {}}
    missing, n = float("nan"), len(ids)
    for start in range(0, n, 5000):
        for run_id, kind, key, text, number in _extras_of_runs(conn, ids[start : start + 5000]):
            values = extras[kind].get(key)
            if values is None:
                values = extras[kind][key] = [missing] * n
            values[position[run_id]] = number if kind == "metrics" else text
    for kind in ("metrics", "params", "tags"):
        for key in sorted(extras[kind]):
            columns[f"{kind}.{key}"] = extras[kind][key]
    return columns


def _search_query(
    query: Any,
    experiment_ids: Sequence[str],
    where: Expr | None,
    order: Sequence[tuple[Field, bool]],
    max_results: int,
    include_deleted: bool,
) -> Any:
    """``query`` (a SELECT from ``runs``) narrowed to the search, ordered and limited."""
    query = query.where(runs.c.experiment_id.in_(list(experiment_ids)))
    if not include_deleted:
        query = query.where(runs.c.deleted_at.is_(None))
    if where is not None:
        query = query.where(to_sql(where))
    order_columns: list[Any] = []
    for index, (field, descending) in enumerate(order):
        if field.kind == "attributes":
            column: Any = ATTRIBUTES[field.key]
        else:
            table = {"metrics": latest_metrics, "params": params, "tags": tags}[field.kind].alias(f"o{index}")
            query = query.outerjoin(table, and_(table.c.run_id == runs.c.id, table.c.key == field.key))
            column = table.c.value
        # Runs without the value sort last either way, as in MLflow.
        order_columns.append(case((column.is_(None), 1), else_=0))
        order_columns.append(column.desc() if descending else column.asc())
    order_columns += [runs.c.start_time.desc(), runs.c.id.desc()]
    return query.order_by(*order_columns).limit(max_results)


def count_metric_points(conn: Connection, run_ids: Sequence[str]) -> int:
    """Return how many metric points the runs hold (all keys)."""
    total = conn.execute(
        select(func.coalesce(func.sum(metric_chunks.c.count), 0)).where(
            metric_chunks.c.run_id.in_(list(run_ids))
        )
    ).scalar_one()
    return int(total)


def insert_runs(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many run rows in one statement (a pipeline's step runs)."""
    if rows:
        conn.execute(_INSERT_RUN, [dict(r) for r in rows])


def insert_params_many(conn: Connection, rows: Sequence[Mapping[str, str]]) -> None:
    """Insert ``{"run_id", "key", "value"}`` rows of new runs (nothing to clash with)."""
    if rows:
        conn.execute(insert(params), [dict(r) for r in rows])


def upsert_tags_many(conn: Connection, rows: Sequence[Mapping[str, str]]) -> None:
    """Set ``{"run_id", "key", "value"}`` tags of many runs."""
    if rows:
        conn.execute(_statement(conn, "tags"), [dict(r) for r in rows])


_END_RUNS = (
    update(runs)
    .where(runs.c.id == bindparam("target_id"), runs.c.status == "RUNNING")
    .values(
        status=bindparam("new_status"),
        end_time=bindparam("new_end"),
        error=bindparam("new_error"),
        host=bindparam("new_host"),
    )
)


def end_runs(conn: Connection, rows: Sequence[tuple[str, str, int, str | None, str]]) -> None:
    """End many RUNNING runs: ``(run_id, status, end_time, error, host)`` each (ended ones are left alone)."""
    if rows:
        conn.execute(
            _END_RUNS,
            [
                {"target_id": r, "new_status": s, "new_end": t, "new_error": e, "new_host": h}
                for r, s, t, e, h in rows
            ],
        )


def upsert_artifacts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record many artifacts (``run_id``, ``path``, ``digest``, ``size``, ``created_at``)."""
    if rows:
        conn.execute(_statement(conn, "artifact"), [dict(r) for r in rows])
