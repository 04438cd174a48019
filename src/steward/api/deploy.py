"""Deploy routes: endpoints, their rollouts, results and exports, under ``/api/v1``.

Each route parses its input, calls one ``DeployService`` method and maps the result to JSON.

=======  ======================================================  ============================  ============
Method   Path                                                    Answer                        Permission
=======  ======================================================  ============================  ============
GET      ``/endpoints``                                          ``{"endpoints": [...]}``      deploy:read
POST     ``/endpoints`` ``{name, model, version, ...}``          201 ``Endpoint``              deploy:write
GET      ``/endpoints/{name}``                                   ``Endpoint``                  deploy:read
PATCH    ``/endpoints/{name}`` ``{description, sticky_key,       ``Endpoint``                  deploy:write
         feature_service, clear_sticky_key,
         clear_feature_service, reason}``
DELETE   ``/endpoints/{name}?reason=``                           204                           deploy:write
GET      ``/endpoints/{name}/status``                            ``EndpointStatus``            deploy:read
POST     ``/endpoints/{name}/rollouts`` ``{strategy, version,    201 ``Rollout``               deploy:write
         options}``
GET      ``/endpoints/{name}/rollouts``                          ``{"rollouts": [...]}``       deploy:read
GET      ``/endpoints/{name}/rollouts/{id}`` (``latest``)        ``Rollout`` with events       deploy:read
POST     ``/endpoints/{name}/promote`` ``{finish, reason}``      ``Rollout``                   deploy:write
POST     ``/endpoints/{name}/rollback`` ``{reason}``             ``Rollout``                   deploy:write
POST     ``/endpoints/{name}/abort`` ``{reason}``                ``Rollout``                   deploy:write
POST     ``/endpoints/{name}/advance`` ``{ready}``               the step's outcome            deploy:write
GET      ``/endpoints/{name}/results?rollout=``                  the rollout's results         deploy:read
POST     ``/endpoints/{name}/export`` ``{target, version,        ``{"files": {name: text}}``   deploy:write
         options}``
=======  ======================================================  ============================  ============

A version failing the policies of the endpoint's gate alias is 403 ``policy_violation`` whose
``details.verdict`` lists every rule (``details.lines`` renders them); a second rollout while one is under
way, a promotion with nothing under way, or a change of sticky key during an A/B rollout, is 409
``conflict``. ``PATCH`` changes only what its body gives (``clear_sticky_key`` and
``clear_feature_service`` remove a value); a body that gives nothing is 400 ``invalid_input``.
``advance`` takes ``ready`` (true when the caller has seen the blue-green candidate ready on its
servers): the server does not probe URLs given by a client.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.api.responses import OrjsonResponse
from steward.deploy.controller import FixedReadiness
from steward.deploy.service import DeployService

router = APIRouter(prefix=API_PREFIX, tags=["deploy"])

_ENDPOINT = "/endpoints/{name}"
_LATEST = "latest"


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_deploy(request: Request) -> DeployService:
    """Return the app's ``DeployService`` (``app.state.deploy``, made on the app's platform if absent)."""
    state = request.app.state
    if getattr(state, "deploy", None) is None:
        state.deploy = DeployService(state.platform, getattr(state, "registry", None))
    return cast(DeployService, state.deploy)


Deploy = Annotated[DeployService, Depends(get_deploy)]
"""A route parameter annotated ``Deploy`` receives the app's ``DeployService``."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointIn(_Body):
    """Body of ``POST /endpoints``."""

    name: str
    model: str
    version: str
    description: str = ""
    gate_alias: str = "production"
    sticky_key: str | None = None
    feature_service: str | None = None


class EndpointUpdateIn(_Body):
    """Body of ``PATCH /endpoints/{name}``: what is absent (or null) stays as it is."""

    description: str | None = None
    sticky_key: str | None = None
    feature_service: str | None = None
    clear_sticky_key: bool = False
    clear_feature_service: bool = False
    reason: str = ""


class RolloutIn(_Body):
    """Body of ``POST /endpoints/{name}/rollouts``: options stay loose so the service names a bad one."""

    strategy: str
    version: str
    options: dict[str, Any] = Field(default_factory=dict)


class PromoteIn(_Body):
    """Body of ``POST /endpoints/{name}/promote`` (optional)."""

    finish: bool = False
    reason: str = ""


class ReasonIn(_Body):
    """Body of ``POST /endpoints/{name}/rollback`` and ``/abort`` (optional)."""

    reason: str = ""


class AdvanceIn(_Body):
    """Body of ``POST /endpoints/{name}/advance`` (optional)."""

    ready: bool | None = None


class ExportIn(_Body):
    """Body of ``POST /endpoints/{name}/export``: the version defaults to the endpoint's stable one."""

    target: str
    version: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


def _json(content: Any, status_code: int = 200) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code)


@router.get("/endpoints", dependencies=[requires("deploy:read")], summary="List endpoints")
def list_endpoints(deploy: Deploy) -> Response:
    """Return ``{"endpoints": [...]}`` by name."""
    return _json({"endpoints": [e.to_json() for e in deploy.list_endpoints()]})


@router.post(
    "/endpoints", dependencies=[requires("deploy:write")], status_code=201, summary="Create an endpoint"
)
def create_endpoint(body: EndpointIn, deploy: Deploy) -> Response:
    """Create an endpoint serving one version (through the policy gate); 409 if the name is taken, 404 if
    the model, version or feature service does not exist."""
    found = deploy.create_endpoint(
        body.name,
        body.model,
        body.version,
        description=body.description,
        gate_alias=body.gate_alias,
        sticky_key=body.sticky_key,
        feature_service=body.feature_service,
    )
    return _json(found.to_json(), 201)


