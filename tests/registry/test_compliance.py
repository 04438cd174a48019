"""Compliance reports: every section holds the recorded facts; HTML is offline and escaped; PDF has them."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import update

from steward.config import load_settings
from steward.data.models import DatasetVersion
from steward.data.service import DataService
from steward.errors import Forbidden, InvalidInput, NotFound
from steward.governance.context import Identity, acting_as, local_identity
from steward.governance.policy_store import PolicyStore
from steward.registry import compliance, promotion
from steward.registry.compliance import ComplianceReport, build_report
from steward.registry.compliance_render import SECTIONS
from steward.registry.models import VersionSpec
from steward.registry.service import RegistryService
from steward.store.platform import Platform
from steward.store.tables import audit_log
from steward.tracking.models import RunStatus, SystemInfo
from steward.tracking.service import TrackingService

HOSTILE = "<script>alert('owned')</script>"
GATE = """\
name: gate
rules:
  - metrics.auc >= 0.85
  - data_validated
  - pii_protected
  - residency_ok
  - approvals >= 1
"""
CHECKS = {"columns": {"spend": {"type": "float64", "min": 0}}}
PRIVACY = {"by_tag": {"email": {"action": "mask"}}, "by_column": {"customer_id": {"action": "pseudonymize"}}}
PEOPLE = pa.table(
    {"customer_id": ["C-1", "C-2"], "email": ["ana@example.org", "bo@example.com"], "spend": [10.0, 20.0]}
)


def approver(name: str, project: str) -> Identity:
    return Identity(name, "user", frozenset(), {project: frozenset({"approver"})})


@dataclass
class Scenario:
    """A version ``churn 1.1.0`` trained on a validated, PII-protected dataset version, gated and approved."""

    platform: Platform
    registry: RegistryService
    raw: DatasetVersion
    protected: DatasetVersion
    batch: str
    run_id: str
    request_id: str

    @property
    def data(self) -> DataService:
        return DataService(self.platform)


def build_scenario(platform: Platform, folder: Path, project: str = "default") -> Scenario:
    """Record everything a compliance report reads, acting as ``eng`` (and ``ana`` to approve)."""
    folder.mkdir(parents=True, exist_ok=True)
    tracking = TrackingService(platform)
    registry = RegistryService(platform, tracking)
    with acting_as(local_identity("eng"), project):
        data = DataService(platform)
        result = data.ingest(PEOPLE, "people", expectations=CHECKS, privacy=PRIVACY)
        raw, protected = result.raw[0], result.version
        assert protected is not None
        held = data.ingest(
            pa.table({"customer_id": ["C-3"], "email": ["cy@example.net"], "spend": [-5.0]}), "people"
        ).quarantined[0]
        data.drop(held.id, "negative spend is a refund feed error")
        data.ingest(pa.table({"x": [1.0]}), "unrelated")
        run = tracking.create_run(
            "churn-exp", "train", system=SystemInfo(git_commit="0123abcd", git_dirty=True)
        )
        tracking.log_params(run.id, {"C": 0.5, "penalty": "l2"})
        tracking.end_run(run.id, RunStatus.FINISHED)

        def register(version: str, **spec: Any) -> None:
            local = folder / f"weights-{version}"
            local.write_bytes(f"weights {version}".encode())
            upload = registry.upload_file("churn", local, "model.bin")
            registry.create_version(
                "churn", VersionSpec(flavor="sklearn", files=[upload], version=version, **spec)
            )

        register("1.0.0", metrics={"auc": 0.88})
        registry.set_alias("churn", "production", "1.0.0", "first")
        PolicyStore(platform).apply(GATE)
        register(
            "1.1.0",
            run_id=run.id,
            datasets={"train": protected.id},
            metrics={"auc": 0.91},
            description=HOSTILE,
        )
        registry.save_card("churn", "1.1.0", {"intended_use": "churn scoring", "limitations": HOSTILE})
        pending = promotion.promote(registry, "churn", "1.1.0", "production", "quarterly retrain")
        assert pending.request is not None
    with acting_as(approver("ana", project), project):
        done = promotion.approval_service(registry).approve(pending.request.id, "data checks look right")
    assert done.outcome is not None and done.outcome["promoted"] is True
    return Scenario(platform, registry, raw, protected, held.id, run.id, pending.request.id)


def open_scenario(folder: Path) -> Scenario:
    platform = Platform.from_settings(load_settings(home=folder / "home", privacy_secret="s" * 32))
    return build_scenario(platform, folder / "files")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """One scenario for the tests that only read it."""
    found = open_scenario(tmp_path_factory.mktemp("compliance"))
    yield found
    found.platform.close()


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    """A scenario of the test's own, to change."""
    found = open_scenario(tmp_path)
    yield found
    found.platform.close()


@pytest.fixture(scope="module")
def report(shared: Scenario) -> ComplianceReport:
    return build_report(shared.registry, "churn", "1.1.0")


