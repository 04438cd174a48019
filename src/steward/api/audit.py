"""Audit routes: read the audit trail and verify it.

Each route parses its input, calls one ``AuditService`` method and maps the result to JSON. Plain ``def``
routes run in FastAPI's threadpool, so the store work never holds up the event loop. Everything is under
``/api/v1``. Times are ISO 8601 (without a zone, UTC).

=======  ========================================================  ================================
Method   Path                                                      Answer
=======  ========================================================  ================================
GET      ``/audit?actor=&resource_kind=&resource_id=&action=``     ``{"entries", "next_before"}``
         ``&since=&until=&before=&limit=``
GET      ``/audit/verify?strict=``                                 ``VerifyReport``
GET      ``/audit/public-key``                                     ``{"key_id", "public_key_pem"}``
=======  ========================================================  ================================

``/audit`` lists the newest matching entries first; ``next_before`` is the ``before`` of the next (older)
page, or null after the last. ``/audit/verify`` answers 200 with ``"ok": false`` and ``first_bad`` for a
broken trail: the check worked, the trail did not pass it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.errors import NotFound
from steward.governance import signing
from steward.governance.audit import MAX_LIMIT, AuditService
from steward.governance.context import current_identity

router = APIRouter(prefix=API_PREFIX, tags=["audit"])

_Text = Annotated[str | None, Query(max_length=256)]


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_audit(request: Request) -> AuditService:
    """Return the app's ``AuditService`` (``app.state.audit``, made on the app's platform if absent)."""
    state = request.app.state
    if getattr(state, "audit", None) is None:
        state.audit = AuditService(state.platform)
    return cast(AuditService, state.audit)


Audit = Annotated[AuditService, Depends(get_audit)]
"""A route parameter annotated ``Audit`` receives the app's ``AuditService``."""


@router.get("/audit", dependencies=[requires("audit:read")], summary="List audit entries, newest first")
def list_entries(
    audit: Audit,
    actor: _Text = None,
    resource_kind: _Text = None,
    resource_id: _Text = None,
    action: _Text = None,
    since: Annotated[datetime | None, Query(description="At or after this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="At or before this time (ISO 8601)")] = None,
    before: Annotated[int | None, Query(ge=1, description="Only entries with a lower seq (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """The newest entries of the request's project matching every filter given (with the platform-wide
    entries of no project for holders of a global role)."""
    identity = current_identity()
    found = audit.log(
        actor=actor, resource_kind=resource_kind, resource_id=resource_id, action=action,
        since=since, until=until, before=before, limit=limit, project=audit.platform.project,
        with_unscoped=bool(identity.global_roles),
    )  # fmt: skip
    next_before = found[-1].seq if len(found) == limit and found[-1].seq > 1 else None
    return {"entries": [entry.to_json() for entry in found], "next_before": next_before}


@router.get(
    "/audit/verify",
    dependencies=[requires("audit:read")],
    summary="Verify the audit trail's hash chain and signed checkpoints",
)
def verify_trail(
    audit: Audit,
    strict: Annotated[bool, Query(description="Also fail where a checkpoint is due but missing")] = False,
) -> dict[str, Any]:
    """Walk the whole trail against the platform's public key; name the first bad entry and why."""
    return audit.verify(strict=strict).to_json()


@router.get(
    "/audit/public-key",
    dependencies=[requires("audit:read")],
    summary="The public key audit checkpoints are signed with",
)
def public_key(audit: Audit) -> dict[str, str]:
    """The platform's public key (PEM) and its id, to verify exports elsewhere.

    Raises:
        NotFound: The platform has no signing key yet.
    """
    key = audit.public_key()
    if key is None:
        raise NotFound("this platform has no signing key yet: one is made with the first signed checkpoint")
    return {"key_id": signing.key_id(key), "public_key_pem": signing.public_key_pem(key).decode()}
