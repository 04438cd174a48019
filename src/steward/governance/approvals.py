"""Approval requests: promotions to a protected alias that wait for approvers.

A promotion whose policies fail only on ``approvals`` opens a request (or reuses the open one for the
same version and alias). Approvers approve or reject it with a comment, under separation of duties:

- the approver needs ``approvals:decide`` in the project;
- the version's author (``created_by``) and the requester cannot approve it;
- each approver decides once; ``required`` distinct approvals complete it; one rejection closes it.

When an approval completes the count, the service calls ``on_approved`` (the registry's promotion,
passed in so that governance never imports the registry), which re-evaluates the policies and moves the
alias then and there; the request becomes ``approved`` in the same transaction as the move. If the
policies now fail for another reason, the request stays ``pending`` with its approvals, and the
outcome says why; promoting again, once that is fixed, completes it. Every step is audited.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, insert, select, update

from steward.core.ids import new_id
from steward.core.time import from_ms, now_ms
from steward.errors import Conflict, Forbidden, InvalidInput, NotFound, StewardError
from steward.governance import audit
from steward.governance.context import current_identity
from steward.store.tables import approval_decisions, approval_requests, model_versions, registered_models

if TYPE_CHECKING:
    from steward.store.platform import Platform

MAX_COMMENT = 4000
"""The longest comment a decision may carry."""


class ApprovalStatus(StrEnum):
    """``pending`` until approved (and promoted) or rejected."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Decision:
    """One approver's decision: ``approve`` or ``reject``, with a comment."""

    approver: str
    decision: str
    comment: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"approver": self.approver, "decision": self.decision, "comment": self.comment,
                "at": self.at.isoformat()}  # fmt: skip


@dataclass(frozen=True)
class ApprovalRequest:
    """A request to move a protected alias to a version.

    Attributes:
        id: Its id.
        model: The model's name.
        version: The version to promote.
        alias: The protected alias.
        status: ``pending``, ``approved`` or ``rejected``.
        required: How many distinct approvals complete it.
        policies: The policies that asked for it (``{"name", "version"}``).
        author: Who registered the version (who may not approve it).
        requested_by: Who asked for the promotion (who may not approve it either).
        requested_at: When.
        reason: Why, as the requester said.
        resolved_at: When it was approved or rejected.
        decisions: The decisions so far, oldest first.
        model_id: The model's id.
        version_id: The version's id.
        outcome: After ``approve``: what completing it did (``{"promoted": …}``); None otherwise.
    """

    id: str
    model: str
    version: str
    alias: str
    status: ApprovalStatus
    required: int
    policies: tuple[Mapping[str, Any], ...]
    author: str
    requested_by: str
    requested_at: datetime
    reason: str
    resolved_at: datetime | None
    decisions: tuple[Decision, ...]
    model_id: str
    version_id: str
    outcome: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def approvers(self) -> list[str]:
        """Who approved, in order."""
        return [d.approver for d in self.decisions if d.decision == "approve"]

    @property
    def approvals(self) -> int:
        """How many distinct approvers approved."""
        return len(self.approvers)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id, "model": self.model, "version": self.version, "alias": self.alias,
            "status": self.status.value, "required": self.required, "approvals": self.approvals,
            "approvers": self.approvers, "policies": [dict(p) for p in self.policies], "author": self.author,
            "requested_by": self.requested_by, "requested_at": self.requested_at.isoformat(),
            "reason": self.reason, "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "decisions": [d.to_json() for d in self.decisions], "outcome": self.outcome,
        }  # fmt: skip


OnApproved = Callable[[ApprovalRequest], Mapping[str, Any]]
"""What completes a request that has its approvals: promote, and say what happened."""

_REQUEST = select(
    approval_requests,
    registered_models.c.name.label("model_name"),
    model_versions.c.version.label("version_number"),
    model_versions.c.created_by.label("author"),
).select_from(
    approval_requests.join(registered_models, registered_models.c.id == approval_requests.c.model_id).join(
        model_versions, model_versions.c.id == approval_requests.c.version_id
    )
)


