"""Approval routes: list requests to move protected aliases, and approve or reject them.

Each route parses its input, calls one ``ApprovalService`` method and maps the result to JSON, under
``/api/v1``. The service is the registry's (``promotion.approval_service``): the approval that completes
a request promotes then and there, and the answer's ``outcome`` says what that did.

=======  ===========================================  ==============================  ====================
Method   Path                                         Answer                          Permission
=======  ===========================================  ==============================  ====================
GET      ``/approvals?status=``                       ``{"requests": [...]}``         ``approvals:read``
GET      ``/approvals/{id}``                          ``ApprovalRequest``             ``approvals:read``
POST     ``/approvals/{id}/approve`` ``{comment}``    ``ApprovalRequest``             ``approvals:decide``
POST     ``/approvals/{id}/reject`` ``{comment}``     ``ApprovalRequest``             ``approvals:decide``
=======  ===========================================  ==============================  ====================

Separation of duties answers 403 (the version's author or the requester approving); a second decision
by the same approver, or one on a closed request, 409.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.governance.approvals import MAX_COMMENT, ApprovalService, ApprovalStatus
from steward.registry import promotion

router = APIRouter(prefix=API_PREFIX, tags=["approvals"])


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_approvals(request: Request) -> ApprovalService:
    """Return the app's ``ApprovalService`` (``app.state.approvals``, made on its registry if absent)."""
    state = request.app.state
    if getattr(state, "approvals", None) is None:
        state.approvals = promotion.approval_service(state.registry)
    return cast(ApprovalService, state.approvals)


Approvals = Annotated[ApprovalService, Depends(get_approvals)]
"""A route parameter annotated ``Approvals`` receives the app's ``ApprovalService``."""


class CommentIn(BaseModel):
    """Body of ``approve`` and ``reject``."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=MAX_COMMENT)


@router.get("/approvals", summary="List approval requests", dependencies=[requires("approvals:read")])
def list_requests(approvals: Approvals, status: ApprovalStatus | None = None) -> dict[str, Any]:
    """The project's requests, oldest first, optionally only those with ``status``."""
    return {"requests": [r.to_json() for r in approvals.list(status)]}


@router.get(
    "/approvals/{request_id}", summary="Get an approval request", dependencies=[requires("approvals:read")]
)
def get_request(request_id: str, approvals: Approvals) -> dict[str, Any]:
    """One request with its decisions; 404 if the project has none with that id."""
    return approvals.get(request_id).to_json()


@router.post(
    "/approvals/{request_id}/approve",
    summary="Approve a request",
    dependencies=[requires("approvals:decide")],
)
def approve(request_id: str, approvals: Approvals, body: CommentIn | None = None) -> dict[str, Any]:
    """Approve; when this completes the count the alias moves now, and ``outcome`` says so."""
    return approvals.approve(request_id, body.comment if body is not None else "").to_json()


@router.post(
    "/approvals/{request_id}/reject", summary="Reject a request", dependencies=[requires("approvals:decide")]
)
def reject(request_id: str, body: CommentIn, approvals: Approvals) -> dict[str, Any]:
    """Reject with a comment saying why; the request closes."""
    return approvals.reject(request_id, body.comment).to_json()
