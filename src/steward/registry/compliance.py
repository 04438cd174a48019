"""Compliance reports: what Steward recorded about one model version, gathered into one document.

``build_report(registry, model, version)`` reads, and changes nothing:

- ``summary``: the version (flavor, status, who registered it and when, aliases, the alias moves that
  concern it, bundle files), its saved model card sections, and the check of its platform signature and
  digests (``RegistryService.verify_version``);
- ``lineage``: the producing run (code commit and dirty flag, params, metrics) and the training datasets
  with the chain of versions each derives from (``RegistryService.model_lineage``);
- ``data``: per training dataset version, its validation status (released from quarantine despite
  failed checks, or not), the dataset's expectations and quarantine history, the PII found along its
  chain and the privacy policy that protected it (which columns were masked, pseudonymised, generalised
  or dropped, and which tagged columns were left as they were), and its residency against the store;
- ``policies``: for each alias of the model protected by a policy in force, the verdict of those
  policies on this version, rule by rule (approvals counted from this version's request for the alias);
- ``approvals``: every approval request for this version, with its decisions;
- ``audit``: the newest entries (at most ``AUDIT_LIMIT``) about the version, its model's aliases, its
  approval requests, its run, its datasets and their quarantined batches, and the policies gating it,
  newest first; and the verification of the whole trail (``AuditService.verify``).

``ComplianceReport`` renders as JSON (``to_json``), a self-contained HTML page (``render_html``: inline
CSS, no script, no external asset, every value escaped) and a PDF (``render_pdf``, needs the ``pdf``
extra). Only Steward's own records are read: no dataset rows, so building a report records no PII read.

A version's validation report is kept only when it failed (the quarantined batch holds it): a published
version passed the expectations in force when it was ingested, so the report shows the expectations the
dataset holds now, and says so.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.core.time import from_ms, now_ms
from steward.data import repository as data_repo
from steward.data.models import DatasetVersion, QuarantinedBatch
from steward.data.residency import residency_of
from steward.data.service import DataService
from steward.errors import InvalidInput, NotFound
from steward.governance.approvals import ApprovalRequest, ApprovalService, ApprovalStatus
from steward.governance.audit import AuditEntry, AuditService
from steward.governance.context import current_identity
from steward.governance.policy_store import PolicyStore, StoredPolicy
from steward.registry import gates
from steward.registry import repository as repo
from steward.registry.cards import CARD_FIELDS

if TYPE_CHECKING:
    from steward.registry.models import ModelVersion
    from steward.registry.service import RegistryService

FORMATS = ("json", "html", "pdf")
"""The formats a report renders in."""
MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
"""The media type of each format."""
AUDIT_LIMIT = 500
"""The most audit entries a report holds (the newest)."""
PRIVACY_VERBS = {
    "mask": "masked",
    "pseudonymize": "pseudonymised",
    "generalize": "generalised",
    "drop": "dropped",
}
"""How a privacy action is named in a report's column lists."""
VALIDATION_NOTE = (
    "Steward keeps the validation report of a batch that failed its checks (in quarantine), not of one "
    "that passed: a published version passed the expectations in force when it was ingested. The "
    "expectations shown are the dataset's now."
)


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is one of ``FORMATS``.

    Raises:
        InvalidInput: For any other format.
    """
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unknown compliance report format {fmt!r}: use {', '.join(FORMATS)}", {"field": "format"}
        )
    return fmt


@dataclass(frozen=True)
class ComplianceReport:
    """Everything recorded about one model version that an auditor asks for (see the module docstring).

    Every section is JSON-ready (times in ISO 8601, UTC).

    Attributes:
        model: The model's name.
        version: The version number.
        generated_at: When the report was built.
        generated_by: Who built it.
        project: The project the version belongs to.
        summary: The version, its card and its signature check.
        lineage: Its run and training datasets with their derivation chains.
        data: Per training dataset version: validation, quarantine, PII, privacy and residency.
        policies: Per protected alias: the policies in force and their verdict on the version.
        approvals: The approval requests for the version, with their decisions.
        audit: ``{"entries", "limit", "truncated", "verification"}``.
    """

    model: str
    version: str
    generated_at: datetime
    generated_by: str
    project: str
    summary: Mapping[str, Any]
    lineage: Mapping[str, Any]
    data: Sequence[Mapping[str, Any]]
    policies: Sequence[Mapping[str, Any]]
    approvals: Sequence[Mapping[str, Any]]
    audit: Mapping[str, Any]

    @property
    def filename_stem(self) -> str:
        """``<model>-<version>-compliance``: the default name of a report file, without its extension."""
        return f"{self.model}-{self.version}-compliance"

    def to_json(self) -> dict[str, Any]:
        """Return the report as plain JSON, its keys always the same."""
        return {
            "report": "steward-compliance",
            "model": self.model,
            "version": self.version,
            "project": self.project,
            "generated_at": self.generated_at.isoformat(),
            "generated_by": self.generated_by,
            "summary": dict(self.summary),
            "lineage": dict(self.lineage),
            "data": [dict(d) for d in self.data],
            "policies": [dict(p) for p in self.policies],
            "approvals": [dict(a) for a in self.approvals],
            "audit": dict(self.audit),
        }

    def render_html(self) -> str:
        """Return the report as one self-contained HTML page (inline CSS, no script or external asset)."""
        from steward.registry.compliance_render import render_html

        return render_html(self.to_json())

    def render_pdf(self, *, compress: bool = True) -> bytes:
        """Return the report as a PDF with the same sections, as text and tables.

        Args:
            compress: Deflate the page content (off: its text can be read in the raw bytes).

        Raises:
            InvalidInput: fpdf2 is not installed (``pip install 'steward-ml[pdf]'``).
        """
        from steward.registry.compliance_render import render_pdf

        return render_pdf(self.to_json(), compress=compress)

    def render(self, fmt: str) -> bytes:
        """Return the report in ``fmt`` (one of ``FORMATS``) as bytes: JSON and HTML as UTF-8.

        Raises:
            InvalidInput: For an unknown format, or ``pdf`` without fpdf2.
        """
        if check_format(fmt) == "pdf":
            return self.render_pdf()
        if fmt == "html":
            return self.render_html().encode()
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False).encode()


def build_report(
    registry: RegistryService, model: str, version: str, *, audit_limit: int = AUDIT_LIMIT
) -> ComplianceReport:
    """Gather the compliance report of ``model`` ``version`` from the registry, data and governance records.

    Args:
        registry: The (embedded) registry the version is in.
        model: The model's name.
        version: The version number.
        audit_limit: The most audit entries to include (the newest), 1 to 20 times ``AUDIT_LIMIT``.

    Raises:
        NotFound: The model or version does not exist.
        InvalidInput: For a bad name or version, or a limit out of range.
        Forbidden: The acting identity lacks ``audit:read`` in the project.
    """
    if not 1 <= audit_limit <= AUDIT_LIMIT * 20:
        raise InvalidInput(f"audit_limit must be between 1 and {AUDIT_LIMIT * 20}", {"field": "audit_limit"})
    platform = registry.platform
    current_identity().require("audit:read", platform.project)  # before anything says what exists
    target = registry.get_version(model, version)
    lineage = registry.model_lineage(model, target.version)
    data = DataService(platform)
    datasets = [_dataset_section(registry, data, role, vid) for role, vid in sorted(target.datasets.items())]
    requests = [r for r in ApprovalService(platform).list() if r.version_id == target.id]
    in_force = PolicyStore(platform).in_force()
    policies = _policy_sections(registry, target, in_force, requests)
    resources = _resources(registry, target, datasets, requests, in_force)
    return ComplianceReport(
        model=target.model,
        version=target.version,
        generated_at=from_ms(now_ms()),
        generated_by=platform.actor,
        project=platform.project,
        summary=_summary(registry, target),
        lineage=_lineage(registry, target, lineage),
        data=datasets,
        policies=policies,
        approvals=[_approval(r) for r in requests],
        audit=_audit(AuditService(platform), resources, audit_limit),
    )


# -- summary and lineage ----------------------------------------------------------------------------------


def _summary(registry: RegistryService, target: ModelVersion) -> dict[str, Any]:
    report = registry.verify_version(target.model, target.version)
    with registry.platform.metadata.read() as conn:
        card = repo.card_row(conn, target.id)
    fields = json.loads(card.fields) if card is not None else {}
    events = [
        e.to_json()
        for e in registry.alias_history(target.model)
        if target.version in (e.from_version, e.to_version)
    ]
    files = [{"format": "model", **f.to_json()} for f in target.files]
    for name, manifest in sorted(target.formats.items()):
        files += [{"format": name, **dict(f)} for f in manifest.get("files", ())]
    return {
        "model": target.model,
        "version": target.version,
        "version_id": target.id,
        "uri": target.uri,
        "status": target.status.value,
        "flavor": target.flavor,
        "formats": ["model", *sorted(target.formats)],
        "description": target.description,
        "created_at": target.created_at.isoformat(),
        "created_by": target.created_by,
        "archived_at": target.archived_at.isoformat() if target.archived_at else None,
        "archived_reason": target.archived_reason,
        "aliases": list(target.aliases),
        "alias_history": events,
        "manifest_digest": target.manifest_digest,
        "files": files,
        "card": {
            "saved": card is not None,
            "sections": [
                {"field": name, "heading": heading, "text": str(fields.get(name) or "")}
                for name, heading in CARD_FIELDS.items()
            ],
            "updated_at": from_ms(card.updated_at).isoformat() if card is not None else None,
            "updated_by": card.updated_by if card is not None else None,
        },
        "signature": {
            "ok": report.ok,
            "key_id": report.key_id,
            "checks": [c.to_json() for c in report.checks],
        },
    }


def _lineage(registry: RegistryService, target: ModelVersion, lineage: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run": lineage.get("run"),
        "metrics": dict(sorted(gates.version_metrics(registry, target).items())),
        "recorded_metrics": dict(sorted(target.metrics.items())),
        "datasets": [dict(d) for d in lineage.get("datasets") or ()],
    }


# -- data -------------------------------------------------------------------------------------------------


def _dataset_section(
    registry: RegistryService, data: DataService, role: str, version_id: str
) -> dict[str, Any]:
    """Validation, quarantine, PII, privacy and residency of one training dataset version."""
    platform = registry.platform
    with platform.metadata.read() as conn:
        chain = [
            data_repo.to_version(r, r.dataset_name)
            for r in data_repo.version_ancestry(conn, platform.project, version_id)
        ]
    if not chain:
        return {
            "role": role,
            "id": version_id,
            "steward": False,
            "note": "not a Steward dataset version: no validation, PII or residency record applies",
        }
    found = chain[0]
    names = list(dict.fromkeys(v.dataset for v in chain))
    owners = {name: data.get_dataset(name) for name in names}
    dataset = owners[found.dataset]
    rules = residency_of(dataset.name, dataset.region, dataset.allowed_regions, platform.settings)
    store = platform.settings.store_region
    allowed = ", ".join(sorted(rules.allowed)) or "none"
    return {
        "role": role,
        "id": found.id,
        "steward": True,
        "ref": found.ref,
        "dataset": found.dataset,
        "rows": found.rows,
        "content_digest": found.content_digest,
        "created_at": found.created_at.isoformat(),
        "created_by": found.created_by,
        "chain": [{"id": v.id, "ref": v.ref, "dataset": v.dataset, "source": _source_kind(v)} for v in chain],
        "validation": _validation(data, chain, {n: o.expectations for n, o in owners.items()}),
        "quarantine": [_batch(b) for name in names for b in data.list_quarantine(name, status=None)],
        "pii": _pii(chain),
        "residency": {
            "dataset_region": dataset.region,
            "stored_in": found.region,
            "allowed_regions": sorted(rules.allowed),
            "store_region": store,
            "ok": rules.permits(store),
            "message": (
                f"the store region {store!r} is allowed for {dataset.name!r}"
                if rules.permits(store)
                else f"{dataset.name!r} may reside only in {allowed}; the artifact store is in {store!r}"
            ),
        },
    }


def _source_kind(version: DatasetVersion) -> str:
    return str(version.source.get("kind") or "")


def _validation(
    data: DataService, chain: Sequence[DatasetVersion], expectations: Mapping[str, Any]
) -> dict[str, Any]:
    released = []
    for link in chain:
        if _source_kind(link) != "quarantine":
            continue
        batch_id = str(link.source.get("batch") or "")
        entry: dict[str, Any] = {
            "ref": link.ref,
            "batch": batch_id,
            "reason": str(link.source.get("released_because") or ""),
        }
        with contextlib.suppress(NotFound):
            entry["failed_checks"] = _failed_checks(data.get_quarantined(batch_id).report)
        released.append(entry)
    checked = {name: dict(e) if e else None for name, e in expectations.items()}
    if released:
        status = "released_from_quarantine"
    elif all(e is None for e in checked.values()):
        status = "no_expectations"
    else:
        status = "validated"
    return {"status": status, "expectations": checked, "released": released, "note": VALIDATION_NOTE}


def _failed_checks(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failed checks of a validation report, without their example values (they may be personal)."""
    return [
        {key: r.get(key) for key in ("check", "column", "failing_rows", "message")}
        for r in report.get("results") or ()
        if not r.get("passed", True)
    ]


