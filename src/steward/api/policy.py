"""Policy routes: apply, read and retire policies; check a verdict; promote through the gate.

Each route parses its input, calls one service method and maps the result to JSON, under ``/api/v1``.

=======  ====================================================  ========================  ==================
Method   Path                                                  Answer                    Permission
=======  ====================================================  ========================  ==================
GET      ``/policies?all=``                                    ``{"policies": [...]}``   ``policies:read``
POST     ``/policies`` ``{"document": "<yaml>"}``              201 / 200 ``Applied``     ``policies:write``
GET      ``/policies/{name}?version=``                         ``StoredPolicy``          ``policies:read``
GET      ``/policies/{name}/history``                          ``{"versions": [...]}``   ``policies:read``
POST     ``/policies/{name}/retire`` ``{"reason"}``            ``StoredPolicy``          ``policies:write``
GET      ``/models/{name}/versions/{version}/verdict?alias=``  ``Verdict``               ``policies:read``
POST     ``/models/{name}/versions/{version}/promote``         200 / 202 ``Promotion``   ``models:promote``
         ``{"alias", "reason"}``
=======  ====================================================  ========================  ==================

``POST /policies`` answers 201 when it stored a new version (``status`` ``created`` or ``updated``) and
200 when the content was in force already (``unchanged``). ``promote`` answers 200 when the alias moved
(or already pointed there) and 202 when an approval request now waits (``request`` has its id); a
failing rule is 403 ``policy_violation`` whose ``details.verdict`` lists every rule. The verdict route
acts on nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Registry
from steward.api.responses import OrjsonResponse
from steward.governance.policy import MAX_DOCUMENT_BYTES
from steward.governance.policy_store import PolicyStore
from steward.registry import gates, promotion

router = APIRouter(prefix=API_PREFIX, tags=["policies"])

_VERSION = "/models/{name}/versions/{version}"


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_policies(request: Request) -> PolicyStore:
    """Return the app's ``PolicyStore`` (``app.state.policies``, made on the app's platform if absent)."""
    state = request.app.state
    if getattr(state, "policies", None) is None:
        state.policies = PolicyStore(state.platform)
    return cast(PolicyStore, state.policies)


Policies = Annotated[PolicyStore, Depends(get_policies)]
"""A route parameter annotated ``Policies`` receives the app's ``PolicyStore``."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyIn(_Body):
    """Body of ``POST /policies``: the policy document, as YAML text."""

    document: str = Field(max_length=MAX_DOCUMENT_BYTES)


class ReasonIn(_Body):
    """Body of ``POST /policies/{name}/retire`` (optional)."""

    reason: str = Field(default="", max_length=4000)


class PromoteIn(_Body):
    """Body of ``POST /models/{name}/versions/{version}/promote``."""

    alias: str = "production"
    reason: str = Field(default="", max_length=4000)


@router.get("/policies", summary="List policies", dependencies=[requires("policies:read")])
def list_policies(
    policies: Policies, include_retired: Annotated[bool, Query(alias="all")] = False
) -> dict[str, Any]:
    """The policies in force (with ``all=true``, retired ones too), newest version of each."""
    return {"policies": [p.to_json() for p in policies.list(include_retired=include_retired)]}


@router.post("/policies", summary="Apply a policy document", dependencies=[requires("policies:write")])
def apply_policy(body: PolicyIn, policies: Policies) -> OrjsonResponse:
    """Store the document as the next version of its policy (201), or say it is ``unchanged`` (200)."""
    applied = policies.apply(body.document)
    return OrjsonResponse(applied.to_json(), status_code=200 if applied.status == "unchanged" else 201)


@router.get("/policies/{name}", summary="Get a policy", dependencies=[requires("policies:read")])
def get_policy(
    name: str, policies: Policies, version: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """One version of a policy (the newest by default), with its document."""
    return policies.get(name, version).to_json()


@router.get(
    "/policies/{name}/history", summary="A policy's versions", dependencies=[requires("policies:read")]
)
def policy_history(name: str, policies: Policies) -> dict[str, Any]:
    """Every version of a policy, oldest first."""
    return {"versions": [p.to_json() for p in policies.history(name)]}


@router.post("/policies/{name}/retire", summary="Retire a policy", dependencies=[requires("policies:write")])
def retire_policy(name: str, policies: Policies, body: ReasonIn | None = None) -> dict[str, Any]:
    """Take every version of the policy out of force; 409 if it is retired already."""
    return policies.retire(name, body.reason if body is not None else "").to_json()


@router.get(f"{_VERSION}/verdict", summary="Check a version against the policies",
            dependencies=[requires("policies:read")])  # fmt: skip
def verdict(name: str, version: str, registry: Registry, alias: str = "production") -> dict[str, Any]:
    """The verdict of the policies gating the version taking ``alias``: one result per rule."""
    return gates.check(registry, name, version, alias).to_json()


@router.post(f"{_VERSION}/promote", summary="Promote a version through the policy gate",
             dependencies=[requires("models:promote")])  # fmt: skip
def promote(name: str, version: str, registry: Registry, body: PromoteIn | None = None) -> OrjsonResponse:
    """Move the alias (200), or open an approval request (202); 403 with the verdict if a rule fails."""
    given = body or PromoteIn()
    result = promotion.promote(registry, name, version, given.alias, given.reason)
    return OrjsonResponse(result.to_json(), status_code=202 if result.status == "pending" else 200)
