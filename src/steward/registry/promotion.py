"""Promotion: moving an alias through the policy gate, and the approvals it may wait for.

An alias is *protected* when a policy in force lists it in ``aliases`` and matches the model in
``models``. ``promote`` moves an unprotected alias as ``RegistryService.set_alias`` always did. For a
protected one it evaluates the policies over the version's facts (``gates``):

- every rule holds: the alias moves (audited ``model.alias_set`` with the policies that passed);
- only approval rules fail: an approval request is opened (or the open one reused) and the result is
  ``pending``; the approval that completes the count promotes then and there, after evaluating the
  policies again at that moment;
- any other rule fails: ``PolicyViolation``, whose ``details["verdict"]`` is the verdict, audited as a
  denied ``model.promote``.

Nothing else moves or removes a protected alias: ``set_alias`` and ``delete_alias`` refuse it for every
role (``refuse_if_protected``). The move checks, under the model's lock, that the alias still points
where it did when the policies were evaluated, so a regression rule cannot be judged against a version
that is no longer current.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from steward.errors import Conflict, PolicyViolation
from steward.governance import audit
from steward.governance.approvals import ApprovalRequest, ApprovalService
from steward.governance.context import current_identity
from steward.governance.policy import Verdict
from steward.governance.policy_store import PolicyStore, StoredPolicy
from steward.registry.gates import verdict_for
from steward.registry.models import ModelVersion, VersionStatus

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from steward.registry.service import RegistryService


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` did.

    Attributes:
        status: ``promoted`` (the alias moved), ``pending`` (an approval request waits) or ``unchanged``
            (the protected alias already points at the version).
        model: The model.
        version: The version promoted.
        alias: The alias.
        moved: The version as it is now, when the alias points at it.
        verdict: The policies' verdict (None for an unprotected alias).
        request: The approval request, when one is involved.
    """

    status: str
    model: str
    version: str
    alias: str
    moved: ModelVersion | None = None
    verdict: Verdict | None = None
    request: ApprovalRequest | None = None

    def message(self) -> str:
        """One sentence for a person."""
        uri = f"models:/{self.model}/{self.version}"
        if self.status == "promoted":
            return f"{self.alias} now points at {uri}."
        if self.status == "unchanged":
            return f"{self.alias} already points at {uri}."
        assert self.request is not None
        return (
            f"{self.alias} is protected: approval request {self.request.id} waits for "
            f"{self.request.required - self.request.approvals} more approval(s) "
            f"({self.request.approvals} of {self.request.required}); approvers run "
            f"steward approvals approve {self.request.id}"
        )

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "message": self.message(),
            "moved": self.moved.to_json() if self.moved is not None else None,
            "verdict": self.verdict.to_json() if self.verdict is not None else None,
            "request": self.request.to_json() if self.request is not None else None,
        }


def protecting(registry: RegistryService, model: str, alias: str) -> list[StoredPolicy]:
    """The policies in force that protect ``alias`` of ``model`` (none: it is not protected)."""
    return PolicyStore(registry.platform).protecting(model, alias)


def _record(registry: RegistryService, action: str, resource: str, details: Mapping[str, Any]) -> None:
    platform = registry.platform
    with platform.metadata.transaction() as conn:
        audit.append(
            conn, actor=platform.actor, action=action, resource_kind="model_alias", resource_id=resource,
            outcome="denied", details=details, request_id=platform.request_id,
            checkpoint=audit.checkpointer_for(platform.settings), project=platform.project,
        )  # fmt: skip


def refuse_if_protected(registry: RegistryService, model: str, alias: str, action: str) -> None:
    """Refuse a direct move (``action="move"``) or removal (``"delete"``) of a protected alias.

    Raises:
        PolicyViolation: Naming the policies and how to promote instead; the refusal is audited.
    """
    found = protecting(registry, model, alias)
    if not found:
        return
    names = ", ".join(repr(p.name) for p in found)
    how = (
        f"promote a version through the gate: steward models promote {model} VERSION --alias {alias} "
        f"(POST /api/v1/models/{model}/versions/VERSION/promote)"
    )
    if action == "delete":
        how = f"promote another version instead, or retire the policy ({how})"
    message = f"alias {alias!r} of {model!r} is protected by policy {names}: no role moves it directly; {how}"
    refs = [{"name": p.name, "version": p.version} for p in found]
    _record(registry, f"model.alias_{'deleted' if action == 'delete' else 'set'}", f"{model}@{alias}",
            {"model": model, "alias": alias, "policies": refs, "reason": "protected alias"})  # fmt: skip
    raise PolicyViolation(message, {"field": "alias", "alias": alias, "policies": refs})


def approval_service(registry: RegistryService) -> ApprovalService:
    """The approval service whose completed requests promote through this registry."""
    return ApprovalService(registry.platform, on_approved=partial(_complete, registry))