def _batch(batch: QuarantinedBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "dataset": batch.dataset,
        "status": batch.status.value,
        "rows": batch.rows,
        "created_at": batch.created_at.isoformat(),
        "created_by": batch.created_by,
        "resolved_at": batch.resolved_at.isoformat() if batch.resolved_at else None,
        "resolved_by": batch.resolved_by,
        "resolution": batch.resolution,
        "failed_checks": _failed_checks(batch.report),
    }


def _pii(chain: Sequence[DatasetVersion]) -> dict[str, Any]:
    """The PII found along the chain and what the privacy policy nearest the trained version did."""
    scans = [
        {"ref": v.ref, "scanned": v.pii is not None, "columns": {c: t for c, t in v.pii_tags.items() if t}}
        for v in chain
    ]
    protected_by = next((v for v in chain if _source_kind(v) == "privacy"), None)
    actions: dict[str, str] = dict(protected_by.source.get("actions") or {}) if protected_by else {}
    changed = {
        verb: sorted(c for c, a in actions.items() if a == action) for action, verb in PRIVACY_VERBS.items()
    }
    found = chain[0]
    own = protected_by is found
    tagged = sorted(c for c, tags in found.pii_tags.items() if tags)
    unprotected = [c for c in tagged if not (own and c in actions)]
    return {
        "scanned": found.pii is not None,
        "scans": scans,
        "privacy": {
            "applied": protected_by is not None,
            "version": protected_by.ref if protected_by else None,
            "from": str(protected_by.source.get("from") or "") if protected_by else None,
            "policy": dict(protected_by.source.get("policy") or {}) if protected_by else None,
            "actions": dict(sorted(actions.items())),
            **changed,
        },
        "unprotected": unprotected if found.pii is not None else ["(never scanned for personal data)"],
        "protected": found.pii is not None and not unprotected,
    }


