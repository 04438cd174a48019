"""Feature store routes: definitions, training sets, online reads, materialisation, pushes and skew.

Each route parses its input, calls one ``FeatureStore`` method and maps the result. Everything is under
``/api/v1/features``; ``{kind}`` is ``entity``, ``feature_view`` or ``feature_service``.

=======  ===================================================  ==============================  ==============
Method   Path (under ``/features``)                           Answer                          Permission
=======  ===================================================  ==============================  ==============
POST     ``/apply`` (a definitions document)                  ``ApplyReport``                 features:write
GET      ``/definitions?kind=``                               ``{"definitions": [...]}``      features:read
GET      ``/definitions/{kind}/{name}?version=``              ``StoredDefinition``            features:read
GET      ``/definitions/{kind}/{name}/history``               ``{"versions": [...]}``         features:read
POST     ``/historical?features=&service=&timestamp=…``       Arrow stream: the training set  features:read
         (Arrow stream: the entity rows)
POST     ``/online`` ``{entity_rows, features, …}``           ``OnlineFeatures``              features:read
POST     ``/materialize`` ``{views, start, end}``             ``{"runs": [...]}``             features:write
GET      ``/materializations?view=``                          ``{"runs": [...]}``             features:read
POST     ``/views/{view}/push`` (Arrow stream: the rows)      ``{"written": n}``              features:write
GET      ``/views/{view}/skew?sample=&tolerance=&seed=``      ``SkewReport``                  features:read
=======  ===================================================  ==============================  ==============

Definitions arrive as the JSON form of a YAML document (``{"entities": [...], "feature_views": [...],
"feature_services": [...]}``, each item a spec): the server never reads a file or URL a client names.
Entity rows, pushed rows and training sets travel as Arrow IPC streams
(``application/vnd.apache.arrow.stream``), which keep their types and are written batch by batch; the
request's options are query parameters. ``features`` (repeated) are ``view:feature`` or ``view``
references; ``service`` instead names one feature service (exactly one of the two). Online reads are
small and use JSON (the online store keeps values JSON-ready: times as ISO 8601 text).

A stream-fed view's Redis stream is consumed by the client (``steward.client.features``), which pushes
each batch here: the server opens no stream on a client's behalf.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import IO, Annotated, Any, cast

import pyarrow as pa
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.api.responses import OrjsonResponse
from steward.errors import InvalidInput
from steward.features.arrow_stream import ARROW_STREAM_TYPE, ipc_chunks
from steward.features.service import FeatureStore

router = APIRouter(prefix=f"{API_PREFIX}/features", tags=["features"])

UPLOAD_WRITE_BYTES = 1024 * 1024
"""Upload bytes are gathered into writes of this size."""

_DEFINITION = "/definitions/{kind}/{name}"
_VIEW = "/views/{view}"
_ARROW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {ARROW_STREAM_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_ARROW_ANSWER: dict[int | str, dict[str, Any]] = {200: {"content": {ARROW_STREAM_TYPE: {}}}}


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_features(request: Request) -> FeatureStore:
    """Return the app's ``FeatureStore`` (``app.state.features``, made on the app's platform if absent)."""
    state = request.app.state
    if getattr(state, "features", None) is None:
        state.features = FeatureStore(state.platform, getattr(state, "data", None))
    return cast(FeatureStore, state.features)


Features = Annotated[FeatureStore, Depends(get_features)]
"""A route parameter annotated ``Features`` receives the app's ``FeatureStore``."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OnlineIn(_Body):
    """Body of ``POST /features/online``: ``features`` is a list of references or a service's name."""

    entity_rows: dict[str, list[Any]]
    features: list[str] | str
    full_feature_names: bool = False


class MaterializeIn(_Body):
    """Body of ``POST /features/materialize`` (optional): every online view, incrementally, up to now."""

    views: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None


def _json(content: Any, status_code: int = 200) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code)


# -- Arrow bodies -----------------------------------------------------------------------------------


