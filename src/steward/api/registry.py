"""Registry routes: registered models, versions, aliases, bundle files, lineage and cards under ``/api/v1``.

Each route parses its input, calls one ``RegistryService`` method and maps the result to JSON. Plain
``def`` routes run in FastAPI's threadpool, so blocking store work never holds up the event loop.

=======  ==================================================================  ======================
Method   Path                                                                Answer
=======  ==================================================================  ======================
POST     ``/models/{name}/files?path=<bundle path>`` (raw body)              201 ``ModelFile``
POST     ``/models/{name}/versions`` (``VersionSpec`` JSON)                  201 ``ModelVersion``
POST     ``/models/{name}/versions/{version}/formats/{format}``              201 ``ModelVersion``
GET      ``/models``                                                         ``{"models": [...]}``
GET      ``/models/{name}``                                                  ``RegisteredModel``
GET      ``/models/{name}/versions``                                         ``{"versions": [...]}``
GET      ``/models/{name}/versions/{version}``                               ``ModelVersion``
GET      ``/resolve?uri=models:/…``                                          ``ModelVersion``
PUT      ``/models/{name}/aliases/{alias}`` ``{version, reason}``            ``ModelVersion``
DELETE   ``/models/{name}/aliases/{alias}?reason=``                          204
GET      ``/models/{name}/aliases/history?alias=``                           ``{"events": [...]}``
POST     ``/models/{name}/versions/{version}/archive`` ``{reason}``          ``ModelVersion``
POST     ``/models/{name}/versions/{version}/restore``                       ``ModelVersion``
GET      ``/models/{name}/versions/{version}/files/{path}?format=model``     the bytes
GET      ``/models/{name}/versions/{version}/lineage``                       lineage dict
GET      ``/lineage/datasets/{dataset_id}``                                  ``{"models": [...]}``
PUT      ``/models/{name}/versions/{version}/card`` ``{"fields": {...}}``    ``{fields, digests}``
GET      ``/models/{name}/versions/{version}/card?format=md|html``           text/markdown or html
=======  ==================================================================  ======================

A model reference goes in a query parameter (``/resolve?uri=``) because its ``@`` and ``/`` would need
escaping in a path. ``dataset_id`` is a path parameter that may hold ``/``: dataset version ids are
opaque. A file download carries ``X-Steward-Digest``, the sha256 the manifest records for the file (for
``steward-model.yaml``, the manifest's own digest): the service has checked the bytes against it before
they leave, and the client checks them again on arrival.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Registry
from steward.api.responses import OrjsonResponse
from steward.registry.models import PRIMARY_FORMAT, ModelFile, VersionSpec
from steward.registry.service import RegistryService

router = APIRouter(prefix=API_PREFIX, tags=["registry"])

UPLOAD_WRITE_BYTES = 1024 * 1024
"""Upload bytes are gathered into writes of this size."""

_VERSION = "/models/{name}/versions/{version}"
_BINARY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_Format = Annotated[str, Query(alias="format", description="the bundle format (``model``: the primary one)")]
_CardFormat = Annotated[str, Query(alias="format", description="``md`` or ``html``")]
_CARD_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileIn(_Body):
    """One uploaded bundle file, as ``POST /models/{name}/files`` returned it."""

    path: str
    digest: str
    size: StrictInt


class VersionIn(_Body):
    """Body of ``POST /models/{name}/versions``: ``VersionSpec.to_json()``.

    Datasets and metrics stay loosely typed here so that the service refuses bad values with the same
    message as in embedded mode.
    """

    flavor: str
    files: list[FileIn]
    flavor_options: dict[str, Any] = Field(default_factory=dict)
    signature: dict[str, Any] | None = None
    requirements: list[str] = Field(default_factory=list)
    python_version: str = ""
    run_id: str | None = None
    datasets: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    version: str | None = None


class FormatIn(_Body):
    """Body of ``POST /models/{name}/versions/{version}/formats/{format}``."""

    flavor: str
    options: dict[str, Any] = Field(default_factory=dict)
    files: list[FileIn]


class AliasIn(_Body):
    """Body of ``PUT /models/{name}/aliases/{alias}``."""

    version: str
    reason: str = ""


class ReasonIn(_Body):
    """Body of ``POST /models/{name}/versions/{version}/archive`` (optional)."""

    reason: str = ""


class CardIn(_Body):
    """Body of ``PUT /models/{name}/versions/{version}/card``: user-written sections by name."""

    fields: dict[str, Any]


def _json(content: Any, status_code: int = 200) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code)


def _files(files: list[FileIn]) -> list[ModelFile]:
    return [ModelFile(f.path, f.digest, f.size) for f in files]


# -- registering ------------------------------------------------------------------------------------


@router.post(
    "/models/{name}/files",
    dependencies=[requires("models:write")],
    status_code=201,
    summary="Upload a bundle file (raw bytes)",
    openapi_extra=_BINARY_BODY,
)
async def upload_file(
    name: str,
    path: str,
    request: Request,
    registry: Registry,
    dataset: Annotated[list[str], Query(description="Dataset version ids the model was trained on")] = [],  # noqa: B006
) -> Response:
    """Store the raw request body as bundle file ``path`` of a coming version of ``name``.

    The body goes to a temporary file, written off the event loop, and from there into the blob store,
    so a large upload is never held whole in memory. Returns the ``ModelFile`` to list in the version.
    With ``dataset`` ids, the upload is refused (403 ``residency_violation``) before anything is stored
    if their data may not reside in the store's region.
    """
    await run_in_threadpool(registry.check_residency, dataset)
    with tempfile.NamedTemporaryFile(prefix="steward-upload-") as spool:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= UPLOAD_WRITE_BYTES:
                await run_in_threadpool(spool.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(_finish, spool, bytes(pending))
        # Residency was checked above, before the body was read: not again here.
        stored = await run_in_threadpool(registry.upload_file, name, Path(spool.name), path)
    return _json(stored.to_json(), 201)


def _finish(spool: IO[bytes], rest: bytes) -> None:
    spool.write(rest)
    spool.flush()


@router.post(
    "/models/{name}/versions",
    dependencies=[requires("models:write")],
    status_code=201,
    summary="Register a version",
)
def create_version(name: str, body: VersionIn, registry: Registry) -> Response:
    """Register a version of ``name`` (created if new) from uploaded files; 409 for a taken version."""
    spec = VersionSpec.from_json(body.model_dump())
    return _json(registry.create_version(name, spec).to_json(), 201)


@router.post(
    f"{_VERSION}/formats/{{format_name}}",
    dependencies=[requires("models:write")],
    status_code=201,
    summary="Attach a further format",
)
def add_format(name: str, version: str, format_name: str, body: FormatIn, registry: Registry) -> Response:
    """Attach a further format (``onnx`` …) to a version; 409 if it already has one of that name."""
    found = registry.add_format(name, version, format_name, body.flavor, body.options, _files(body.files))
    return _json(found.to_json(), 201)


# -- reading ----------------------------------------------------------------------------------------


@router.get("/models", dependencies=[requires("models:read")], summary="List registered models")
def list_models(registry: Registry) -> Response:
    """Return ``{"models": [...]}`` by name."""
    return _json({"models": [m.to_json() for m in registry.list_models()]})


@router.get("/models/{name}", dependencies=[requires("models:read")], summary="Get a registered model")
def get_model(name: str, registry: Registry) -> Response:
    """Return the model with its highest version and aliases; 404 if there is none."""
    return _json(registry.get_model(name).to_json())


@router.get(
    "/models/{name}/versions", dependencies=[requires("models:read")], summary="List a model's versions"
)
def list_versions(name: str, registry: Registry) -> Response:
    """Return ``{"versions": [...]}``, lowest first by SemVer precedence."""
    return _json({"versions": [v.to_json() for v in registry.list_versions(name)]})


@router.get(_VERSION, dependencies=[requires("models:read")], summary="Get a version")
def get_version(name: str, version: str, registry: Registry) -> Response:
    """Return one version; 404 if the model or version does not exist, 400 for a malformed version."""
    return _json(registry.get_version(name, version).to_json())


@router.get("/resolve", dependencies=[requires("models:read")], summary="Resolve a models:/ reference")
def resolve(uri: str, registry: Registry) -> Response:
    """Resolve ``models:/name/1.2.0``, ``models:/name@alias`` or ``models:/name`` to a version."""
    return _json(registry.resolve(uri).to_json())


def _read_file(registry: RegistryService, name: str, version: str, path: str, fmt: str) -> tuple[bytes, str]:
    data = registry.read_file(name, version, path, fmt)
    # The blob store has just checked these bytes against the digest the manifest records (blobs are
    # named by their sha256), so hashing them gives that very digest.
    return data, hashlib.sha256(data).hexdigest()


@router.get(
    f"{_VERSION}/files/{{path:path}}",
    dependencies=[requires("models:read")],
    summary="Download a bundle file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "headers": {"X-Steward-Digest": {}}}},
)
def read_file(
    name: str, version: str, path: str, registry: Registry, fmt: _Format = PRIMARY_FORMAT
) -> Response:
    """Return the verified bytes of one file (``steward-model.yaml`` too) with ``X-Steward-Digest``."""
    data, digest = _read_file(registry, name, version, path, fmt)
    return Response(data, media_type="application/octet-stream", headers={"X-Steward-Digest": digest})


# -- aliases and status -----------------------------------------------------------------------------


@router.get("/models/{name}/aliases/history", dependencies=[requires("models:read")], summary="Alias history")
def alias_history(name: str, registry: Registry, alias: str | None = None) -> Response:
    """Return ``{"events": [...]}``: every move of the model's aliases (or of ``alias``), oldest first."""
    return _json({"events": [e.to_json() for e in registry.alias_history(name, alias)]})


