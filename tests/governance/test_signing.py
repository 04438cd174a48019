"""The platform's Ed25519 key: made once with mode 0600, reused, and never shown."""

from __future__ import annotations

import hashlib
import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from steward.config import load_settings
from steward.errors import InvalidInput
from steward.governance import signing


def test_the_key_file_is_made_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    path = tmp_path / "home" / "keys" / "signing.key"
    assert signing.platform_public_key(settings) is None and not path.exists()  # nothing made by looking

    first = signing.platform_signer(settings)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    content = path.read_bytes()
    assert signing.platform_signer(settings).key_id == first.key_id
    assert signing.load_or_create(path).key_id == first.key_id  # read from the file, not a cache
    assert path.read_bytes() == content
    public = signing.platform_public_key(settings)
    assert public is not None and signing.key_id(public) == first.key_id


def test_processes_racing_to_make_the_key_agree_on_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = (
        "from steward.config import load_settings; from steward.governance import signing; "
        f"print(signing.platform_signer(load_settings(home={str(home)!r})).key_id)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    ids = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(ids) == 1 and all(p.returncode == 0 for p in procs)
    assert ids == {signing.load_or_create(home / "keys" / "signing.key", create=False).key_id}


def test_a_changed_key_file_is_read_again(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    before = signing.platform_signer(settings).key_id
    signing.key_path(settings).unlink()
    assert signing.platform_signer(settings).key_id != before


def test_sign_and_verify(tmp_path: Path) -> None:
    signer = signing.generate()
    signature = signer.sign(b"the data")
    assert len(signature) == 64
    assert signing.verify(b"the data", signature, signer.public_key)
    assert signing.verify(b"the data", signature, signer.public_key_pem())  # PEM bytes
    assert signing.verify(b"the data", signature, signer.public_key_pem().decode())  # PEM text
    assert not signing.verify(b"the datA", signature, signer.public_key)
    assert not signing.verify(b"the data", signature, signing.generate().public_key)
    assert not signing.verify(b"the data", b"short", signer.public_key)


def test_the_key_id_is_the_start_of_the_public_keys_sha256() -> None:
    signer = signing.generate()
    raw = signer.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert signer.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert signing.key_id(signing.load_public_key(signer.public_key_pem())) == signer.key_id


def test_the_signer_fits_the_protocol_and_shows_no_key_material() -> None:
    signer = signing.generate()
    assert isinstance(signer, signing.Signer)
    assert repr(signer) == f"Ed25519Signer(key_id={signer.key_id!r})"
    secret = signer._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert secret.hex() not in repr(signer) and secret.hex() not in str(signer)


def test_a_configured_key_file_is_used_and_never_made(tmp_path: Path) -> None:
    path = tmp_path / "provisioned.key"
    with pytest.raises(InvalidInput, match="no signing key at") as missing:
        signing.platform_signer(load_settings(home=tmp_path / "home", signing_key_file=path))
    assert missing.value.details == {"field": "signing_key_file"}
    assert not path.exists()

    made = signing.load_or_create(path)
    assert signing.platform_signer(load_settings(signing_key_file=path)).key_id == made.key_id


def test_a_key_file_that_is_not_a_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(InvalidInput) as refused:
        signing.load_or_create(path)
    assert "c2VjcmV0" not in refused.value.message
    assert str(path) in refused.value.message

    rsa_like = tmp_path / "other.key"
    rsa_like.write_text("just text")
    rsa_like.chmod(0o600)
    with pytest.raises(InvalidInput, match="not an unencrypted PEM Ed25519 private key"):
        signing.load_or_create(rsa_like)


def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "loose.key"
    signing.load_or_create(path)
    path.chmod(0o644)
    content = path.read_text()
    with caplog.at_level(logging.WARNING, logger="steward.governance.signing"):
        signing.load_or_create(path)
    assert "readable by others" in caplog.text
    assert content.splitlines()[1] not in caplog.text


def test_a_public_key_that_is_not_one_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a PEM Ed25519 public key"):
        signing.load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InvalidInput):
        signing.verify(b"x", b"y", "garbage")
