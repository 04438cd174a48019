"""The "govern" stage: a policy on ``production``, the new version's verdict, its approval by a second demo
user, the promotion, and the audit trail verified.

The policy protects ``production`` of the demo model; the version the pipeline registered is promoted
through it as the OS user (its author), which opens an approval request, and ``demo-approver`` (made once,
with the ``approver`` role in the project) approves it: separation of duties keeps the author from
approving their own version. A rerun registers a new version with the same metrics, which the
no-regression rule lets through (it allows 0.01 below the version in production), through a new request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.text import Text

import steward
from steward.cli.quickstart.state import MODEL_NAME, Demo
from steward.errors import AlreadyExists, PolicyViolation

if TYPE_CHECKING:
    from steward.governance.approvals import ApprovalRequest
    from steward.governance.context import Identity
    from steward.governance.policy import Verdict
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform

ALIAS = "production"
POLICY_NAME = "quickstart-production"
APPROVER = "demo-approver"
"""The second demo user, who approves what the OS user registered."""
MIN_ROC_AUC = 0.95
"""The test ROC AUC the demo model must reach (it scores about 0.99)."""

POLICY = f"""\
name: {POLICY_NAME}
description: What the quickstart's model must meet to take {ALIAS}.
aliases: [{ALIAS}]
models: [{MODEL_NAME}]
rules:
  - rule: metrics.roc_auc >= {MIN_ROC_AUC}
    description: ranks malignant above benign well enough on the held-out test rows
  - rule: metrics.roc_auc >= current.metrics.roc_auc - 0.01
    description: no regression against the version in {ALIAS} (a rerun's identical model passes)
  - data_validated
  - pii_protected
  - card_present
  - safe_flavor
  - approvals >= 1
"""
"""The policy the stage applies (the same text each run, so a rerun's apply is ``unchanged``)."""

_STYLES = (
    (re.compile(r"(?m)^  PASS\b"), "green"),
    (re.compile(r"(?m)^  FAIL\b(?=.*\(awaiting approvals)"), "yellow"),
    (re.compile(r"(?m)^  FAIL\b(?!.*\(awaiting approvals)"), "red"),
    (re.compile(r"\A.*"), "bold"),
)


def show_verdict(demo: Demo, verdict: Verdict) -> None:
    """Print a verdict as ``steward policy check`` does, one line per rule, PASS green and FAIL red (a rule
    that only waits for approvals yellow).

    Args:
        demo: The demo's state (its console).
        verdict: The verdict.
    """
    text = Text(verdict.render())
    for pattern, style in _STYLES:
        text.highlight_regex(pattern, style)
    demo.console.print(text, soft_wrap=True)


def _apply_policy(demo: Demo, platform: Platform) -> None:
    from steward.governance.policy_store import PolicyStore

    applied = PolicyStore(platform).apply(POLICY)
    stored = applied.policy
    what = {"created": "Created", "updated": "Updated", "unchanged": "Unchanged:"}[applied.status]
    demo.console.print(
        f"{what} policy [bold]{stored.name}[/bold] version {stored.version}: {len(stored.policy.rules)} "
        f"rule(s) gating {', '.join(stored.policy.aliases)} of {', '.join(stored.policy.models)}."
    )


def ensure_approver(demo: Demo, platform: Platform) -> Identity | None:
    """Make ``demo-approver`` (once) with the ``approver`` role in the acting project; return its identity.

    Args:
        demo: The demo's state (its console).
        platform: The embedded platform, acting as the local admin.

    Returns:
        The identity to approve as; None when the user was disabled (the request then stays pending).
    """
    from steward.governance.context import Identity
    from steward.governance.identity import IdentityService

    service = IdentityService(platform)
    project = platform.project
    service.ensure_project(project)
    try:
        service.create_user(APPROVER, display_name="Quickstart approver (a second demo user)")
        made = f"Created the user [bold]{APPROVER}[/bold]"
    except AlreadyExists:
        made = f"The user [bold]{APPROVER}[/bold] exists already"
    member = service.add_member(project, APPROVER, "approver")
    if member.disabled:
        demo.console.print(
            f"[yellow]{APPROVER} is disabled, so it approves nothing: enable it (steward users enable "
            f"{APPROVER}) or have another approver decide.[/yellow]"
        )
        return None
    roles = f"role{'s' if len(member.roles) > 1 else ''} {', '.join(member.roles)}"
    demo.console.print(f"{made} ({roles} in project {project}).")
    return Identity(APPROVER, member.kind, frozenset(), {project: frozenset(member.roles)})


def approve_request(demo: Demo, registry: RegistryService, request: ApprovalRequest) -> None:
    """Approve ``request`` as the second demo user, and say what came of it (promoted, or still waiting)."""
    from steward.governance.context import acting_as
    from steward.registry.promotion import approval_service

    approver = ensure_approver(demo, registry.platform)
    if approver is None:
        return
    with acting_as(approver, registry.platform.project):
        decided = approval_service(registry).approve(
            request.id, "quickstart: the verdict passes but for this approval"
        )
    out = demo.console
    outcome = decided.outcome or {}
    done = f"{APPROVER} approved request {decided.id} ({decided.approvals} of {decided.required})"
    if outcome.get("promoted"):
        out.print(f"{done}: that completes it, and the policy passed again when checked at that moment.")
    elif outcome:
        out.print(f"{done}, but it was not promoted: {escape(str(outcome.get('message', '')))}")
    else:
        out.print(f"{done}; it waits for more: steward approvals approve {decided.id}")
    who = (
        f"{escape(request.author)} registered the version and requested the move, so may not approve it"
        if request.author == request.requested_by
        else f"{escape(request.author)} registered the version and {escape(request.requested_by)} "
        "requested the move: neither may approve it"
    )
    out.print(f"{who} (separation of duties).")


def _verify_audit(demo: Demo, platform: Platform) -> None:
    from steward.cli.audit import print_report
    from steward.governance.audit import AuditService

    with demo.console.status("Verifying the audit trail …"):
        report = AuditService(platform).verify()
    every = platform.settings.audit_checkpoint_every
    demo.console.print("$ steward audit verify", style="dim")
    # The command's own printer, so the demo shows exactly what `steward audit verify` prints.
    print_report(report, (report.last_seq or 0) // every, every, strict=False)
    if not report.ok:
        raise typer.Exit(code=1)
    demo.console.print(
        "The audit trail verified: the policy, the request, the approval and the move are entries in its "
        "hash chain, with everything recorded before them."
    )


def run_governance(demo: Demo) -> None:
    """Stage "govern": a policy on ``production``, the verdict, an approval as ``demo-approver``, the
    promotion, and ``steward audit verify``."""
    from steward.registry.gates import check
    from steward.registry.promotion import promote
    from steward.registry.service import RegistryService

    if demo.model_version is None:
        raise RuntimeError("run the pipeline stage before the governance stage")
    version = demo.model_version
    out = demo.console
    registry = steward.default_connection().registry
    if not isinstance(registry, RegistryService):
        out.print(
            f"Skipped: the demo approves as a second user ({APPROVER}), which needs embedded mode. Against "
            f"a server, promote with steward models promote {MODEL_NAME} {version} --alias {ALIAS}; an "
            "approver approves with their own token."
        )
        return
    platform = registry.platform
    _apply_policy(demo, platform)
    show_verdict(demo, check(registry, MODEL_NAME, version, ALIAS))
    before = registry.get_model(MODEL_NAME).aliases.get(ALIAS)
    try:
        result = promote(registry, MODEL_NAME, version, ALIAS, reason="quickstart: the new candidate")
    except PolicyViolation as exc:
        out.print(f"[red]The gate refused the promotion[/red]: {escape(exc.message)}")
    else:
        out.print(f"steward models promote, as {escape(platform.actor)}: {escape(result.message())}")
        if result.status == "pending" and result.request is not None:
            approve_request(demo, registry, result.request)
    now = registry.get_model(MODEL_NAME).aliases.get(ALIAS)
    if now == version:
        was = f" (before: {before})" if before is not None and before != now else ""
        out.print(f"[cyan]{ALIAS}[/cyan] now points at [bold]{MODEL_NAME} {version}[/bold]{was}.")
    else:
        out.print(f"[cyan]{ALIAS}[/cyan] stays at {now or 'no version'}.")
    _verify_audit(demo, platform)
    demo.notes.append(
        f"{ALIAS} is protected now: no role moves it directly (steward models alias refuses, admins "
        f"included); a version takes it through steward models promote, the policy {POLICY_NAME} and an "
        "approver who neither registered nor requested it."
    )
    demo.next_steps += [
        (f"steward policy check {MODEL_NAME} {version} --alias {ALIAS}", "the verdict, one line per rule"),
        ("steward approvals list --status all", "the approval requests and who decided them"),
        ("steward audit verify", "check every audit entry's hash and the signed checkpoints"),
        (f"steward models verify {MODEL_NAME} {version}", "the version's signature and its files' digests"),
    ]