@router.put(
    "/models/{name}/aliases/{alias}",
    dependencies=[requires("models:promote")],
    summary="Point an alias at a version",
)
def set_alias(name: str, alias: str, body: AliasIn, registry: Registry) -> Response:
    """Move ``alias`` to ``version`` atomically and return the version; 409 if it is archived."""
    return _json(registry.set_alias(name, alias, body.version, body.reason).to_json())


@router.delete(
    "/models/{name}/aliases/{alias}",
    dependencies=[requires("models:promote")],
    status_code=204,
    summary="Remove an alias",
)
def delete_alias(name: str, alias: str, registry: Registry, reason: str = "") -> Response:
    """Remove an alias, recording who and why; 404 if it does not exist."""
    registry.delete_alias(name, alias, reason)
    return Response(status_code=204)


@router.post(f"{_VERSION}/archive", dependencies=[requires("models:write")], summary="Archive a version")
def archive_version(name: str, version: str, registry: Registry, body: ReasonIn | None = None) -> Response:
    """Archive a version; 409 while an alias points at it."""
    reason = body.reason if body is not None else ""
    return _json(registry.archive_version(name, version, reason).to_json())


@router.post(
    f"{_VERSION}/restore", dependencies=[requires("models:write")], summary="Restore an archived version"
)
def restore_version(name: str, version: str, registry: Registry) -> Response:
    """Make an archived version READY again."""
    return _json(registry.restore_version(name, version).to_json())


