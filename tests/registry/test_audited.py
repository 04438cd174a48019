"""Changes to a model version (registering it, archiving, restoring, its card) are in the audit trail."""

from __future__ import annotations

from pathlib import Path

from steward.config import load_settings
from steward.governance.audit import AuditService
from steward.registry.models import VersionSpec
from steward.registry.service import RegistryService
from steward.store.platform import Platform


def test_registering_archiving_restoring_and_the_card_are_audited(tmp_path: Path) -> None:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    try:
        registry = RegistryService(platform)
        weights = tmp_path / "w.bin"
        weights.write_bytes(b"weights")
        uploaded = registry.upload_file("churn", weights, "model.bin")
        version = registry.create_version("churn", VersionSpec(flavor="sklearn", files=[uploaded]))
        registry.save_card("churn", version.version, {"intended_use": "scoring churn risk"})
        registry.archive_version("churn", version.version, reason="superseded")
        registry.restore_version("churn", version.version)
        entries = list(reversed(AuditService(platform).log(resource_kind="model_version")))
        assert [(e.action, e.resource_id) for e in entries] == [
            ("model.register", "churn/1.0.0"),
            ("model.card", "churn/1.0.0"),
            ("model.archive", "churn/1.0.0"),
            ("model.restore", "churn/1.0.0"),
        ]
        assert entries[0].after_digest == version.manifest_digest
        assert entries[1].after_digest is not None and entries[2].details["reason"] == "superseded"
        assert AuditService(platform).verify().ok
    finally:
        platform.close()
