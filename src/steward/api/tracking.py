"""Tracking routes: experiments, runs, params, tags, metrics and artifacts under ``/api/v1``.

Each route parses its input, calls one ``TrackingService`` method and maps the result to JSON. Metric
points travel as columns (``{"metrics": [{"key", "steps", "values", "timestamps"}]}``) and are parsed by
orjson straight into numpy arrays: the service validates them vectorised, so no per-point pydantic.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Tracking
from steward.api.errors import ResponseAbortedError
from steward.api.responses import OrjsonResponse
from steward.core.time import now_ms
from steward.errors import IntegrityError, InvalidInput, StewardError
from steward.tracking.models import Artifact, MetricSeries, RunStatus, SystemInfo
from steward.tracking.service import TrackingService

log = logging.getLogger("steward.api")

router = APIRouter(prefix=API_PREFIX, tags=["tracking"])

SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
"""Artifact uploads up to this size are spooled in memory, larger ones in a temporary file."""
SPOOL_WRITE_BYTES = 1024 * 1024
"""Upload bytes are gathered into writes of this size."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentIn(_Body):
    """Body of ``POST /experiments``."""

    name: str
    description: str = ""


class SystemIn(_Body):
    """Where a run runs, as recorded by the SDK."""

    user: str = ""
    host: str = ""
    entry_point: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    python_version: str = ""
    packages: dict[str, str] = Field(default_factory=dict)


class RunIn(_Body):
    """Body of ``POST /runs``."""

    experiment: str
    name: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, Any] | None = None
    system: SystemIn | None = None


class EndRunIn(_Body):
    """Body of ``POST /runs/{run_id}/end``."""

    status: RunStatus
    error: str | None = None


class ParamsIn(_Body):
    """Body of ``POST /runs/{run_id}/params``: values are strings, numbers or booleans."""

    params: dict[str, Any]


class TagsIn(_Body):
    """Body of ``POST /runs/{run_id}/tags``."""

    tags: dict[str, Any]


class SearchIn(_Body):
    """Body of ``POST /runs/search``."""

    experiments: list[str]
    filter: str = ""
    order_by: list[str] = Field(default_factory=list)
    max_results: StrictInt = 1000
    include_deleted: bool = False


_METRICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["metrics"],
    "properties": {
        "metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "steps", "values"],
                "properties": {
                    "key": {"type": "string"},
                    "steps": {"type": "array", "items": {"type": "integer"}},
                    "values": {"type": "array", "items": {"type": "number"}},
                    "timestamps": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "Unix milliseconds; now if omitted",
                    },
                },
            },
        }
    },
}


def _json(content: Any, status_code: int = 200) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code)


# -- experiments ------------------------------------------------------------------------------------


@router.post(
    "/experiments", dependencies=[requires("tracking:write")], status_code=201, summary="Create an experiment"
)
def create_experiment(body: ExperimentIn, tracking: Tracking) -> Response:
    """Create an experiment; 409 if the name is taken, 400 if it is not a valid name."""
    return _json(tracking.create_experiment(body.name, body.description).to_json(), 201)


@router.get("/experiments", dependencies=[requires("tracking:read")], summary="List experiments")
def list_experiments(tracking: Tracking, include_deleted: bool = False) -> Response:
    """Return ``{"experiments": [...]}``, oldest first."""
    found = tracking.list_experiments(include_deleted)
    return _json({"experiments": [e.to_json() for e in found]})


@router.get(
    "/experiments/{name_or_id}",
    dependencies=[requires("tracking:read")],
    summary="Get an experiment by name or id",
)
def get_experiment(name_or_id: str, tracking: Tracking) -> Response:
    """Return the experiment; 404 if there is none."""
    return _json(tracking.get_experiment(name_or_id).to_json())


# -- runs -------------------------------------------------------------------------------------------


@router.post("/runs", dependencies=[requires("tracking:write")], status_code=201, summary="Start a run")
def create_run(body: RunIn, tracking: Tracking) -> Response:
    """Start a RUNNING run in ``experiment`` (created if missing)."""
    system = SystemInfo(**body.system.model_dump()) if body.system else None
    run = tracking.create_run(body.experiment, body.name, body.parent_run_id, body.tags, system)
    return _json(run.to_json(), 201)


