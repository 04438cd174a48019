"""Pipeline routes: the recorded pipeline runs and their steps' states, read-only, under ``/api/v1``.

Pipelines run in embedded mode (their workers write to the store); these routes show what they recorded.
Each route calls one ``PipelineService`` method and maps the result to JSON. Plain ``def`` routes run in
FastAPI's threadpool, so store reads never hold up the event loop.

=======  ==============================================  =====================================
Method   Path                                            Answer
=======  ==============================================  =====================================
GET      ``/pipeline-runs?pipeline=&limit=50``           ``{"runs": [PipelineRun…]}``, newest first
GET      ``/pipeline-runs/{run_id}``                     ``PipelineRun`` with every step in full
GET      ``/pipeline-runs/{run_id}/steps``               ``{"steps": [Step…]}`` in topological order
=======  ==============================================  =====================================

A ``PipelineRun`` is ``PipelineRunInfo.to_json()`` with ``counts`` added (steps per state). The list and
the steps route leave each step's ``inputs`` out: they repeat the upstream steps' outputs and would make a
list of large runs heavy; ``GET /pipeline-runs/{run_id}`` has them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Pipelines
from steward.api.responses import OrjsonResponse
from steward.pipelines.models import PipelineRunInfo, StepRun

router = APIRouter(prefix=API_PREFIX, tags=["pipelines"])


def _step(step: StepRun) -> dict[str, Any]:
    out = step.to_json()
    del out["inputs"]
    return out


def _run(info: PipelineRunInfo, full: bool) -> dict[str, Any]:
    out = info.to_json()
    if not full:
        out["steps"] = [_step(s) for s in info.steps]
    out["counts"] = info.counts()
    return out


@router.get("/pipeline-runs", dependencies=[requires("pipelines:read")], summary="List pipeline runs")
def list_pipeline_runs(pipelines: Pipelines, pipeline: str | None = None, limit: int = 50) -> OrjsonResponse:
    """Return ``{"runs": [...]}``, newest first, of one pipeline if named; 400 unless 1 <= limit <= 1000."""
    found = pipelines.list_runs(pipeline, limit)
    return OrjsonResponse({"runs": [_run(info, full=False) for info in found]})


@router.get(
    "/pipeline-runs/{run_id}", dependencies=[requires("pipelines:read")], summary="Get a pipeline run"
)
def get_pipeline_run(run_id: str, pipelines: Pipelines) -> OrjsonResponse:
    """Return the pipeline run with its steps in full; 404 if ``run_id`` is not a pipeline run."""
    return OrjsonResponse(_run(pipelines.get_run(run_id), full=True))


@router.get(
    "/pipeline-runs/{run_id}/steps",
    dependencies=[requires("pipelines:read")],
    summary="List a pipeline run's steps",
)
def list_pipeline_steps(run_id: str, pipelines: Pipelines) -> OrjsonResponse:
    """Return ``{"steps": [...]}``: state, attempts, times, cache source, error and host of each step."""
    info = pipelines.get_run(run_id)
    return OrjsonResponse({"steps": [_step(s) for s in info.steps]})