async def _arrow_body(request: Request) -> pa.Table:
    """Read an Arrow IPC stream body, spooled to a temporary file off the event loop as it arrives."""
    with tempfile.TemporaryFile(prefix="steward-features-") as spool:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= UPLOAD_WRITE_BYTES:
                await run_in_threadpool(spool.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(spool.write, bytes(pending))
        return await run_in_threadpool(_read_stream, spool)


def _read_stream(spool: IO[bytes]) -> pa.Table:
    spool.flush()
    spool.seek(0)
    try:
        with pa.ipc.open_stream(spool) as reader:
            return reader.read_all()
    except (pa.ArrowException, OSError) as exc:
        message = f"the request body is not an Arrow IPC stream: {exc}"
        raise InvalidInput(message, {"field": "body", "content_type": ARROW_STREAM_TYPE}) from None


# -- definitions ------------------------------------------------------------------------------------


@router.post("/apply", dependencies=[requires("features:write")], summary="Apply feature definitions")
def apply(features: Features, document: Annotated[dict[str, Any], Body()]) -> Response:
    """Register the document's entities, views and services, each a new version only if it changed.

    Everything is checked before anything is stored: 400 naming the field for a malformed definition
    or one that does not fit its dataset, 404 for a reference to something that does not exist.
    """
    return _json(features.apply(document).to_json())


@router.get("/definitions", dependencies=[requires("features:read")], summary="List feature definitions")
def list_definitions(features: Features, kind: str | None = None) -> Response:
    """Return ``{"definitions": [...]}``: the latest version of each (of one kind), by kind and name."""
    return _json({"definitions": [d.to_json() for d in features.list_definitions(kind)]})


@router.get(_DEFINITION, dependencies=[requires("features:read")], summary="Get a feature definition")
def get_definition(
    kind: str,
    name: str,
    features: Features,
    version: Annotated[int | None, Query(description="The version (default: the latest)")] = None,
) -> Response:
    """Return one version of a definition with what was derived of its source; 404 if there is none."""
    return _json(features.get_definition(kind, name, version).to_json())


@router.get(
    f"{_DEFINITION}/history", dependencies=[requires("features:read")], summary="A definition's versions"
)
def definition_history(kind: str, name: str, features: Features) -> Response:
    """Return ``{"versions": [...]}``, oldest first; 404 if it was never applied."""
    return _json({"versions": [d.to_json() for d in features.definition_history(kind, name)]})


# -- training sets ----------------------------------------------------------------------------------


@router.post(
    "/historical",
    dependencies=[requires("features:read")],
    summary="Build a point-in-time correct training set",
    openapi_extra=_ARROW_BODY,
    response_class=StreamingResponse,
    responses=_ARROW_ANSWER,
)
async def historical(
    request: Request,
    features: Features,
    refs: Annotated[
        list[str] | None,
        Query(alias="features", description="``view:feature`` or ``view`` references (repeat it)"),
    ] = None,
    service: Annotated[str | None, Query(description="A feature service's name, instead")] = None,
    timestamp: Annotated[str, Query(description="The entity rows' timestamp column")] = "event_timestamp",
    full_feature_names: Annotated[bool, Query(description="Name the columns ``view__feature``")] = False,
    save_as: Annotated[str | None, Query(description="Also publish it as a version of this dataset")] = None,
) -> Response:
    """Join each entity row with each feature's latest value as of its timestamp; answer an Arrow stream.

    The body is the entity rows as an Arrow IPC stream; every row comes back, in order, with its own
    columns and the features. 400 for both ``features`` and ``service``, a body that is not Arrow, or
    rows without a key or the timestamp column; 404 for an unknown view, feature or service.
    """
    if refs and service is not None:
        raise InvalidInput("give features or service, not both", {"field": "features"})
    entity_rows = await _arrow_body(request)
    wanted: list[str] | str = service if service is not None else (refs or [])
    table = await run_in_threadpool(
        lambda: features.get_historical_features(
            entity_rows, wanted, timestamp=timestamp, full_feature_names=full_feature_names, save_as=save_as
        )
    )
    return StreamingResponse(ipc_chunks(table), media_type=ARROW_STREAM_TYPE)


# -- online -----------------------------------------------------------------------------------------


@router.post("/online", dependencies=[requires("features:read")], summary="Read online features")
def online(body: OnlineIn, features: Features) -> Response:
    """Return each entity row's online values and, per view, a status per row.

    An entity the store does not have gets nulls and ``NOT_FOUND``, a value older than the view's TTL
    nulls and ``OUTSIDE_TTL``: neither is an error. 400 for rows without a view's join key.
    """
    found = features.get_online_features(
        body.entity_rows, body.features, full_feature_names=body.full_feature_names
    )
    return _json(found.to_json())


# -- materialisation and pushes ---------------------------------------------------------------------


@router.post(
    "/materialize", dependencies=[requires("features:write")], summary="Materialise views to the online store"
)
def materialize(features: Features, body: MaterializeIn | None = None) -> Response:
    """Write each view's latest values per entity in ``[start, end)`` online; return ``{"runs": [...]}``.

    Without ``start`` each view continues from its last run; without ``end``, up to now; without
    ``views``, every online view. 400 for a window that is empty or a view that is not online.
    """
    options = body or MaterializeIn()
    runs = features.materialize(options.views, options.start, options.end)
    return _json({"runs": [r.to_json() for r in runs]})


@router.get(
    "/materializations", dependencies=[requires("features:read")], summary="List materialisation runs"
)
def list_materializations(features: Features, view: str | None = None) -> Response:
    """Return ``{"runs": [...]}``, newest first (of one view, if given)."""
    return _json({"runs": [r.to_json() for r in features.list_materializations(view)]})


@router.post(
    f"{_VIEW}/push",
    dependencies=[requires("features:write")],
    summary="Push fresh rows of a view to the online store",
    openapi_extra=_ARROW_BODY,
)
async def push(view: str, request: Request, features: Features) -> Response:
    """Write the rows (the body, an Arrow IPC stream) online; return ``{"written": n}``.

    An entity holding a value with a later event time keeps it. 400 for a missing column or a value
    that does not fit its feature's type, 404 for an unknown view.
    """
    rows = await _arrow_body(request)
    written = await run_in_threadpool(features.push, view, rows)
    return _json({"written": written})


# -- consistency ------------------------------------------------------------------------------------


@router.get(f"{_VIEW}/skew", dependencies=[requires("features:read")], summary="Compare offline and online")
def skew(
    view: str,
    features: Features,
    sample: Annotated[int, Query(description="Entities to sample")] = 100,
    tolerance: Annotated[float, Query(description="Relative tolerance for floats")] = 1e-9,
    seed: Annotated[int, Query(description="Seed of the sample")] = 0,
) -> Response:
    """Return a ``SkewReport`` of a sample of the view's entities (``consistent`` says if they agree)."""
    return _json(features.skew(view, sample=sample, tolerance=tolerance, seed=seed).to_json())


def close_features(state: Any) -> None:
    """Release the online store of ``state.features``, if one was made (for the app's shutdown)."""
    found = getattr(state, "features", None)
    if isinstance(found, FeatureStore):
        found.close()