@router.post("/runs/search", dependencies=[requires("tracking:read")], summary="Search runs")
def search_runs(body: SearchIn, tracking: Tracking) -> Response:
    """Return ``{"runs": [...]}`` of the named experiments matching ``filter``, sorted by ``order_by``."""
    runs = tracking.search_runs(
        body.experiments, body.filter, body.order_by, body.max_results, body.include_deleted
    )
    return _json({"runs": [r.to_json() for r in runs]})


@router.get("/runs/{run_id}", dependencies=[requires("tracking:read")], summary="Get a run")
def get_run(run_id: str, tracking: Tracking) -> Response:
    """Return the run with its params, tags and latest metrics."""
    return _json(tracking.get_run(run_id).to_json())


@router.post(
    "/runs/{run_id}/end", dependencies=[requires("tracking:write")], status_code=204, summary="End a run"
)
def end_run(run_id: str, body: EndRunIn, tracking: Tracking) -> Response:
    """End a RUNNING run as FINISHED, FAILED or KILLED; 409 if it already ended."""
    tracking.end_run(run_id, body.status, body.error)
    return Response(status_code=204)


@router.post(
    "/runs/{run_id}/params",
    dependencies=[requires("tracking:write")],
    status_code=204,
    summary="Log parameters",
)
def log_params(run_id: str, body: ParamsIn, tracking: Tracking) -> Response:
    """Record parameters; 409 if a key was logged before with another value or the run has ended."""
    tracking.log_params(run_id, body.params)
    return Response(status_code=204)


@router.post(
    "/runs/{run_id}/tags", dependencies=[requires("tracking:write")], status_code=204, summary="Set tags"
)
def set_tags(run_id: str, body: TagsIn, tracking: Tracking) -> Response:
    """Set (or overwrite) tags, on running and ended runs alike."""
    tracking.set_tags(run_id, body.tags)
    return Response(status_code=204)


@router.delete(
    "/runs/{run_id}",
    dependencies=[requires("tracking:write")],
    status_code=204,
    summary="Delete a run (soft)",
)
def delete_run(run_id: str, tracking: Tracking) -> Response:
    """Hide a run from search; its data stays until restored."""
    tracking.delete_run(run_id)
    return Response(status_code=204)


@router.post(
    "/runs/{run_id}/restore",
    dependencies=[requires("tracking:write")],
    status_code=204,
    summary="Restore a deleted run",
)
def restore_run(run_id: str, tracking: Tracking) -> Response:
    """Undo a soft delete."""
    tracking.restore_run(run_id)
    return Response(status_code=204)


# -- metrics ----------------------------------------------------------------------------------------


def _column(item: dict[str, Any], where: str, name: str) -> Any:
    column = item.get(name)
    if not isinstance(column, list):
        raise InvalidInput(f"{where}.{name} must be a list", {"field": f"{where}.{name}"})
    try:
        return np.asarray(column)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidInput(
            f"{where}.{name} is not a flat list: {exc}", {"field": f"{where}.{name}"}
        ) from None


