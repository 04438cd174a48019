"""Writing a change of plan, and the gate before one: the pieces every deploy write shares.

``apply_move`` writes one ``strategies.Move`` inside the caller's transaction: the endpoint's new arms
and revision, the rollout's state and step, its event and the audit entry (resource kind ``endpoint``;
the plans before and after in the details, their digests in the entry's ``before_digest`` and
``after_digest``). ``gate`` lets a version through only if the policies of the endpoint's gate alias
pass (``registry.gates.check``), or if it already holds that alias (it passed them when promoted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from steward.deploy import repository as repo
from steward.deploy.models import Endpoint, Rollout, RolloutState, arm_to_json
from steward.deploy.options import Strategy
from steward.deploy.strategies import Move
from steward.errors import Conflict, PolicyViolation
from steward.governance import audit
from steward.registry.gates import check
from steward.registry.models import ModelVersion, VersionStatus
from steward.serving.models import Arm

if TYPE_CHECKING:
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform


def plan_digest(arms: Sequence[Arm]) -> str:
    """The SHA-256 of a plan's arms (what audit entries record as before and after)."""
    text = json.dumps([arm_to_json(a) for a in arms], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def record(
    platform: Platform,
    conn: Connection,
    action: str,
    endpoint: str,
    details: Mapping[str, Any],
    *,
    before: Sequence[Arm] | None = None,
    after: Sequence[Arm] | None = None,
    outcome: str = "ok",
) -> None:
    """Append the audit entry of a change of ``endpoint`` (or a refusal) inside the caller's transaction."""
    facts = dict(details)
    if before is not None:
        facts["before"] = [arm_to_json(a) for a in before]
    if after is not None:
        facts["after"] = [arm_to_json(a) for a in after]
    audit.append(
        conn,
        actor=platform.actor,
        action=action,
        resource_kind="endpoint",
        resource_id=endpoint,
        outcome=outcome,
        details=facts,
        request_id=platform.request_id,
        before_digest=plan_digest(before) if before is not None else None,
        after_digest=plan_digest(after) if after is not None else None,
        checkpoint=audit.checkpointer_for(platform.settings),
        project=platform.project,
    )


def gate(
    platform: Platform,
    registry: RegistryService,
    endpoint: str,
    model: str,
    version: str,
    alias: str,
    action: str,
) -> ModelVersion:
    """Return ``version`` of ``model`` if it may be deployed behind ``alias``'s policies.

    Raises:
        NotFound: The model or version does not exist.
        Conflict: The version is archived.
        PolicyViolation: A policy protecting ``alias`` fails (audited as a denied ``action``);
            ``details["verdict"]`` is the verdict and ``details["lines"]`` its rendering, rule by rule.
    """
    target = registry.get_version(model, version)
    if target.status is VersionStatus.ARCHIVED:
        raise Conflict(f"{target.uri} is archived and cannot be deployed", {"field": "version"})
    if registry.get_model(model).aliases.get(alias) == target.version:
        return target  # it took the protected alias through the gate already
    verdict = check(registry, model, target.version, alias)
    if verdict.passed:
        return target
    facts = {
        "model": model,
        "version": target.version,
        "alias": alias,
        "summary": verdict.summary(),
        "failed": [r.rule for r in verdict.failures],
        "policies": [dict(p) for p in verdict.policies],
    }
    with platform.metadata.transaction() as conn:
        record(platform, conn, action, endpoint, facts, outcome="denied")
    how = (
        f"; promote it through the gate first (steward models promote {model} {target.version} "
        f"--alias {alias})"
        if verdict.pending_only
        else ""
    )
    raise PolicyViolation(
        f"{model} {target.version} may not be deployed to {endpoint!r} (gated by {alias!r}): "
        f"{verdict.summary()}{how}",
        {
            "field": "version",
            "endpoint": endpoint,
            "model": model,
            "version": target.version,
            "alias": alias,
            "verdict": verdict.to_json(),
            "lines": verdict.render().splitlines(),
        },
    )


@dataclass(frozen=True)
class Subject:
    """The rollout a move belongs to, as the move's records name it.

    Attributes:
        id: The rollout's id.
        strategy: Its strategy.
        version: Its candidate.
        baseline: Its baseline.
        state: Its state before the move (None for the move that starts it).
    """

    id: str
    strategy: Strategy
    version: str
    baseline: str
    state: RolloutState | None

    @classmethod
    def of(cls, rollout: Rollout) -> Subject:
        """The subject of an existing rollout."""
        return cls(rollout.id, rollout.strategy, rollout.version, rollout.baseline, rollout.state)


def apply_move(
    platform: Platform,
    conn: Connection,
    ep: Endpoint,
    subject: Subject,
    move: Move,
    action: str,
    now: int,
    *,
    kind: str | None = None,
    message: str | None = None,
    analysis: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> int:
    """Write ``move`` inside the caller's transaction; return the plan's new revision.

    Args:
        platform: The platform (its project and actor).
        conn: A connection inside the write transaction that read ``ep`` under its lock.
        ep: The endpoint as it is before the move.
        subject: The rollout.
        move: The move.
        action: The audit action (``rollout.step`` …).
        now: The time of the move (Unix ms).
        kind: The event kind, if not the move's own.
        message: The event's message, if not the move's own.
        analysis: The analysis that decided it.
        details: More facts for the event and the audit entry.
        columns: More endpoint columns to set (``sticky_key``).
    """
    project, active = platform.project, move.state.active
    revision = repo.write_plan(
        conn, project, ep.id, move.arms, now, active_rollout=subject.id if active else None, **(columns or {})
    )
    text = message or move.message
    values: dict[str, Any] = {
        "state": move.state.value,
        "step": move.step,
        "message": text,
        "step_started_at": now,
        "ended_at": None if active else now,
    }
    if analysis is not None:
        values["analysis"] = json.dumps(analysis)
    repo.update_rollout(conn, project, subject.id, **values)
    event = {"arms": [arm_to_json(a) for a in move.arms], "revision": revision, **(details or {})}
    if analysis is not None:
        event["analysis"] = dict(analysis)
    repo.append_event(
        conn,
        project,
        subject.id,
        at=now,
        kind=kind or move.kind,
        step=move.step,
        actor=platform.actor,
        message=text,
        details=event,
    )
    facts = {
        "rollout": subject.id,
        "strategy": subject.strategy.value,
        "version": subject.version,
        "baseline": subject.baseline,
        "from_state": subject.state.value if subject.state else None,
        "state": move.state.value,
        "step": move.step,
        "revision": revision,
        "message": text,
        **(details or {}),
    }
    if analysis is not None:
        facts["analysis"] = {"verdict": analysis.get("verdict"), "message": analysis.get("message")}
    record(platform, conn, action, ep.name, facts, before=ep.arms, after=move.arms)
    return revision
