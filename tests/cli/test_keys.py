"""``steward keys status|rotate``."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from steward.cli import keys
from steward.cli.app import StewardGroup
from steward.config import load_settings
from steward.governance.audit import AuditService
from steward.store.blobs import BlobStore
from steward.store.keys import key_fingerprint
from steward.store.platform import Platform

runner = CliRunner()

# The command group as the root app mounts it (``app.add_typer(keys.app, name="keys")``).
root = typer.Typer(cls=StewardGroup)
root.add_typer(keys.app, name="keys")


@pytest.fixture
def home(steward_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STEWARD_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("STEWARD_ENCRYPTION_KEY_FILE", raising=False)
    return steward_home


def _store() -> BlobStore:
    return BlobStore.from_settings(load_settings())


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(root, ["keys", *args])
    return result.exit_code, result.stdout, result.stderr


def test_rotate_rewraps_every_data_key_and_is_idempotent(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = os.urandom(32), os.urandom(32)
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", old.hex())
    digests = [_store().put_bytes(f"model {i}".encode()).digest for i in range(5)]

    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", f"{new.hex()},{old.hex()}")
    code, out, _ = _invoke("rotate", "--json")
    assert code == 0
    assert json.loads(out) | {"store": None} == {
        "store": None,
        "key_id": key_fingerprint(new),
        "rewrapped": 5,
        "current": 0,
        "failed": 0,
        "failures": [],
    }
    code, out, _ = _invoke("rotate")
    assert code == 0
    assert f"Rewrapped 0 data key(s) under {key_fingerprint(new)}; 5 already were." in out

    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", base64.urlsafe_b64encode(new).decode())
    assert [_store().get_bytes(d) for d in digests] == [f"model {i}".encode() for i in range(5)]

    platform = Platform.from_settings(load_settings())
    try:
        rotations = AuditService(platform).log(action="keys.rotate")
    finally:
        platform.close()
    assert [(e.outcome, e.details["rewrapped"]) for e in rotations] == [("ok", 0), ("ok", 5)]
    assert all(e.details["key_id"] == key_fingerprint(new) for e in rotations)
    assert not any(secret in str(e.to_json()) for e in rotations for secret in (new.hex(), old.hex()))


def test_status_counts_per_key_and_the_clear_blobs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = os.urandom(32), os.urandom(32)
    _store().put_bytes(b"from before encryption")
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", old.hex())
    _store().put_bytes(b"a")
    _store().put_bytes(b"b")
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", f"{new.hex()},{old.hex()}")
    _store().put_bytes(b"c")

    code, out, _ = _invoke("status", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["key_id"] == key_fingerprint(new)
    assert status["data_keys"] == {key_fingerprint(old): 2, key_fingerprint(new): 1}
    assert (status["encrypted"], status["unencrypted"], status["orphaned"]) == (3, 1, 0)

    code, out, _ = _invoke("status")
    assert code == 0
    assert "unencrypted: 1 blob(s)" in out
    assert "steward keys rotate" in out
    for form in (old.hex(), new.hex(), old.hex()[:16], new.hex()[:16]):
        assert form not in out


def test_status_without_a_key_says_blobs_are_stored_in_the_clear(home: Path) -> None:
    _store().put_bytes(b"clear")
    code, out, _ = _invoke("status")
    assert code == 0
    assert "new blobs are stored in the clear" in out
    assert "unencrypted: 1 blob(s)" in out


def test_rotate_without_a_key_is_an_error(home: Path) -> None:
    code, _, err = _invoke("rotate")
    assert code == 1
    assert "STEWARD_ENCRYPTION_KEY" in err


def test_rotate_reports_data_keys_under_a_key_no_longer_configured(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost, new = os.urandom(32), os.urandom(32)
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", lost.hex())
    digest = _store().put_bytes(b"orphaned").digest
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", new.hex())
    _store().put_bytes(b"fine")

    code, out, err = _invoke("rotate")
    assert code == 1
    assert "1 already were" in out
    assert digest in err and "not configured" in err and "keep the old keys" in err
    assert lost.hex() not in err + out and new.hex() not in err + out


def test_a_malformed_key_names_the_setting_not_the_value(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = os.urandom(32).hex()[:-1]
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", bad)
    code, out, err = _invoke("status")
    assert code == 1
    assert "STEWARD_ENCRYPTION_KEY" in err
    assert bad not in err + out and bad[:16] not in err + out


def test_keys_commands_refuse_a_server_uri(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_URI", "http://127.0.0.1:1")
    for command in ("status", "rotate"):
        code, _, err = _invoke(command)
        assert code == 1
        assert "STEWARD_URI" in err