def _comment(comment: str, required: bool) -> str:
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise InvalidInput(f"a comment is text of at most {MAX_COMMENT} characters", {"field": "comment"})
    if required and not comment.strip():
        raise InvalidInput("a rejection needs a comment that says why", {"field": "comment"})
    return comment.strip()


class ApprovalService:
    """Approval requests of the acting project.

    Args:
        platform: The platform whose metadata store holds them.
        on_approved: Called when an approval completes a request's count (the registry's promotion).
    """

    def __init__(self, platform: Platform, on_approved: OnApproved | None = None) -> None:
        self.platform = platform
        self.on_approved = on_approved

    # -- reading ----------------------------------------------------------------------------------------

    def _load(self, conn: Connection, rows: Sequence[Row[Any]]) -> builtins.list[ApprovalRequest]:
        ids = [r.id for r in rows]
        decisions: dict[str, list[Decision]] = {i: [] for i in ids}
        if ids:
            query = select(approval_decisions).where(approval_decisions.c.request_id.in_(ids))
            for d in conn.execute(query.order_by(approval_decisions.c.at, approval_decisions.c.approver)):
                decisions[d.request_id].append(Decision(d.approver, d.decision, d.comment, from_ms(d.at)))
        return [
            ApprovalRequest(
                id=r.id,
                model=r.model_name,
                version=r.version_number,
                alias=r.alias,
                status=ApprovalStatus(r.status),
                required=int(r.required),
                policies=tuple(json.loads(r.policy) if r.policy else ()),
                author=r.author,
                requested_by=r.requested_by,
                requested_at=from_ms(r.requested_at),
                reason=r.reason,
                resolved_at=from_ms(r.resolved_at),
                decisions=tuple(decisions[r.id]),
                model_id=r.model_id,
                version_id=r.version_id,
            )
            for r in rows
        ]

    def _scoped(self) -> Any:
        return _REQUEST.where(approval_requests.c.project == self.platform.project)

    def get(self, request_id: str) -> ApprovalRequest:
        """One request with its decisions.

        Raises:
            NotFound: The project has no request with that id.
        """
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 32:
            raise NotFound(f"approval request {str(request_id)[:40]!r} not found", {"field": "request"})
        with self.platform.metadata.read() as conn:
            rows = list(conn.execute(self._scoped().where(approval_requests.c.id == request_id)))
            if not rows:
                raise NotFound(f"approval request {request_id!r} not found", {"field": "request"})
            return self._load(conn, rows)[0]

    def list(self, status: ApprovalStatus | str | None = None) -> builtins.list[ApprovalRequest]:
        """The project's requests, oldest first, optionally only those with ``status``.

        Raises:
            InvalidInput: For an unknown status.
        """
        query = self._scoped()
        if status is not None:
            try:
                wanted = ApprovalStatus(status)
            except ValueError:
                known = ", ".join(s.value for s in ApprovalStatus)
                raise InvalidInput(f"unknown status {status!r}: use {known}", {"field": "status"}) from None
            query = query.where(approval_requests.c.status == wanted.value)
        with self.platform.metadata.read() as conn:
            rows = list(
                conn.execute(query.order_by(approval_requests.c.requested_at, approval_requests.c.id))
            )
            return self._load(conn, rows)

    def find_open(self, model_id: str, version_id: str, alias: str) -> ApprovalRequest | None:
        """The pending request to move ``alias`` of a model to a version, if there is one."""
        with self.platform.metadata.read() as conn:
            row = self._pending_row(conn, model_id, version_id, alias)
            return self._load(conn, [row])[0] if row is not None else None

    def _pending_row(self, conn: Connection, model_id: str, version_id: str, alias: str) -> Row[Any] | None:
        query = self._scoped().where(
            approval_requests.c.model_id == model_id,
            approval_requests.c.version_id == version_id,
            approval_requests.c.alias == alias,
            approval_requests.c.status == ApprovalStatus.PENDING.value,
        )
        return conn.execute(query).first()

    # -- writing ----------------------------------------------------------------------------------------

    def _audit(
        self, conn: Connection, action: str, resource: str, details: Mapping[str, Any], outcome: str = "ok"
    ) -> None:
        audit.append(
            conn, actor=self.platform.actor, action=action, resource_kind="approval_request",
            resource_id=resource, outcome=outcome, details=details, request_id=self.platform.request_id,
            checkpoint=audit.checkpointer_for(self.platform.settings), project=self.platform.project,
        )  # fmt: skip

    def open(
        self,
        model_id: str,
        version_id: str,
        alias: str,
        required: int,
        policies: Sequence[Mapping[str, Any]],
        reason: str = "",
    ) -> tuple[ApprovalRequest, bool]:
        """Open a request to move ``alias`` of a model to a version, or return the pending one.

        A reused request takes the ``required`` count and ``policies`` given (the policies in force now).

        Returns:
            The request, and whether it was opened now.
        """
        if not 1 <= required <= 1000:
            raise InvalidInput("a request needs between 1 and 1000 approvals", {"field": "required"})
        refs = json.dumps([dict(p) for p in policies], sort_keys=True)
        with self.platform.metadata.transaction() as conn:
            if conn.dialect.name == "postgresql":  # one pending request per version and alias
                conn.execute(select(registered_models.c.id).where(registered_models.c.id == model_id)
                             .with_for_update())  # fmt: skip
            found = self._pending_row(conn, model_id, version_id, alias)
            if found is not None:
                if found.required != required or (found.policy or "[]") != refs:
                    conn.execute(update(approval_requests).where(approval_requests.c.id == found.id)
                                 .values(required=required, policy=refs))  # fmt: skip
                    self._audit(
                        conn, "approval.update", found.id, {"required": required, "policies": list(policies)}
                    )
                request_id, opened = found.id, False
            else:
                request_id, opened = new_id(), True
                conn.execute(insert(approval_requests), {
                    "id": request_id, "project": self.platform.project, "model_id": model_id,
                    "version_id": version_id, "alias": alias, "status": ApprovalStatus.PENDING.value,
                    "required": required, "policy": refs, "requested_by": self.platform.actor,
                    "requested_at": now_ms(), "reason": reason,
                })  # fmt: skip
                details = {"model_id": model_id, "version_id": version_id, "alias": alias,
                           "required": required, "policies": list(policies), "reason": reason}  # fmt: skip
                self._audit(conn, "approval.open", request_id, details)
        return self.get(request_id), opened

    def _locked(self, conn: Connection, request_id: str) -> Row[Any]:
        query = self._scoped().where(approval_requests.c.id == request_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=approval_requests)
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"approval request {request_id!r} not found", {"field": "request"})
        return row

    def _refuse(self, request_id: str, error: StewardError, decision: str) -> StewardError:
        with self.platform.metadata.transaction() as conn:
            self._audit(conn, f"approval.{decision}", request_id, {"reason": error.message}, "denied")
        return error

    def _decide(self, request_id: str, decision: str, comment: str) -> ApprovalRequest:
        self.get(request_id)  # NotFound before anything is recorded
        try:
            current_identity().require("approvals:decide", self.platform.project)
        except Forbidden as exc:
            raise self._refuse(request_id, exc, decision) from None
        approver = self.platform.actor
        with self.platform.metadata.transaction() as conn:
            row = self._locked(conn, request_id)
            refusal = self._check(row, approver, decision, conn)
            if refusal is None:
                now = now_ms()
                values = {"approver": approver, "decision": decision, "comment": comment, "at": now}
                conn.execute(insert(approval_decisions), {"request_id": request_id, **values})
                if decision == "reject":
                    conn.execute(update(approval_requests).where(approval_requests.c.id == request_id)
                                 .values(status=ApprovalStatus.REJECTED.value, resolved_at=now))  # fmt: skip
                details = {"comment": comment, "model": row.model_name, "version": row.version_number,
                           "alias": row.alias}  # fmt: skip
                self._audit(conn, f"approval.{decision}", request_id, details)
        if refusal is not None:
            raise self._refuse(request_id, refusal, decision)
        return self.get(request_id)

    def _check(self, row: Row[Any], approver: str, decision: str, conn: Connection) -> StewardError | None:
        """Why ``approver`` may not decide on the request now (None if they may)."""
        what = f"{row.model_name} {row.version_number} -> {row.alias}"
        if row.status != ApprovalStatus.PENDING.value:
            return Conflict(
                f"the request to promote {what} is {row.status}, not pending", {"field": "request"}
            )
        if decision == "approve" and approver == row.author:
            return Forbidden(
                f"{approver!r} registered {row.model_name} {row.version_number} and so cannot approve its "
                "promotion (separation of duties)",
                {"rule": "separation_of_duties"},
            )
        if decision == "approve" and approver == row.requested_by:
            return Forbidden(f"{approver!r} requested the promotion of {what} and so cannot approve it "
                             "(separation of duties)", {"rule": "separation_of_duties"})  # fmt: skip
        seen = conn.execute(
            select(func.count()).where(
                approval_decisions.c.request_id == row.id, approval_decisions.c.approver == approver
            )
        ).scalar()
        if seen:
            return Conflict(
                f"{approver!r} has decided on the promotion of {what} already", {"field": "approver"}
            )
        return None

    def approve(self, request_id: str, comment: str = "") -> ApprovalRequest:
        """Approve a pending request; when that completes its count, promote then and there.

        Returns:
            The request. If this approval completed the count, ``outcome`` says what promoting did:
            ``{"promoted": True, …}``, or ``{"promoted": False, "message": …}`` with the verdict when
            the policies now fail for another reason (the request stays pending with its approvals).

        Raises:
            NotFound: There is no such request.
            Forbidden: The approver lacks ``approvals:decide``, wrote the version or requested it.
            Conflict: The request is not pending, or the approver decided on it already.
        """
        request = self._decide(request_id, "approve", _comment(comment, required=False))
        if request.approvals < request.required or self.on_approved is None:
            return request
        try:
            outcome = dict(self.on_approved(request))
        except StewardError as exc:  # the approval stands; say why the promotion did not happen
            outcome = {"promoted": False, "message": exc.message, "code": exc.code, "details": exc.details}
        return replace(self.get(request_id), outcome=outcome)

    def reject(self, request_id: str, comment: str) -> ApprovalRequest:
        """Reject a pending request, closing it; the comment must say why.

        The version's author or the requester may reject it (withdrawing it); a new promotion opens a
        new request.

        Raises:
            InvalidInput: Without a comment.
            NotFound: There is no such request.
            Forbidden: The approver lacks ``approvals:decide``.
            Conflict: The request is not pending, or the approver decided on it already.
        """
        return self._decide(request_id, "reject", _comment(comment, required=True))

    def complete(self, conn: Connection, request_id: str) -> None:
        """Mark a pending request approved, inside the caller's transaction (the one moving the alias)."""
        done = conn.execute(
            update(approval_requests)
            .where(
                approval_requests.c.id == request_id,
                approval_requests.c.status == ApprovalStatus.PENDING.value,
            )
            .values(status=ApprovalStatus.APPROVED.value, resolved_at=now_ms())
        ).rowcount
        if not done:
            raise Conflict(f"approval request {request_id!r} is no longer pending", {"field": "request"})
        self._audit(conn, "approval.complete", request_id, {})
