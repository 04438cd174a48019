"""``PipelineService``: records pipeline runs, their steps (as child tracking runs) and the step cache.

The orchestrator (``runner.py``) calls it in batches: one transaction per batch of step changes, so a
500-step run costs a handful of transactions rather than thousands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steward.core.time import now_ms
from steward.errors import InvalidInput
from steward.pipelines import repository as repo
from steward.pipelines.models import OutputRef, PipelineRunInfo, PipelineState, StepRun
from steward.store.platform import Platform
from steward.tracking import environment
from steward.tracking import repository as tracking_repo
from steward.tracking.models import RunStatus
from steward.tracking.service import TrackingService

MAX_LIST = 1000


@dataclass
class StepBatch:
    """Changes to write together.

    Attributes:
        steps: Step rows whose state changed.
        new_runs: Child runs to create: ``(step, status, param values)`` each (``step.run_id`` set).
        ended_runs: ``(run_id, status, end_time, error, host)`` of child runs that ended.
        artifacts: Artifact rows (step logs) of child runs.
        edges: Lineage edges.
        cache: Step cache rows.
    """

    steps: list[StepRun] = field(default_factory=list)
    new_runs: list[tuple[StepRun, RunStatus, Mapping[str, str]]] = field(default_factory=list)
    ended_runs: list[tuple[str, str, int, str | None, str]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    cache: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.steps or self.new_runs or self.ended_runs or self.artifacts or self.edges or self.cache
        )


class PipelineService:
    """Pipeline runs stored directly (embedded mode).

    Args:
        platform: Settings, metadata and blob stores.
        tracking: The tracking service the runs live in.
    """

    def __init__(self, platform: Platform, tracking: TrackingService) -> None:
        self.platform = platform
        self.tracking = tracking
        self._db = platform.metadata

    def begin(
        self,
        *,
        pipeline: str,
        reference: str,
        executor: str,
        params: Mapping[str, Any],
        steps: Sequence[StepRun],
        experiment: str,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        resumed_from: str | None = None,
    ) -> tuple[str, str]:
        """Start the tracking run of a pipeline run and record its nodes as PENDING.

        Returns:
            The run id and its experiment id.
        """
        run_tags = {"steward.pipeline": pipeline, "steward.executor": executor, **(tags or {})}
        if resumed_from:
            run_tags["steward.resumed_from"] = resumed_from
        run = self.tracking.create_run(
            experiment,
            name=run_name,
            parent_run_id=parent_run_id,
            tags=run_tags,
            system=environment.capture(),
        )
        loggable = {k: v for k, v in params.items() if isinstance(v, str | int | float | bool)}
        values = {
            "run_id": run.id,
            "pipeline": pipeline,
            "reference": reference,
            "status": PipelineState.RUNNING.value,
            "executor": executor,
            "params": json.dumps(dict(params), default=str),
            "resumed_from": resumed_from,
            "created_at": now_ms(),
        }
        try:
            if loggable:
                self.tracking.log_params(run.id, loggable)
            with self._db.transaction() as conn:
                repo.insert_pipeline_run(conn, values, steps)
        except BaseException as exc:
            self.tracking.end_run(run.id, RunStatus.FAILED, f"recording the pipeline run failed: {exc}")
            raise
        return run.id, run.experiment_id

    def write(self, pipeline_run_id: str, experiment_id: str, batch: StepBatch) -> None:
        """Write a batch of step changes in one transaction."""
        if not batch:
            return
        actor = self.platform.actor
        run_rows: list[dict[str, Any]] = []
        param_rows: list[dict[str, str]] = []
        tag_rows: list[dict[str, str]] = []
        for step, status, params in batch.new_runs:
            assert step.run_id is not None
            run_rows.append(
                {
                    "id": step.run_id,
                    "experiment_id": experiment_id,
                    "name": step.key,
                    "status": status.value,
                    "start_time": step.start_time or now_ms(),
                    "end_time": step.end_time if status.is_terminal else None,
                    "parent_run_id": pipeline_run_id,
                    "user_name": actor,
                    "host": step.host,
                    "entry_point": step.step,
                    "python_version": "",
                }
            )
            param_rows.extend({"run_id": step.run_id, "key": k, "value": v} for k, v in params.items())
            tag_rows.append({"run_id": step.run_id, "key": "steward.step", "value": step.step})
            tag_rows.append({"run_id": step.run_id, "key": "steward.pipeline_run", "value": pipeline_run_id})
            if step.cached_from:
                tag_rows.append(
                    {"run_id": step.run_id, "key": "steward.cached_from", "value": step.cached_from}
                )
        with self._db.transaction() as conn:
            tracking_repo.insert_runs(conn, run_rows)
            tracking_repo.insert_params_many(conn, param_rows)
            tracking_repo.upsert_tags_many(conn, tag_rows)
            tracking_repo.end_runs(conn, batch.ended_runs)
            tracking_repo.upsert_artifacts(conn, batch.artifacts)
            repo.update_steps(conn, pipeline_run_id, batch.steps)
            repo.remember_outputs(conn, self.platform.project, batch.cache)
            repo.insert_edges(conn, batch.edges)

    def finish(
        self, pipeline_run_id: str, state: PipelineState, outputs: Any = None, error: str | None = None
    ) -> None:
        """End the pipeline run and its tracking run."""
        with self._db.transaction() as conn:
            repo.finish_pipeline_run(
                conn,
                pipeline_run_id,
                {
                    "status": state.value,
                    "outputs": None if outputs is None else json.dumps(outputs),
                    "error": error,
                    "ended_at": now_ms(),
                },
            )
        status = {
            PipelineState.SUCCEEDED: RunStatus.FINISHED,
            PipelineState.FAILED: RunStatus.FAILED,
            PipelineState.KILLED: RunStatus.KILLED,
        }[state]
        self.tracking.end_run(pipeline_run_id, status, error)

    def cached(self, keys: Sequence[str]) -> dict[str, tuple[str, list[OutputRef]]]:
        """Recorded outputs by cache key, for those keys that have them."""
        if not keys:
            return {}
        with self._db.read() as conn:
            return repo.cached_outputs(conn, self.platform.project, keys)

    def get_run(self, run_id: str) -> PipelineRunInfo:
        """Return a pipeline run with its steps.

        Raises:
            NotFound: If there is no such pipeline run.
        """
        with self._db.read() as conn:
            return repo.get_pipeline_run(conn, self.platform.project, run_id)

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRunInfo]:
        """The newest pipeline runs, of one pipeline if named.

        Raises:
            InvalidInput: If ``limit`` is not between 1 and 1000.
        """
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST}", {"field": "limit"})
        with self._db.read() as conn:
            return repo.list_pipeline_runs(conn, self.platform.project, pipeline, limit)

    def step_of_run(self, run_id: str) -> tuple[str, str] | None:
        """For a step's child run: its pipeline run and node key."""
        with self._db.read() as conn:
            return repo.step_of_run(conn, self.platform.project, run_id)