def test_the_summary_names_the_version_its_aliases_card_and_a_verified_signature(
    report: ComplianceReport,
) -> None:
    summary = report.summary
    assert (summary["model"], summary["version"], summary["flavor"], summary["created_by"]) == (
        "churn",
        "1.1.0",
        "sklearn",
        "eng",
    )
    assert summary["aliases"] == ["production"] and summary["description"] == HOSTILE
    datetime.fromisoformat(summary["created_at"])
    assert summary["signature"]["ok"] is True and summary["signature"]["key_id"]
    assert {c["name"] for c in summary["signature"]["checks"]} >= {
        "key",
        "signature",
        "manifest",
        "file:model.bin",
    }
    moves = [(e["alias"], e["from_version"], e["to_version"], e["actor"]) for e in summary["alias_history"]]
    assert moves == [("production", "1.0.0", "1.1.0", "ana")]
    sections = {section["field"]: section["text"] for section in summary["card"]["sections"]}
    assert summary["card"]["saved"] is True
    assert (sections["intended_use"], sections["limitations"], sections["caveats"]) == (
        "churn scoring",
        HOSTILE,
        "",
    )


def test_lineage_holds_the_run_commit_params_metrics_and_the_dataset_chain(
    shared: Scenario, report: ComplianceReport
) -> None:
    run = report.lineage["run"]
    assert (run["id"], run["git_commit"], run["git_dirty"]) == (shared.run_id, "0123abcd", True)
    assert run["params"] == {"C": "0.5", "penalty": "l2"}
    assert report.lineage["metrics"]["auc"] == 0.91
    (train,) = report.lineage["datasets"]
    assert (train["role"], train["ref"]) == ("train", "people@2")
    assert [link["ref"] for link in train["chain"]] == ["people@2", "people@1"]


def test_data_shows_validation_quarantine_pii_privacy_and_residency(
    shared: Scenario, report: ComplianceReport
) -> None:
    (found,) = report.data
    assert (found["ref"], found["id"], found["steward"]) == ("people@2", shared.protected.id, True)
    assert found["validation"]["status"] == "validated"
    assert found["validation"]["expectations"]["people"]["columns"]["spend"]["min"] == 0
    (batch,) = found["quarantine"]
    assert (batch["id"], batch["status"]) == (shared.batch, "DROPPED")
    assert "refund feed error" in batch["resolution"]
    assert [c["column"] for c in batch["failed_checks"]] == ["spend"]
    assert "examples" not in batch["failed_checks"][0]  # failing values may be personal data
    pii = found["pii"]
    assert "email" in {c for scan in pii["scans"] if scan["ref"] == "people@1" for c in scan["columns"]}
    privacy = pii["privacy"]
    assert (privacy["applied"], privacy["version"], privacy["from"]) == (True, "people@2", "people@1")
    assert (privacy["masked"], privacy["pseudonymised"], privacy["dropped"]) == (
        ["email"],
        ["customer_id"],
        [],
    )
    assert privacy["policy"]["by_tag"]["email"]["action"] == "mask"
    assert pii["protected"] is True and pii["unprotected"] == []
    residency = found["residency"]
    store = shared.platform.settings.store_region
    assert (
        residency["ok"] is True
        and residency["allowed_regions"] == [store]
        and residency["store_region"] == store
    )


def test_policy_verdicts_and_approvals_are_those_of_the_promotion(
    shared: Scenario, report: ComplianceReport
) -> None:
    (section,) = report.policies
    assert (section["alias"], section["held_by"]) == ("production", "1.1.0")
    assert [p["name"] for p in section["policies"]] == ["gate"]
    assert section["approvals_from"] == {"request": shared.request_id, "status": "approved", "approvals": 1}
    verdict = section["verdict"]
    assert verdict["passed"] is True
    assert [(r["rule"], r["passed"]) for r in verdict["results"]] == [
        ("metrics.auc >= 0.85", True),
        ("data_validated", True),
        ("pii_protected", True),
        ("residency_ok", True),
        ("approvals >= 1", True),
    ]
    (request,) = report.approvals
    assert (request["id"], request["status"], request["requested_by"], request["approvers"]) == (
        shared.request_id,
        "approved",
        "eng",
        ["ana"],
    )
    (decision,) = request["decisions"]
    assert (decision["approver"], decision["decision"], decision["comment"]) == (
        "ana",
        "approve",
        "data checks look right",
    )


def test_the_audit_section_holds_the_entries_about_the_version_newest_first_and_the_trail_check(
    shared: Scenario, report: ComplianceReport
) -> None:
    entries = report.audit["entries"]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    actions = {e["action"] for e in entries}
    assert actions >= {
        "dataset.create",
        "dataset.set_expectations",
        "dataset.set_privacy",
        "dataset.publish",
        "dataset.quarantine",
        "quarantine.drop",
        "policy.apply",
        "model.alias_set",
        "approval.open",
        "approval.approve",
        "approval.complete",
    }
    about = {(e["resource_kind"], e["resource_id"]) for e in entries}
    assert ("dataset_version", shared.raw.id) in about and ("approval_request", shared.request_id) in about
    assert not any("unrelated" in json.dumps(e) for e in entries)
    assert report.audit["truncated"] is False
    assert report.audit["verification"]["ok"] is True and report.audit["verification"]["first_bad"] is None


