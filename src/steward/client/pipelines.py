"""``RemotePipelineService``: reading pipeline runs from a Steward server's REST API.

Read-only: pipelines run where their steps' workers can reach the store (embedded mode), and the server
shows what they recorded. ``get_run`` returns exactly what the embedded ``PipelineService.get_run``
does. ``list_runs`` returns the same runs in the same order, but the list route leaves out each step's
``inputs`` (they repeat the upstream steps' outputs), so those are empty here: get one run for them.
"""

from __future__ import annotations

from typing import Any

from steward.client.http import HttpClient, segment
from steward.errors import NotFound
from steward.pipelines.models import PipelineRunInfo, StepRun


def _run(run_id: str) -> str:
    # The server decodes %2F before routing, so an id that is empty or holds '/' would reach another
    # route; no pipeline run has such an id.
    if not run_id or "/" in run_id:
        raise NotFound(f"no pipeline run {run_id!r}", {"field": "run_id"})
    return f"/pipeline-runs/{segment(run_id)}"


class RemotePipelineService:
    """Pipeline runs over HTTP, with the reading methods of ``PipelineService``.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def get_run(self, run_id: str) -> PipelineRunInfo:
        """Return a pipeline run with its steps.

        Args:
            run_id: The pipeline's tracking run id.

        Raises:
            NotFound: If there is no such pipeline run.
        """
        return PipelineRunInfo.from_json(self.http.json("GET", _run(run_id)))

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRunInfo]:
        """The newest pipeline runs, of one pipeline if named (steps without their ``inputs``).

        Args:
            pipeline: Only runs of this pipeline.
            limit: At most this many runs (1 to 1000).

        Raises:
            InvalidInput: If ``limit`` is out of range.
        """
        params: dict[str, Any] = {"limit": limit}
        if pipeline is not None:
            params["pipeline"] = pipeline
        data = self.http.json("GET", "/pipeline-runs", params=params)
        return [PipelineRunInfo.from_json(run) for run in data["runs"]]

    def list_steps(self, run_id: str) -> list[StepRun]:
        """The steps of a pipeline run in topological order (without their ``inputs``).

        Args:
            run_id: The pipeline's tracking run id.

        Raises:
            NotFound: If there is no such pipeline run.
        """
        data = self.http.json("GET", f"{_run(run_id)}/steps")
        return [StepRun.from_json(step) for step in data["steps"]]