# -- lineage and cards ------------------------------------------------------------------------------


@router.get(f"{_VERSION}/lineage", dependencies=[requires("models:read")], summary="Lineage of a version")
def model_lineage(name: str, version: str, registry: Registry) -> Response:
    """Return the chain behind a version: its run (params, metrics, code commit) and dataset versions."""
    return _json(registry.model_lineage(name, version))


@router.get(
    "/lineage/datasets/{dataset_id:path}",
    dependencies=[requires("models:read")],
    summary="Models trained on a dataset version",
)
def dataset_lineage(dataset_id: str, registry: Registry) -> Response:
    """Return ``{"models": [...]}``: every model version trained on the dataset version."""
    return _json({"models": registry.dataset_lineage(dataset_id)})


@router.put(
    f"{_VERSION}/card", dependencies=[requires("models:write")], summary="Write a version's model card"
)
def save_card(name: str, version: str, body: CardIn, registry: Registry) -> Response:
    """Render and store the card from recorded facts plus ``fields``; return the fields and digests."""
    return _json(registry.save_card(name, version, body.fields))


@router.get(
    f"{_VERSION}/card",
    dependencies=[requires("models:read")],
    summary="Read a version's model card",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}, "text/html": {}}}},
)
def get_card(name: str, version: str, registry: Registry, fmt: _CardFormat = "md") -> Response:
    """Return the card as Markdown (``format=md``) or HTML (``format=html``); 400 for another format."""
    text = registry.get_card(name, version, fmt)
    return Response(text, media_type=_CARD_TYPES[fmt])