# -- policies and approvals -------------------------------------------------------------------------------


def _protected_aliases(model: str, in_force: Iterable[StoredPolicy]) -> list[str]:
    return sorted({a for p in in_force for a in p.policy.aliases if p.policy.applies_to(model, a)})


def _policy_sections(
    registry: RegistryService,
    target: ModelVersion,
    in_force: Sequence[StoredPolicy],
    requests: Sequence[ApprovalRequest],
) -> list[dict[str, Any]]:
    """Per protected alias: the verdict of its policies, approvals counted from this version's request
    for it (the pending one, else the newest approved one), evaluated now."""
    sections = []
    for alias in _protected_aliases(target.model, in_force):
        found = [p for p in in_force if p.policy.applies_to(target.model, alias)]
        mine = [r for r in requests if r.alias == alias]
        counted = next((r for r in reversed(mine) if r.status is ApprovalStatus.PENDING), None) or next(
            (r for r in reversed(mine) if r.status is ApprovalStatus.APPROVED), None
        )
        approvals = counted.approvals if counted is not None else 0
        verdict = gates.verdict_for(registry, target, alias, found, approvals)
        sections.append(
            {
                "alias": alias,
                "held_by": registry.get_model(target.model).aliases.get(alias),
                "policies": [p.to_json(document=False) for p in found],
                "approvals_from": (
                    {"request": counted.id, "status": counted.status.value, "approvals": approvals}
                    if counted is not None
                    else None
                ),
                "verdict": verdict.to_json(),
            }
        )
    return sections