@router.get(_ENDPOINT, dependencies=[requires("deploy:read")], summary="Get an endpoint")
def get_endpoint(name: str, deploy: Deploy) -> Response:
    """Return the endpoint with its traffic plan; 404 if there is none."""
    return _json(deploy.get_endpoint(name).to_json())


@router.patch(_ENDPOINT, dependencies=[requires("deploy:write")], summary="Update an endpoint")
def update_endpoint(name: str, body: EndpointUpdateIn, deploy: Deploy) -> Response:
    """Change the endpoint's description, sticky key or feature service (its plan's revision moves, its
    arms stay); 404 if it or the feature service does not exist, 409 for a sticky key during A/B."""
    found = deploy.update_endpoint(
        name,
        description=body.description,
        sticky_key=body.sticky_key,
        feature_service=body.feature_service,
        clear_sticky_key=body.clear_sticky_key,
        clear_feature_service=body.clear_feature_service,
        reason=body.reason,
    )
    return _json(found.to_json())


@router.delete(
    _ENDPOINT, dependencies=[requires("deploy:write")], status_code=204, summary="Delete an endpoint"
)
def delete_endpoint(name: str, deploy: Deploy, reason: str = "") -> Response:
    """Delete the endpoint; 409 while a rollout is under way on it."""
    deploy.delete_endpoint(name, reason)
    return Response(status_code=204)


@router.get(f"{_ENDPOINT}/status", dependencies=[requires("deploy:read")], summary="An endpoint's status")
def status(name: str, deploy: Deploy) -> Response:
    """Return the endpoint, its latest rollout with events, and its versions' recent statistics."""
    return _json(deploy.status(name).to_json())


@router.post(
    f"{_ENDPOINT}/rollouts",
    dependencies=[requires("deploy:write")],
    status_code=201,
    summary="Start a rollout",
)
def start_rollout(name: str, body: RolloutIn, deploy: Deploy) -> Response:
    """Start a rollout (``blue-green``, ``canary``, ``ab`` or ``shadow``) of a version; 409 if one is
    under way, 403 if the version fails the gate."""
    return _json(deploy.start_rollout(name, body.strategy, body.version, body.options).to_json(), 201)


@router.get(f"{_ENDPOINT}/rollouts", dependencies=[requires("deploy:read")], summary="An endpoint's rollouts")
def list_rollouts(name: str, deploy: Deploy) -> Response:
    """Return ``{"rollouts": [...]}``, newest first."""
    return _json({"rollouts": [r.to_json() for r in deploy.list_rollouts(name)]})


@router.get(
    f"{_ENDPOINT}/rollouts/{{rollout_id}}", dependencies=[requires("deploy:read")], summary="A rollout"
)
def get_rollout(name: str, rollout_id: str, deploy: Deploy) -> Response:
    """Return one rollout (``latest``: the newest) with its events."""
    return _json(deploy.get_rollout(name, None if rollout_id == _LATEST else rollout_id).to_json())


@router.post(f"{_ENDPOINT}/promote", dependencies=[requires("deploy:write")], summary="Promote a rollout")
def promote(name: str, deploy: Deploy, body: PromoteIn | None = None) -> Response:
    """Move the rollout under way one step on (or to its end with ``finish``); 409 with none."""
    body = body or PromoteIn()
    return _json(deploy.promote(name, finish=body.finish, reason=body.reason).to_json())


@router.post(f"{_ENDPOINT}/rollback", dependencies=[requires("deploy:write")], summary="Roll back")
def rollback(name: str, deploy: Deploy, body: ReasonIn | None = None) -> Response:
    """Give the baseline version all traffic again at once; 409 if there is nothing to roll back."""
    return _json(deploy.rollback(name, (body or ReasonIn()).reason).to_json())


@router.post(f"{_ENDPOINT}/abort", dependencies=[requires("deploy:write")], summary="Abort a rollout")
def abort(name: str, deploy: Deploy, body: ReasonIn | None = None) -> Response:
    """Stop the rollout under way and take its candidate out of the plan; 409 with none."""
    return _json(deploy.abort(name, (body or ReasonIn()).reason).to_json())


@router.post(f"{_ENDPOINT}/advance", dependencies=[requires("deploy:write")], summary="Run a rollout step")
def advance(name: str, deploy: Deploy, body: AdvanceIn | None = None) -> Response:
    """Run one analysis step of the rollout under way now and return what it did."""
    ready = (body or AdvanceIn()).ready
    return _json(deploy.advance(name, readiness=FixedReadiness(ready) if ready is not None else None))


@router.get(f"{_ENDPOINT}/results", dependencies=[requires("deploy:read")], summary="A rollout's results")
def results(name: str, deploy: Deploy, rollout: str | None = None) -> Response:
    """Return per-arm outcomes of a rollout (the latest by default) and, for A/B, the significance test."""
    return _json(deploy.results(name, rollout))


@router.post(f"{_ENDPOINT}/export", dependencies=[requires("deploy:write")], summary="Export manifests")
def export(name: str, body: ExportIn, deploy: Deploy) -> Response:
    """Return ``{"files": {name: text}}``: Kubernetes, KServe or Docker files for a version of the
    endpoint's model (its stable version by default)."""
    return _json({"files": deploy.export(name, body.target, body.version, body.options)})
