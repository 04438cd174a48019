"""Automation routes: triggers that start pipelines and their firings, under ``/api/v1``.

Each route parses its input, calls one ``AutomationService`` method and maps the result to JSON.

=======  =====================================================  ========================  ================
Method   Path                                                   Answer                    Permission
=======  =====================================================  ========================  ================
GET      ``/triggers``                                          ``{"triggers": [...]}``   automation:read
POST     ``/triggers`` ``{name, kind, spec, pipeline, params,   201 ``Trigger``           automation:write
         executor, enabled}``
GET      ``/triggers/{name}``                                   ``Trigger``               automation:read
DELETE   ``/triggers/{name}?reason=``                           204                       automation:write
GET      ``/triggers/{name}/firings?limit=``                    ``{"firings": [...]}``    automation:read
=======  =====================================================  ========================  ================

Creating a trigger imports its pipeline **on the server** to check it (``package.module:attribute``; file
paths are refused), which runs that module's code: only code installed where the server and the
scheduler run can be named, and only by holders of ``automation:write``, each creation audited. The
scheduler (``steward scheduler``, next to the stores) fires the triggers; the API does not.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.responses import Response

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.api.responses import OrjsonResponse
from steward.automation.service import READ, WRITE, AutomationService

router = APIRouter(prefix=API_PREFIX, tags=["automation"])

_TRIGGER = "/triggers/{name}"


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_automation(request: Request) -> AutomationService:
    """Return the app's ``AutomationService`` (``app.state.automation``, made on the app's platform and
    data service if absent)."""
    state = request.app.state
    if getattr(state, "automation", None) is None:
        state.automation = AutomationService(state.platform, getattr(state, "data", None))
    return cast(AutomationService, state.automation)


Automation = Annotated[AutomationService, Depends(get_automation)]
"""A route parameter annotated ``Automation`` receives the app's ``AutomationService``."""


class TriggerIn(BaseModel):
    """Body of ``POST /triggers``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(description="cron, interval or dataset")
    spec: StrictStr | StrictInt = Field(description="Cron expression (UTC), period ('15m', 900) or dataset")
    pipeline: str = Field(description="The @pipeline's import path, package.module:attribute")
    params: Any = Field(None, description="The pipeline's parameters (JSON values)")
    executor: str = Field("local", description="local, processes, processes:N, ray or ray://host:port")
    enabled: bool = True


def _json(content: Any, status_code: int = 200) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code)


@router.get("/triggers", dependencies=[requires(READ)], summary="List triggers")
def list_triggers(automation: Automation) -> Response:
    """Return ``{"triggers": [...]}`` by name (the scheduler's monitor triggers too)."""
    return _json({"triggers": [t.to_json() for t in automation.list_triggers()]})


@router.post("/triggers", dependencies=[requires(WRITE)], status_code=201, summary="Create a trigger")
def create_trigger(body: TriggerIn, automation: Automation) -> Response:
    """Create a trigger. Everything it will need is checked first and nothing is stored on a refusal: 400
    naming the field (``kind``, ``spec``, ``pipeline``, ``params``, ``executor``), 404 for a dataset that
    does not exist, 409 if the name is taken."""
    made = automation.create_trigger(
        body.name,
        body.kind,
        str(body.spec),
        body.pipeline,
        params=body.params,
        executor=body.executor,
        enabled=body.enabled,
    )
    return _json(made.to_json(), 201)


@router.get(_TRIGGER, dependencies=[requires(READ)], summary="Get a trigger")
def get_trigger(name: str, automation: Automation) -> Response:
    """Return one trigger with when it is next due; 404 if there is none."""
    return _json(automation.get_trigger(name).to_json())


@router.delete(_TRIGGER, dependencies=[requires(WRITE)], status_code=204, summary="Delete a trigger")
def delete_trigger(name: str, automation: Automation, reason: str = "") -> Response:
    """Delete a trigger and its firings (the audit trail keeps what they did)."""
    automation.delete_trigger(name, reason)
    return Response(status_code=204)


@router.get(f"{_TRIGGER}/firings", dependencies=[requires(READ)], summary="A trigger's firings")
def list_firings(
    name: str,
    automation: Automation,
    limit: Annotated[int, Query(description="At most this many (1-1000)")] = 50,
) -> Response:
    """Return ``{"firings": [...]}``, newest first: when each was due, who fired it and what it did."""
    return _json({"firings": [f.to_json() for f in automation.list_firings(name, limit)]})
