"""Signed model versions: every version is signed at registration; tampering of any kind is named, and
a version that does not verify does not load."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select, update

from steward.config import load_settings
from steward.errors import Forbidden, IntegrityError
from steward.governance import signing
from steward.governance.context import Identity, acting_as
from steward.registry import loading
from steward.registry.loading import load_version
from steward.registry.models import ModelFile, VersionSpec
from steward.registry.service import RegistryService
from steward.registry.signatures import VerificationReport, VersionFacts, signing_message
from steward.store.platform import Platform
from steward.store.tables import audit_log, model_formats, model_versions


@dataclass
class Env:
    """An embedded registry and what tampering with it needs."""

    registry: RegistryService
    platform: Platform
    home: Path
    folder: Path

    def upload(self, data: bytes, path: str = "model.bin", model: str = "churn") -> ModelFile:
        local = self.folder / f"upload-{len(list(self.folder.iterdir()))}"
        local.write_bytes(data)
        return self.registry.upload_file(model, local, path)

    def register(self, model: str = "churn", data: bytes = b"weights", **fields: Any) -> str:
        spec = VersionSpec(flavor="sklearn", files=[self.upload(data, model=model)], **fields)
        return self.registry.create_version(model, spec).version

    def blob_path(self, digest: str) -> Path:
        return self.home / "artifacts" / "blobs" / digest[:2] / digest

    def row(self, model: str, version: str) -> Any:
        target = self.registry.get_version(model, version)
        with self.platform.metadata.read() as conn:
            return conn.execute(select(model_versions).where(model_versions.c.id == target.id)).one()

    def set_row(self, model: str, version: str, **values: Any) -> None:
        target = self.registry.get_version(model, version)
        with self.platform.metadata.transaction() as conn:
            conn.execute(update(model_versions).where(model_versions.c.id == target.id).values(**values))

    def replace_platform_key(self) -> None:
        path = signing.key_path(self.platform.settings)
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        tmp = path.with_name("new.key")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.replace(tmp, path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """An embedded registry on SQLite or PostgreSQL, on its own home (and so its own platform key)."""
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    home = tmp_path / "home"
    platform = Platform.from_settings(load_settings(home=home, db=db))
    folder = tmp_path / "uploads"
    folder.mkdir()
    yield Env(RegistryService(platform), platform, home, folder)
    platform.close()


def failed(report: VerificationReport) -> list[str]:
    return [c.name for c in report.failures]


def detail(report: VerificationReport, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def test_a_registered_version_is_signed_by_the_platform_key_and_verifies(env: Env) -> None:
    env.register()

    report = env.registry.verify_version("churn", "1.0.0")

    platform_key = signing.platform_signer(env.platform.settings).key_id
    assert report.ok and report.key_id == platform_key
    assert [c.name for c in report.checks] == ["key", "signature", "manifest", "file:model.bin"]
    row = env.row("churn", "1.0.0")
    assert row.signing_key_id == platform_key and len(row.signature) == 128
    public_key = signing.platform_signer(env.platform.settings).public_key
    facts = VersionFacts(row.id, "churn", "1.0.0", row.manifest_digest)
    assert signing.verify(signing_message(facts), bytes.fromhex(row.signature), public_key)
    assert VerificationReport.from_json(report.to_json()) == report


def test_a_tampered_manifest_record_is_named_and_refused_on_load(env: Env) -> None:
    env.register()
    row = env.row("churn", "1.0.0")
    evil = row.manifest.replace('"flavor": "sklearn"', '"flavor": "pyfunc"')
    assert evil != row.manifest
    env.set_row("churn", "1.0.0", manifest=evil)

    report = env.registry.verify_version("churn", "1.0.0")

    assert failed(report) == ["manifest"]
    assert "flavor" in detail(report, "manifest")
    with pytest.raises(IntegrityError, match="manifest") as info:
        load_version(env.registry, env.registry.get_version("churn", "1.0.0"), env.home / "cache")
    assert info.value.details["failed"] == ["manifest"]


def test_a_tampered_manifest_digest_breaks_the_signature(env: Env) -> None:
    env.register()
    env.register(data=b"other weights")
    other = env.row("churn", "1.1.0").manifest_digest
    env.set_row("churn", "1.0.0", manifest_digest=other)

    report = env.registry.verify_version("churn", "1.0.0")

    assert "signature" in failed(report) and "manifest" in failed(report)
    assert "describes churn 1.1.0" in detail(report, "manifest")


def test_a_tampered_signature_is_named(env: Env) -> None:
    env.register()
    signature = env.row("churn", "1.0.0").signature
    env.set_row("churn", "1.0.0", signature=("0" if signature[0] != "0" else "1") + signature[1:])

    report = env.registry.verify_version("churn", "1.0.0")

    assert failed(report) == ["signature"]
    assert "not valid" in detail(report, "signature")


def test_altered_file_bytes_are_named_and_the_version_does_not_load(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.register(data=b"original weights")
    digest = env.registry.get_version("churn", "1.0.0").files[0].digest
    blob = env.blob_path(digest)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered weights")

    report = env.registry.verify_version("churn", "1.0.0")

    assert failed(report) == ["file:model.bin"]
    assert "altered" in detail(report, "file:model.bin")

    def no_deserialising(name: str) -> Any:
        raise AssertionError("the flavor was reached before verification refused the version")

    monkeypatch.setattr(loading, "get_flavor", no_deserialising)
    with pytest.raises(IntegrityError, match=r"file:model\.bin"):
        load_version(env.registry, env.registry.get_version("churn", "1.0.0"), env.home / "cache")


def test_a_version_signed_by_another_key_is_refused(env: Env) -> None:
    env.register()
    old_key = env.row("churn", "1.0.0").signing_key_id
    env.replace_platform_key()

    report = env.registry.verify_version("churn", "1.0.0")

    assert failed(report) == ["key", "signature"]
    assert f"signed with key {old_key}, which is not the platform's key" in detail(report, "key")
    with pytest.raises(IntegrityError, match="not the platform's key"):
        load_version(env.registry, env.registry.get_version("churn", "1.0.0"), env.home / "cache")


def test_a_signature_copied_onto_another_version_is_refused(env: Env) -> None:
    env.register()
    env.register(model="fraud")
    source = env.row("churn", "1.0.0")
    env.set_row("fraud", "1.0.0", signature=source.signature, signing_key_id=source.signing_key_id)

    assert env.registry.verify_version("churn", "1.0.0").ok
    report = env.registry.verify_version("fraud", "1.0.0")

    assert failed(report) == ["signature"]
    assert "copied from another version" in detail(report, "signature")


def test_further_formats_are_signed_with_the_version(env: Env) -> None:
    env.register()
    onnx = env.upload(b"onnx bytes", "model.onnx")
    env.registry.add_format("churn", "1.0.0", "onnx", "onnx", {}, [onnx])

    report = env.registry.verify_version("churn", "1.0.0")

    assert report.ok
    assert [c.name for c in report.checks][-2:] == ["format:onnx", "format:onnx/file:model.onnx"]
    version_id = env.row("churn", "1.0.0").id
    with env.platform.metadata.transaction() as conn:
        conn.execute(
            update(model_formats)
            .where(model_formats.c.version_id == version_id)
            .values(manifest_digest=env.row("churn", "1.0.0").manifest_digest)
        )
    assert {"signature", "format:onnx"} <= set(failed(env.registry.verify_version("churn", "1.0.0")))


def test_no_format_is_added_to_a_version_whose_signature_fails(env: Env) -> None:
    env.register()
    signature = env.row("churn", "1.0.0").signature
    env.set_row("churn", "1.0.0", signature=signature[::-1])
    onnx = env.upload(b"onnx bytes", "model.onnx")

    with pytest.raises(IntegrityError, match="no format is added"):
        env.registry.add_format("churn", "1.0.0", "onnx", "onnx", {}, [onnx])

    assert env.registry.get_version("churn", "1.0.0").formats == {}
    assert env.row("churn", "1.0.0").signature == signature[::-1]  # not signed again on the way


def test_a_version_registered_before_signing_does_not_load_until_an_admin_signs_it(env: Env) -> None:
    env.register()
    env.set_row("churn", "1.0.0", signature=None, signing_key_id=None)

    report = env.registry.verify_version("churn", "1.0.0")
    assert failed(report) == ["key", "signature"]
    assert "`steward models sign churn 1.0.0`" in detail(report, "key")
    with pytest.raises(IntegrityError, match="registered before signing"):
        load_version(env.registry, env.registry.get_version("churn", "1.0.0"), env.home / "cache")
    onnx = env.upload(b"onnx bytes", "model.onnx")
    env.registry.add_format("churn", "1.0.0", "onnx", "onnx", {}, [onnx])
    assert env.row("churn", "1.0.0").signature is None  # adding a format signs nothing unchecked

    signed = env.registry.sign_version("churn", "1.0.0")

    assert signed.ok and signed.signed_now
    assert env.registry.verify_version("churn", "1.0.0").ok
    with env.platform.metadata.read() as conn:
        actions = [r.action for r in conn.execute(select(audit_log.c.action))]
    assert actions.count("model.sign") == 1
    again = env.registry.sign_version("churn", "1.0.0")
    assert again.ok and not again.signed_now


def test_signing_refuses_a_version_whose_digests_fail(env: Env) -> None:
    env.register(data=b"original weights")
    env.set_row("churn", "1.0.0", signature=None, signing_key_id=None)
    blob = env.blob_path(env.registry.get_version("churn", "1.0.0").files[0].digest)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered weights")

    with pytest.raises(IntegrityError, match=r"file:model\.bin.*nothing was signed"):
        env.registry.sign_version("churn", "1.0.0")

    assert env.row("churn", "1.0.0").signature is None


def test_signing_refuses_to_launder_a_broken_platform_signature(env: Env) -> None:
    env.register()
    signature = env.row("churn", "1.0.0").signature
    env.set_row("churn", "1.0.0", signature=signature[::-1])

    with pytest.raises(IntegrityError, match="not signed again"):
        env.registry.sign_version("churn", "1.0.0")

    assert env.row("churn", "1.0.0").signature == signature[::-1]


def test_an_admin_re_signs_versions_after_the_platform_key_changes(env: Env) -> None:
    env.register()
    env.replace_platform_key()

    signed = env.registry.sign_version("churn", "1.0.0")

    assert signed.ok and signed.signed_now
    assert signed.key_id == signing.platform_signer(env.platform.settings).key_id


def test_signing_needs_keys_admin(env: Env) -> None:
    env.register()
    env.set_row("churn", "1.0.0", signature=None, signing_key_id=None)
    engineer = Identity("eve", "user", project_roles={"default": frozenset({"ml-engineer"})})

    with acting_as(engineer, "default"), pytest.raises(Forbidden, match="keys:admin"):
        env.registry.sign_version("churn", "1.0.0")

    assert env.row("churn", "1.0.0").signature is None