def parse_metrics_body(body: bytes) -> list[MetricSeries]:
    """Parse the columnar metrics body into series, leaving value checks to the service.

    Arrays keep the dtype the JSON implies (a step of ``1.5`` makes a float array), so that the service's
    vectorised checks can refuse it by name.

    Args:
        body: ``{"metrics": [{"key", "steps", "values", "timestamps"?}, ...]}`` as JSON bytes.

    Raises:
        InvalidInput: For malformed JSON or a wrong shape, naming the field (``metrics[2].steps``).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON body: {exc}", {"field": "body"}) from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        raise InvalidInput(
            'the body must be {"metrics": [{"key": ..., "steps": [...], "values": [...]}, ...]}',
            {"field": "metrics"},
        )
    series = []
    for index, item in enumerate(data["metrics"]):
        where = f"metrics[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object with key, steps and values", {"field": where})
        unknown = sorted(set(item) - {"key", "steps", "values", "timestamps"})
        if unknown:
            raise InvalidInput(
                f"{where} has unknown field {unknown[0]!r}", {"field": f"{where}.{unknown[0]}"}
            )
        key = item.get("key")
        if not isinstance(key, str):
            raise InvalidInput(f"{where}.key must be a string", {"field": f"{where}.key"})
        steps, values = _column(item, where, "steps"), _column(item, where, "values")
        if "timestamps" in item:
            stamps = _column(item, where, "timestamps")
        else:
            stamps = np.full(len(values), now_ms(), dtype=np.int64)
        series.append(MetricSeries(key, steps, values, stamps))
    return series


def _log_metrics(tracking: TrackingService, run_id: str, body: bytes) -> int:
    return tracking.log_metrics(run_id, parse_metrics_body(body))


@router.post(
    "/runs/{run_id}/metrics",
    dependencies=[requires("tracking:write")],
    summary="Log metric points (columnar)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _METRICS_SCHEMA}}}
    },
)
async def log_metrics(run_id: str, request: Request, tracking: Tracking) -> Response:
    """Append metric points in one transaction and return ``{"written": n}``.

    The body is read raw and parsed in the threadpool, so a large batch never blocks the event loop.
    """
    body = await request.body()
    written = await run_in_threadpool(_log_metrics, tracking, run_id, body)
    return _json({"written": written})


@router.get(
    "/runs/{run_id}/metrics/{key:path}",
    dependencies=[requires("tracking:read")],
    summary="Get a metric's history",
)
def get_metric_history(run_id: str, key: str, tracking: Tracking) -> Response:
    """Return ``{"key", "steps", "values", "timestamps"}`` ordered by step then time."""
    series = tracking.get_metric_history(run_id, key)
    return _json(
        {"key": series.key, "steps": series.steps, "values": series.values, "timestamps": series.timestamps}
    )


# -- artifacts --------------------------------------------------------------------------------------


@router.get(
    "/runs/{run_id}/artifacts", dependencies=[requires("tracking:read")], summary="List a run's artifacts"
)
def list_artifacts(run_id: str, tracking: Tracking) -> Response:
    """Return ``{"artifacts": [...]}`` sorted by path."""
    return _json({"artifacts": [a.to_json() for a in tracking.list_artifacts(run_id)]})


@router.put(
    "/runs/{run_id}/artifacts/{path:path}",
    dependencies=[requires("tracking:write")],
    status_code=201,
    summary="Upload an artifact (raw bytes)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_artifact(run_id: str, path: str, request: Request, tracking: Tracking) -> Response:
    """Store the raw request body as the run's artifact ``path`` and return its record.

    The body is spooled (memory up to 8 MiB, then a temporary file) and hashed into the blob store by the
    service, so a large upload is never held whole in memory.
    """
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= SPOOL_WRITE_BYTES:  # past 8 MiB this is disk I/O: off the event loop
                await run_in_threadpool(spool.write, bytes(pending))
                pending.clear()
        spool.write(pending)
        spool.seek(0)
        artifact = await run_in_threadpool(tracking.log_artifact_stream, run_id, spool, path)
    return _json(artifact.to_json(), 201)


def _open_artifact(tracking: TrackingService, run_id: str, path: str) -> tuple[Artifact, Iterator[bytes]]:
    artifact, stream = tracking.open_artifact(run_id, path)
    chunks = iter(stream)
    first = next(chunks, b"")  # a missing blob fails here, while a JSON error can still be sent
    return artifact, _verified(artifact, _chain(first, chunks))


def _chain(first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from chunks


def _verified(artifact: Artifact, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Yield the blob's chunks one behind, so the last one leaves only once the whole blob checked out.

    The blob store verifies the digest after the last chunk and the size is checked here. On a mismatch
    the last chunk is held back and the response aborted: the body ends short of its ``Content-Length``,
    the connection drops, and the client refuses the download (its own sha256 check catches the rest).
    """
    held, size = b"", 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > artifact.size:
                raise IntegrityError(
                    f"blob {artifact.digest} holds more than its recorded {artifact.size} bytes"
                )
            if held:
                yield held
            held = chunk
        if size != artifact.size:
            raise IntegrityError(
                f"blob {artifact.digest} holds {size} bytes, not the recorded {artifact.size}"
            )
    except StewardError as exc:
        log.error("artifact %r not sent whole: %s", artifact.path, exc.message)
        raise ResponseAbortedError from exc
    if held:
        yield held


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    dependencies=[requires("tracking:read")],
    summary="Download an artifact",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "headers": {"X-Steward-Digest": {}}}},
)
def get_artifact(run_id: str, path: str, tracking: Tracking) -> Response:
    """Stream the artifact's bytes with ``X-Steward-Digest`` (sha256, hex) and ``Content-Length``."""
    artifact, chunks = _open_artifact(tracking, run_id, path)
    headers = {"X-Steward-Digest": artifact.digest, "Content-Length": str(artifact.size)}
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)
