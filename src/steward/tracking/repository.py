"""SQL of the tracking domain, through the engine and tables of ``steward.store``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Row, and_, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from steward.core.time import from_ms
from steward.errors import Conflict, NotFound
from steward.store.tables import artifacts, experiments, latest_metrics, metric_chunks, params, runs, tags
from steward.tracking.models import Artifact, Experiment, MetricSeries, Run, RunStatus
from steward.tracking.search import Expr, Field, to_sql

_ORDER_ATTRIBUTES = {
    "run_id": runs.c.id,
    "id": runs.c.id,
    "run_name": runs.c.name,
    "name": runs.c.name,
    "status": runs.c.status,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "parent_run_id": runs.c.parent_run_id,
    "user": runs.c.user_name,
}


def _upsert(conn: Connection, table: Any) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def experiment_from_row(row: Row[Any]) -> Experiment:
    """Build an ``Experiment`` from a row of ``experiments``."""
    created = from_ms(row.created_at)
    assert created is not None
    return Experiment(row.id, row.name, row.description, created, row.deleted_at is not None)


def find_experiment(conn: Connection, name_or_id: str) -> Experiment | None:
    """Return the experiment with that name (or else that id), or ``None``."""
    row = conn.execute(select(experiments).where(experiments.c.name == name_or_id)).first()
    if row is None:
        row = conn.execute(select(experiments).where(experiments.c.id == name_or_id)).first()
    return experiment_from_row(row) if row else None


def insert_experiment(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert an experiment row."""
    conn.execute(insert(experiments).values(**values))


def list_experiments(conn: Connection, include_deleted: bool) -> list[Experiment]:
    """Return experiments, oldest first."""
    query = select(experiments).order_by(experiments.c.created_at, experiments.c.id)
    if not include_deleted:
        query = query.where(experiments.c.deleted_at.is_(None))
    return [experiment_from_row(row) for row in conn.execute(query)]


def insert_run(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a run row."""
    conn.execute(insert(runs).values(**values))


def run_row(conn: Connection, run_id: str) -> Row[Any]:
    """Return the ``runs`` row of ``run_id``.

    Raises:
        NotFound: If there is no such run.
    """
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"run {run_id!r} not found", {"field": "run_id", "run_id": run_id})
    return row


def writable_run(conn: Connection, run_id: str, what: str) -> Row[Any]:
    """Return the run row if it can still be written to.

    Raises:
        NotFound: If there is no such run.
        Conflict: If it has ended or is deleted; the message names ``what`` was being written.
    """
    row = run_row(conn, run_id)
    if row.deleted_at is not None:
        raise Conflict(f"run {run_id} is deleted: cannot log {what}", {"field": "run_id", "run_id": run_id})
    if row.status != RunStatus.RUNNING:
        raise Conflict(
            f"run {run_id} is {row.status}: cannot log {what} to a finished run",
            {"field": "run_id", "run_id": run_id, "status": row.status},
        )
    return row


def load_runs(conn: Connection, rows: Sequence[Row[Any]]) -> list[Run]:
    """Attach params, tags and latest metrics to run rows, keeping their order."""
    ids = [row.id for row in rows]
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(
        lambda: {"params": {}, "tags": {}, "metrics": {}}
    )
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for kind, table in (("params", params), ("tags", tags), ("metrics", latest_metrics)):
            query = select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(chunk))
            for run_id, key, value in conn.execute(query):
                found[run_id][kind][key] = value
    return [_run_from_row(row, found[row.id]) for row in rows]


def _run_from_row(row: Row[Any], extra: Mapping[str, dict[str, Any]]) -> Run:
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
    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def insert_params(conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Record parameters, refusing a key already logged with another value.

    Raises:
        Conflict: naming the first clashing ``params.<key>``.
    """
    if not values:
        return
    rows = [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]
    conn.execute(_upsert(conn, params).values(rows).on_conflict_do_nothing(index_elements=["run_id", "key"]))
    stored = conn.execute(
        select(params.c.key, params.c.value).where(params.c.run_id == run_id, params.c.key.in_(list(values)))
    )
    for key, value in stored:
        if value != values[key]:
            raise Conflict(
                f"params.{key} was already logged as {value!r}; cannot change it to {values[key]!r}",
                {"field": f"params.{key}", "stored": value, "given": values[key]},
            )


def upsert_tags(conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Set tags, overwriting earlier values."""
    if not values:
        return
    statement = _upsert(conn, tags).values(
        [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": statement.excluded.value}
        )
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
        last = int(np.lexsort((item.timestamps, item.steps))[-1])
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
    conn.execute(insert(metric_chunks), chunk_rows)
    statement = _upsert(conn, latest_metrics)
    excluded = statement.excluded
    newer = (excluded.step > latest_metrics.c.step) | (
        (excluded.step == latest_metrics.c.step) & (excluded.timestamp >= latest_metrics.c.timestamp)
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={"value": excluded.value, "step": excluded.step, "timestamp": excluded.timestamp},
            where=newer,
        ),
        latest_rows,
    )
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
    statement = _upsert(conn, artifacts).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id", "path"],
            set_={
                "digest": statement.excluded.digest,
                "size": statement.excluded.size,
                "created_at": statement.excluded.created_at,
            },
        )
    )


def list_artifacts(conn: Connection, run_id: str) -> list[Artifact]:
    """Return a run's artifacts sorted by path."""
    rows = conn.execute(select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.path))
    return [Artifact(r.path, r.digest, r.size, from_ms(r.created_at)) for r in rows]  # type: ignore[arg-type]


def search_runs(
    conn: Connection,
    experiment_ids: Sequence[str],
    where: Expr | None,
    order: Sequence[tuple[Field, bool]],
    max_results: int,
    include_deleted: bool,
) -> list[Run]:
    """Return runs of the experiments that match ``where``, ordered, up to ``max_results``."""
    query = select(runs).where(runs.c.experiment_id.in_(list(experiment_ids)))
    if not include_deleted:
        query = query.where(runs.c.deleted_at.is_(None))
    if where is not None:
        query = query.where(to_sql(where))
    order_columns: list[Any] = []
    for index, (field, descending) in enumerate(order):
        if field.kind == "attributes":
            column: Any = _ORDER_ATTRIBUTES[field.key]
        else:
            table = {"metrics": latest_metrics, "params": params, "tags": tags}[field.kind].alias(f"o{index}")
            query = query.outerjoin(table, and_(table.c.run_id == runs.c.id, table.c.key == field.key))
            column = table.c.value
        # Runs without the value sort last either way, as in MLflow.
        order_columns.append(case((column.is_(None), 1), else_=0))
        order_columns.append(column.desc() if descending else column.asc())
    order_columns += [runs.c.start_time.desc(), runs.c.id.desc()]
    rows = conn.execute(query.order_by(*order_columns).limit(max_results)).all()
    return load_runs(conn, rows)


def count_metric_points(conn: Connection, run_ids: Sequence[str]) -> int:
    """Return how many metric points the runs hold (all keys)."""
    total = conn.execute(
        select(func.coalesce(func.sum(metric_chunks.c.count), 0)).where(
            metric_chunks.c.run_id.in_(list(run_ids))
        )
    ).scalar_one()
    return int(total)