def _approval(request: ApprovalRequest) -> dict[str, Any]:
    found = request.to_json()
    found.pop("outcome", None)  # only set on the answer to the approval that completed it
    return found


# -- audit ------------------------------------------------------------------------------------------------


def _resources(
    registry: RegistryService,
    target: ModelVersion,
    datasets: Sequence[Mapping[str, Any]],
    requests: Sequence[ApprovalRequest],
    in_force: Sequence[StoredPolicy],
) -> list[tuple[str, str]]:
    """The ``(resource_kind, resource_id)`` pairs whose audit entries concern the version."""
    model = target.model
    aliases = {e.alias for e in registry.alias_history(model)} | set(target.aliases)
    aliases |= set(registry.get_model(model).aliases) | set(_protected_aliases(model, in_force))
    pairs = [("model_version", f"{model}/{target.version}")]
    pairs += [("model_alias", f"{model}@{a}") for a in sorted(aliases)]
    pairs += [("approval_request", r.id) for r in requests]
    if target.run_id is not None:
        pairs.append(("run", target.run_id))
    for section in datasets:
        if not section.get("steward"):
            continue
        pairs += [("dataset_version", link["id"]) for link in section["chain"]]
        pairs += [("dataset", link["dataset"]) for link in section["chain"]]
        pairs += [("quarantined_batch", b["id"]) for b in section["quarantine"]]
    pairs += [
        ("policy", p.name) for p in in_force if any(p.policy.applies_to(model, a) for a in p.policy.aliases)
    ]
    return list(dict.fromkeys(pairs))