def test_the_audit_section_is_bounded_to_the_newest_entries(
    shared: Scenario, report: ComplianceReport
) -> None:
    short = build_report(shared.registry, "churn", "1.1.0", audit_limit=3)
    assert short.audit["truncated"] is True
    assert [e["seq"] for e in short.audit["entries"]] == [e["seq"] for e in report.audit["entries"][:3]]
    with pytest.raises(InvalidInput):
        build_report(shared.registry, "churn", "1.1.0", audit_limit=0)


def test_a_tampered_trail_is_reported_with_its_first_bad_entry(scenario: Scenario) -> None:
    with scenario.platform.metadata.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(details='{"edited": true}'))
    check = build_report(scenario.registry, "churn", "1.1.0").audit["verification"]
    assert check["ok"] is False and check["first_bad"]["seq"] == 3
    assert check["first_bad"]["reason"] == "hash_mismatch"


def test_a_version_on_unprotected_released_and_foreign_data_says_so(
    scenario: Scenario, tmp_path: Path
) -> None:
    with acting_as(local_identity("eng"), "default"):
        data = scenario.data
        held = data.ingest(
            pa.table({"customer_id": ["C-9"], "email": ["dee@example.org"], "spend": [-1.0]}), "people"
        ).quarantined[0]
        released = data.release(held.id, "known refund")
        local = tmp_path / "w"
        local.write_bytes(b"w")
        upload = scenario.registry.upload_file("churn", local, "model.bin")
        spec = VersionSpec(
            flavor="sklearn",
            files=[upload],
            metrics={"auc": 0.9},
            datasets={"train": released.id, "extra": "s3://elsewhere/file.csv"},
        )
        version = scenario.registry.create_version("churn", spec).version
    found = build_report(scenario.registry, "churn", version)
    extra, train = found.data
    assert (extra["role"], extra["steward"]) == ("extra", False) and "not a Steward dataset" in extra["note"]
    assert train["validation"]["status"] == "released_from_quarantine"
    (why,) = train["validation"]["released"]
    assert (why["batch"], why["reason"]) == (held.id, "known refund")
    assert train["pii"]["protected"] is False and "email" in train["pii"]["unprotected"]
    assert train["pii"]["privacy"]["applied"] is False
    verdict = found.policies[0]["verdict"]
    failed = {r["rule"] for r in verdict["results"] if not r["passed"]}
    assert {"data_validated", "pii_protected", "approvals >= 1"} <= failed
    assert found.approvals == [] and found.policies[0]["approvals_from"] is None


def test_json_is_plain_with_stable_keys_and_iso_times(report: ComplianceReport) -> None:
    found = json.loads(report.render("json"))
    assert found == json.loads(json.dumps(report.to_json()))
    assert list(found) == [
        "report",
        "model",
        "version",
        "project",
        "generated_at",
        "generated_by",
        "summary",
        "lineage",
        "data",
        "policies",
        "approvals",
        "audit",
    ]
    assert [key for key, _ in SECTIONS] == [k for k in found if k in dict(SECTIONS)]
    datetime.fromisoformat(found["generated_at"])
    assert all(datetime.fromisoformat(e["at"]).tzinfo is not None for e in found["audit"]["entries"])


def test_html_is_self_contained_and_escapes_hostile_text(report: ComplianceReport) -> None:
    page = report.render_html()
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page, re.IGNORECASE)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    for _, title in SECTIONS:
        assert title in page
    for fact in ("0123abcd", "people@2", "data checks look right", "Pseudonymised", "customer_id", "DROPPED"):
        assert fact in page


def test_pdf_has_every_section_as_text(report: ComplianceReport) -> None:
    raw = report.render_pdf(compress=False)
    assert raw.startswith(b"%PDF-")
    for number, (_, title) in enumerate(SECTIONS, 1):
        assert f"{number}. {title}".encode() in raw, title
    for fact in (b"0123abcd", b"people@2", b"approval.complete", b"PASS"):
        assert fact in raw
    assert report.render("pdf").startswith(b"%PDF-")


def test_pdf_without_fpdf2_names_the_extra(report: ComplianceReport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fpdf", None)
    with pytest.raises(InvalidInput, match=r"pip install 'steward-ml\[pdf\]'"):
        report.render_pdf()


def test_unknown_models_versions_and_formats_are_refused(shared: Scenario, report: ComplianceReport) -> None:
    with pytest.raises(NotFound):
        build_report(shared.registry, "nope", "1.0.0")
    with pytest.raises(NotFound):
        build_report(shared.registry, "churn", "9.9.9")
    with pytest.raises(InvalidInput, match="use json, html, pdf"):
        report.render("docx")
    assert compliance.check_format("pdf") == "pdf"


def test_a_report_needs_audit_read(shared: Scenario) -> None:
    viewer = Identity("vic", "user", frozenset(), {"default": frozenset({"viewer"})})
    with acting_as(viewer, "default"), pytest.raises(Forbidden, match="audit:read"):
        build_report(shared.registry, "churn", "1.1.0")
