"""Lifecycle changes of tracking (an experiment made, a run deleted or restored) are in the audit trail."""

from __future__ import annotations

from pathlib import Path

from steward.config import load_settings
from steward.governance.audit import AuditService
from steward.governance.context import acting_as, local_identity
from steward.store.platform import Platform
from steward.tracking.service import TrackingService


def test_experiments_made_and_runs_deleted_or_restored_are_audited_with_their_project(tmp_path: Path) -> None:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    try:
        tracking = TrackingService(platform)
        with acting_as(local_identity("ada"), "churn-team"):
            run = tracking.create_run("churn")
            tracking.delete_run(run.id)
            tracking.restore_run(run.id)
        entries = AuditService(platform).log()
        assert [(e.action, e.resource_id, e.actor) for e in reversed(entries)] == [
            ("experiment.create", "churn", "ada"),
            ("run.delete", run.id, "ada"),
            ("run.restore", run.id, "ada"),
        ]
        assert all(e.details["project"] == "churn-team" for e in entries)
        assert AuditService(platform).log(project="other") == []
        assert AuditService(platform).verify().ok
    finally:
        platform.close()