def _move(
    registry: RegistryService,
    target: ModelVersion,
    alias: str,
    reason: str,
    verdict: Verdict,
    expected: str | None,
    request: ApprovalRequest | None = None,
) -> ModelVersion:
    """Move the alias once the gate passed: under the lock, only if it still points at ``expected``."""

    def before(conn: Connection, current: str | None) -> None:
        if current != expected:
            raise Conflict(
                f"alias {alias!r} of {target.model!r} moved to {current or 'nothing'} while the policies "
                f"were checked against {expected or 'no version'}: promote again",
                {"field": "alias"},
            )
        if request is not None:
            ApprovalService(registry.platform).complete(conn, request.id)

    details = {"policies": [dict(p) for p in verdict.policies], "verdict": verdict.summary()}
    if request is not None:
        details |= {"approval_request": request.id, "approvers": request.approvers,
                    "requested_by": request.requested_by}  # fmt: skip
    return registry._move_alias(target.model, alias, target.version, reason, details=details, before=before)


def _deny(registry: RegistryService, target: ModelVersion, alias: str, verdict: Verdict) -> PolicyViolation:
    failed = [r.rule for r in verdict.failures]
    _record(registry, "model.promote", f"{target.model}@{alias}",
            {"version": target.version, "alias": alias, "failed": failed, "summary": verdict.summary(),
             "policies": [dict(p) for p in verdict.policies]})  # fmt: skip
    return PolicyViolation(
        f"{target.model} {target.version} may not take {alias!r}: {verdict.summary()}",
        {"field": "version", "model": target.model, "version": target.version, "alias": alias,
         "verdict": verdict.to_json()},
    )  # fmt: skip


def promote(
    registry: RegistryService, model: str, version: str, alias: str = "production", reason: str = ""
) -> PromotionResult:
    """Move ``alias`` of ``model`` to ``version`` through the policies that protect it.

    Returns:
        ``promoted`` (moved), ``pending`` (an approval request waits: see ``request``) or ``unchanged``.

    Raises:
        PolicyViolation: A rule other than approvals fails; ``details["verdict"]`` has every rule.
        Forbidden: The acting identity lacks ``models:promote``.
        NotFound: The model or version does not exist.
        Conflict: The version is archived, or the alias moved while the policies were checked.
        InvalidInput: For a bad or reserved alias name.
    """
    current_identity().require("models:promote", registry.platform.project)
    found = protecting(registry, model, alias)
    if not found:
        moved = registry._move_alias(model, alias, version, reason)
        return PromotionResult("promoted", model, moved.version, alias, moved)
    target = registry.get_version(model, version)
    if target.status is VersionStatus.ARCHIVED:
        raise Conflict(f"{target.uri} is archived and cannot take an alias", {"field": "version"})
    model_row = registry.get_model(model)
    expected = model_row.aliases.get(alias)
    if expected == target.version:
        return PromotionResult("unchanged", model, target.version, alias, target)
    approvals = approval_service(registry)
    request = approvals.find_open(model_row.id, target.id, alias)
    verdict = verdict_for(registry, target, alias, found, request.approvals if request is not None else 0)
    if verdict.passed:
        moved = _move(registry, target, alias, reason, verdict, expected, request)
        return PromotionResult("promoted", model, target.version, alias, moved, verdict,
                               approvals.get(request.id) if request is not None else None)  # fmt: skip
    if verdict.pending_only:
        required = verdict.required_approvals
        opened, _ = approvals.open(model_row.id, target.id, alias, required, verdict.policies, reason)
        return PromotionResult("pending", model, target.version, alias, None, verdict, opened)
    raise _deny(registry, target, alias, verdict)


def _complete(registry: RegistryService, request: ApprovalRequest) -> dict[str, Any]:
    """Promote for a request that has its approvals, judging the policies as they are now."""
    target = registry.get_version(request.model, request.version)
    found = protecting(registry, request.model, request.alias)
    expected = registry.get_model(request.model).aliases.get(request.alias)
    verdict = verdict_for(registry, target, request.alias, found, request.approvals)
    if verdict.passed:
        reason = f"{request.reason} (approval request {request.id})".strip()
        moved = _move(registry, target, request.alias, reason, verdict, expected, request)
        return {
            "promoted": True,
            "version": moved.version,
            "alias": request.alias,
            "verdict": verdict.to_json(),
        }
    if verdict.pending_only:  # the policy now asks for more approvals: keep waiting for them
        ApprovalService(registry.platform).open(
            request.model_id, request.version_id, request.alias, verdict.required_approvals, verdict.policies,
            request.reason,
        )  # fmt: skip
        message = f"the policies now ask for {verdict.required_approvals} approvals"
        return {"promoted": False, "pending": True, "message": message, "verdict": verdict.to_json()}
    error = _deny(registry, target, request.alias, verdict)
    return {"promoted": False, "message": error.message, "verdict": verdict.to_json()}
