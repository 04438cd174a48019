"""``RemoteTrackingService``: the ``TrackingBackend`` over a Steward server's REST API.

Same signatures, return types and errors as the embedded ``TrackingService``. Values are checked and
converted here with the same functions the service uses (parameter and tag text, metric arrays, artifact
paths), so a bad value fails before it is sent and with the same message as in embedded mode; the server
checks everything again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import numpy as np

from steward.client.http import HttpClient, segment
from steward.core.names import validate_key, validate_name
from steward.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from steward.tracking.models import (
    Artifact,
    Experiment,
    MetricSeries,
    Run,
    RunStatus,
    SystemInfo,
    run_columns,
)
from steward.tracking.validation import check_artifact_path, check_metric_arrays, param_text, tag_text

_CHUNK = 1024 * 1024


def _run(run_id: str) -> str:
    # The server decodes %2F before routing, so an id that is empty or holds '/' would reach another
    # route; no run has such an id.
    if not run_id or "/" in run_id:
        raise NotFound(f"run {run_id!r} not found", {"field": "run_id", "run_id": run_id})
    return f"/runs/{segment(run_id)}"


def _artifact_url(run_id: str, artifact_path: str) -> str:
    # ``check_artifact_path`` has removed '.' and '..' segments, so '/' can stay unescaped.
    return f"{_run(run_id)}/artifacts/{quote(artifact_path, safe='/')}"


class RemoteTrackingService:
    """Tracking over HTTP: what ``steward.connect("http://…")`` uses.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    # -- experiments -------------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        """Create an experiment.

        Raises:
            InvalidInput: If ``name`` is not a valid name.
            AlreadyExists: If an experiment has that name.
        """
        validate_name(name, "experiment")
        data = self.http.json("POST", "/experiments", {"name": name, "description": description})
        return Experiment.from_json(data)

    def get_experiment(self, name_or_id: str) -> Experiment:
        """Return an experiment by name or id.

        Raises:
            NotFound: If there is none.
        """
        if not name_or_id or "/" in name_or_id:  # no route takes these; see ``_run``
            raise NotFound(f"experiment {name_or_id!r} not found", {"field": "experiment"})
        return Experiment.from_json(self.http.json("GET", f"/experiments/{segment(name_or_id)}"))

    def get_or_create_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``, creating it first if needed (safe under races)."""
        try:
            return self.get_experiment(name)
        except NotFound:
            try:
                return self.create_experiment(name)
            except AlreadyExists:
                return self.get_experiment(name)

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments, oldest first."""
        data = self.http.json("GET", "/experiments", params={"include_deleted": bool(include_deleted)})
        return [Experiment.from_json(e) for e in data["experiments"]]

    # -- runs --------------------------------------------------------------------------------------

    def create_run(
        self,
        experiment: str,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        system: SystemInfo | None = None,
    ) -> Run:
        """Start a RUNNING run in ``experiment``, creating the experiment if it does not exist.

        Raises:
            InvalidInput: For a bad experiment name or tag.
            NotFound: If ``parent_run_id`` names no run.
        """
        body: dict[str, Any] = {"experiment": experiment, "name": name, "parent_run_id": parent_run_id}
        if tags:
            body["tags"] = {key: tag_text(key, value) for key, value in tags.items()}
        if system is not None:
            body["system"] = {**asdict(system), "packages": dict(system.packages)}
        return Run.from_json(self.http.json("POST", "/runs", body))

    def get_run(self, run_id: str) -> Run:
        """Return a run with its params, tags and latest metrics.

        Raises:
            NotFound: If there is no such run.
        """
        return Run.from_json(self.http.json("GET", _run(run_id)))

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        metrics: Sequence[MetricSeries] = (),
    ) -> None:
        """Write the run's last metric points, then end it with a terminal status.

        Raises:
            InvalidInput: If ``status`` is RUNNING.
            Conflict: If the run has already ended.
        """
        value = status.value if isinstance(status, RunStatus) else str(status)
        if metrics:
            self.log_metrics(run_id, metrics)
        self.http.request("POST", f"{_run(run_id)}/end", json={"status": value, "error": error})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Record parameters.

        Raises:
            InvalidInput: For a bad key or value.
            Conflict: If a key was logged with a different value, or the run has ended.
        """
        values = {key: param_text(key, value) for key, value in params.items()}
        self.http.request("POST", f"{_run(run_id)}/params", json={"params": values})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags (allowed on ended runs too).

        Raises:
            NotFound: If there is no such run.
        """
        values = {key: tag_text(key, value) for key, value in tags.items()}
        self.http.request("POST", f"{_run(run_id)}/tags", json={"tags": values})

    def log_metrics(self, run_id: str, series: Sequence[MetricSeries]) -> int:
        """Append metric points, all in one transaction on the server.

        Raises:
            InvalidInput: For a bad key, a non-finite value or a non-integer step (before sending).
            Conflict: If the run has ended.
        """
        columns = []
        for item in series:
            steps, values, stamps = check_metric_arrays(item.key, item.values, item.steps, item.timestamps)
            columns.append({"key": item.key, "steps": steps, "values": values, "timestamps": stamps})
        data = self.http.json("POST", f"{_run(run_id)}/metrics", {"metrics": columns})
        return int(data["written"])

    def get_metric_history(self, run_id: str, key: str) -> MetricSeries:
        """Return every point of a metric, ordered by step then time.

        Raises:
            NotFound: If the run does not exist or never logged ``key``.
        """
        validate_key(key, "metrics")
        data = self.http.json("GET", f"{_run(run_id)}/metrics/{segment(key)}")
        return MetricSeries(
            data["key"],
            np.asarray(data["steps"], dtype=np.int64),
            np.asarray(data["values"], dtype=np.float64),
            np.asarray(data["timestamps"], dtype=np.int64),
        )

    # -- artifacts ---------------------------------------------------------------------------------

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> Artifact:
        """Upload a local file (streamed, never read whole) as an artifact of the run.

        Raises:
            InvalidInput: If the file does not exist or the path is bad.
            Conflict: If the run has ended.
        """
        artifact_path = check_artifact_path(artifact_path)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise InvalidInput(f"no such file: {local_path}", {"field": "local_path"})
        with local_path.open("rb") as stream:
            response = self.http.request(
                "PUT",
                _artifact_url(run_id, artifact_path),
                content=stream,
                headers={"Content-Type": "application/octet-stream"},
            )
        return Artifact.from_json(response.json())

    def log_artifact_bytes(self, run_id: str, data: bytes, artifact_path: str) -> Artifact:
        """Upload bytes as an artifact of the run.

        Raises:
            InvalidInput: If the path is bad.
            Conflict: If the run has ended.
        """
        artifact_path = check_artifact_path(artifact_path)
        response = self.http.request(
            "PUT",
            _artifact_url(run_id, artifact_path),
            content=bytes(data),
            headers={"Content-Type": "application/octet-stream"},
        )
        return Artifact.from_json(response.json())

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Return the run's artifacts sorted by path."""
        return [
            Artifact.from_json(a) for a in self.http.json("GET", f"{_run(run_id)}/artifacts")["artifacts"]
        ]

    def _listed_digest(self, run_id: str, artifact_path: str) -> str:
        for artifact in self.list_artifacts(run_id):
            if artifact.path == artifact_path:
                return artifact.digest
        raise NotFound(f"run {run_id} has no artifact {artifact_path!r}", {"field": "artifact_path"})

    def download_artifact(self, run_id: str, artifact_path: str, dest: Path) -> Path:
        """Download an artifact to ``dest``, verifying its sha256 while the bytes arrive.

        The bytes go to a temporary file next to ``dest`` that is renamed into place only once verified,
        so ``dest`` never holds unverified bytes.

        Raises:
            NotFound: If there is no such artifact.
            IntegrityError: If the bytes do not match the recorded digest; ``dest`` is left untouched.
        """
        artifact_path = check_artifact_path(artifact_path)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", _artifact_url(run_id, artifact_path)) as response:
            digest = response.headers.get("x-steward-digest") or self._listed_digest(run_id, artifact_path)
            fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as sink:
                    actual, size = self._receive(response, sink, run_id, artifact_path, digest)
                if actual != digest:
                    raise IntegrityError(
                        f"artifact {artifact_path!r} of run {run_id} does not match its digest {digest} "
                        f"(received {size} bytes hashing to {actual}); it was not saved",
                        {"field": "artifact_path", "digest": digest, "actual": actual},
                    )
                os.replace(tmp, dest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        return dest

    @staticmethod
    def _receive(
        response: httpx.Response, sink: IO[bytes], run_id: str, path: str, digest: str
    ) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        try:
            for chunk in response.iter_bytes(_CHUNK):
                hasher.update(chunk)
                sink.write(chunk)
                size += len(chunk)
        except httpx.RemoteProtocolError:
            # The server stops short of its Content-Length when its stored bytes fail their own check.
            raise IntegrityError(
                f"download of artifact {path!r} of run {run_id} stopped after {size} bytes: the bytes could "
                f"not be verified against digest {digest}; it was not saved",
                {"field": "artifact_path", "digest": digest},
            ) from None
        return hasher.hexdigest(), size

    # -- search and lifecycle ----------------------------------------------------------------------

    def search_runs(
        self,
        experiments: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Return runs of the named experiments that match ``filter``, sorted by ``order_by``.

        Raises:
            NotFound: If an experiment does not exist.
            InvalidInput: For a malformed filter or order, or ``max_results`` out of range.
        """
        names = [experiments] if isinstance(experiments, str) else list(experiments)
        body = {
            "experiments": names,
            "filter": filter,
            "order_by": list(order_by),
            "max_results": max_results,
            "include_deleted": include_deleted,
        }
        return [Run.from_json(r) for r in self.http.json("POST", "/runs/search", body)["runs"]]

    def search_run_columns(
        self,
        experiments: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> dict[str, list[Any]]:
        """``search_runs`` laid out by column (``run_columns``: times in epoch ms).

        Raises:
            NotFound: If an experiment does not exist.
            InvalidInput: For a malformed filter or order, or ``max_results`` out of range.
        """
        return run_columns(self.search_runs(experiments, filter, order_by, max_results, include_deleted))

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run.

        Raises:
            NotFound: If there is no such run.
            Conflict: If it is already deleted.
        """
        self.http.request("DELETE", _run(run_id))

    def restore_run(self, run_id: str) -> None:
        """Undo ``delete_run``.

        Raises:
            NotFound: If there is no such run.
            Conflict: If it is not deleted.
        """
        self.http.request("POST", f"{_run(run_id)}/restore")
