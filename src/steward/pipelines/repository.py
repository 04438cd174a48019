"""SQL of the pipelines domain: pipeline runs, their step rows and the step cache."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from steward.errors import NotFound
from steward.pipelines.models import OutputRef, PipelineRunInfo, PipelineState, StepRun, StepState
from steward.store.tables import experiments, lineage_edges, pipeline_runs, runs, step_cache, step_runs

_STEP_COLUMNS = (
    "status",
    "run_id",
    "attempts",
    "start_time",
    "end_time",
    "cache_key",
    "cached_from",
    "error",
    "inputs",
    "outputs",
    "host",
)
_UPDATE_STEP = (
    update(step_runs)
    .where(step_runs.c.pipeline_run_id == bindparam("p_run"), step_runs.c.key == bindparam("p_key"))
    .values({c: bindparam(f"v_{c}") for c in _STEP_COLUMNS})
)


def step_row(pipeline_run_id: str, position: int, step: StepRun) -> dict[str, Any]:
    """The ``step_runs`` row of ``step``."""
    return {
        "pipeline_run_id": pipeline_run_id,
        "key": step.key,
        "position": position,
        "step": step.step,
        "status": step.state.value,
        "upstream": json.dumps(list(step.upstream)),
        "run_id": step.run_id,
        "attempts": step.attempts,
        "start_time": step.start_time,
        "end_time": step.end_time,
        "cache_key": step.cache_key,
        "cached_from": step.cached_from,
        "error": step.error,
        "inputs": json.dumps(dict(step.inputs), default=str),
        "outputs": json.dumps([o.to_json() for o in step.outputs]),
        "host": step.host,
        "resources": json.dumps(dict(step.resources)),
    }


def insert_pipeline_run(conn: Connection, values: Mapping[str, Any], steps: Sequence[StepRun]) -> None:
    """Insert the pipeline run and one row per node."""
    conn.execute(insert(pipeline_runs), dict(values))
    conn.execute(insert(step_runs), [step_row(values["run_id"], i, s) for i, s in enumerate(steps)])


def update_steps(conn: Connection, pipeline_run_id: str, steps: Iterable[StepRun]) -> None:
    """Write the changing columns of several steps."""
    rows = []
    for s in steps:
        row = step_row(pipeline_run_id, 0, s)
        rows.append({"p_run": pipeline_run_id, "p_key": s.key, **{f"v_{c}": row[c] for c in _STEP_COLUMNS}})
    if rows:
        conn.execute(_UPDATE_STEP, rows)


def finish_pipeline_run(conn: Connection, run_id: str, values: Mapping[str, Any]) -> None:
    """Set the end state of a pipeline run."""
    conn.execute(update(pipeline_runs).where(pipeline_runs.c.run_id == run_id).values(**values))


def _in_project(project: str) -> Any:
    """The condition that a pipeline run's tracking run belongs to an experiment of ``project``."""
    return pipeline_runs.c.run_id.in_(
        select(runs.c.id)
        .join(experiments, experiments.c.id == runs.c.experiment_id)
        .where(experiments.c.project == project)
    )


def cached_outputs(
    conn: Connection, project: str, keys: Sequence[str]
) -> dict[str, tuple[str, list[OutputRef]]]:
    """For each cache key known in ``project``: the step run that produced the outputs, and the outputs.

    The cache is per project: a step never reuses the outputs another project's run produced.
    """
    out: dict[str, tuple[str, list[OutputRef]]] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        query = select(step_cache.c.cache_key, step_cache.c.run_id, step_cache.c.outputs).where(
            step_cache.c.cache_key.in_(chunk), step_cache.c.project == project
        )
        for key, run_id, outputs in conn.execute(query):
            out[key] = (run_id, [OutputRef.from_json(o) for o in json.loads(outputs)])
    return out


def remember_outputs(conn: Connection, project: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record outputs by project and cache key (a key seen before keeps its first outputs)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(step_cache).on_conflict_do_nothing(index_elements=["project", "cache_key"])
    conn.execute(statement, [{**r, "project": project} for r in rows])


def insert_edges(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert lineage edges."""
    if rows:
        conn.execute(insert(lineage_edges), [dict(r) for r in rows])


def _step_from_row(row: Any) -> StepRun:
    return StepRun(
        key=row.key,
        step=row.step,
        state=StepState(row.status),
        upstream=json.loads(row.upstream),
        run_id=row.run_id,
        attempts=row.attempts,
        start_time=row.start_time,
        end_time=row.end_time,
        cache_key=row.cache_key,
        cached_from=row.cached_from,
        error=row.error,
        inputs=json.loads(row.inputs),
        outputs=[OutputRef.from_json(o) for o in json.loads(row.outputs)],
        host=row.host,
        resources=json.loads(row.resources),
    )


def _run_from_row(row: Any, steps: list[StepRun]) -> PipelineRunInfo:
    return PipelineRunInfo(
        run_id=row.run_id,
        pipeline=row.pipeline,
        reference=row.reference,
        state=PipelineState(row.status),
        executor=row.executor,
        params=json.loads(row.params),
        start_time=row.created_at,
        end_time=row.ended_at,
        steps=steps,
        outputs=json.loads(row.outputs) if row.outputs else None,
        resumed_from=row.resumed_from,
        error=row.error,
    )


def get_pipeline_run(conn: Connection, project: str, run_id: str) -> PipelineRunInfo:
    """Return a pipeline run of ``project`` with its steps in order.

    Raises:
        NotFound: If ``run_id`` is not a pipeline run of the project.
    """
    row = conn.execute(
        select(pipeline_runs).where(pipeline_runs.c.run_id == run_id, _in_project(project))
    ).first()
    if row is None:
        raise NotFound(f"no pipeline run {run_id!r}", {"field": "run_id"})
    steps = conn.execute(
        select(step_runs).where(step_runs.c.pipeline_run_id == run_id).order_by(step_runs.c.position)
    )
    return _run_from_row(row, [_step_from_row(s) for s in steps])


def list_pipeline_runs(
    conn: Connection, project: str, pipeline: str | None, limit: int
) -> list[PipelineRunInfo]:
    """The newest pipeline runs of ``project`` (of one pipeline, if named)."""
    query = (
        select(pipeline_runs)
        .where(_in_project(project))
        .order_by(pipeline_runs.c.created_at.desc(), pipeline_runs.c.run_id.desc())
    )
    if pipeline is not None:
        query = query.where(pipeline_runs.c.pipeline == pipeline)
    rows = list(conn.execute(query.limit(limit)))
    steps: dict[str, list[StepRun]] = {r.run_id: [] for r in rows}
    if rows:
        states = (
            select(step_runs)
            .where(step_runs.c.pipeline_run_id.in_(list(steps)))
            .order_by(step_runs.c.pipeline_run_id, step_runs.c.position)
        )
        for s in conn.execute(states):
            steps[s.pipeline_run_id].append(_step_from_row(s))
    return [_run_from_row(r, steps[r.run_id]) for r in rows]


def step_of_run(conn: Connection, project: str, run_id: str) -> tuple[str, str] | None:
    """For a step's child run id in ``project``: (pipeline run id, node key), or None."""
    row = conn.execute(
        select(step_runs.c.pipeline_run_id, step_runs.c.key)
        .join(pipeline_runs, pipeline_runs.c.run_id == step_runs.c.pipeline_run_id)
        .where(step_runs.c.run_id == run_id, _in_project(project))
    ).first()
    return None if row is None else (row[0], row[1])