def _audit(service: AuditService, resources: Sequence[tuple[str, str]], limit: int) -> dict[str, Any]:
    project = service.platform.project
    wide = bool(current_identity().global_roles)
    found: dict[int, AuditEntry] = {}
    full = False  # a resource had as many entries as asked for: it may have older ones
    for kind, resource in resources:
        entries = service.log(
            resource_kind=kind, resource_id=resource, limit=limit, project=project, with_unscoped=wide
        )
        full = full or len(entries) == limit
        found.update((e.seq, e) for e in entries)
    # Each resource's newest ``limit`` entries hold the newest ``limit`` of them all.
    newest = sorted(found.values(), key=lambda e: e.seq, reverse=True)
    truncated = full or len(newest) > limit
    verification = service.verify()
    return {
        "limit": limit,
        "truncated": truncated,
        "resources": [{"kind": k, "id": i} for k, i in resources],
        "entries": [_entry(e) for e in newest[:limit]],
        "verification": {
            "ok": verification.ok,
            "entries": verification.entries,
            "checkpoints": verification.checkpoints,
            "last_seq": verification.last_seq,
            "unsigned_tail": verification.unsigned_tail,
            "key_id": verification.key_id,
            "first_bad": verification.first_bad.to_json() if verification.first_bad else None,
        },
    }


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": from_ms(entry.at).isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "resource_kind": entry.resource_kind,
        "resource_id": entry.resource_id,
        "outcome": entry.outcome,
        "details": dict(entry.details),
        "request_id": entry.request_id,
        "hash": entry.hash,
    }
