"""``steward models verify`` and ``steward models sign``: exit codes, and output naming the failing check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from steward.cli import model_signing, models
from steward.cli.app import app
from steward.config import load_settings
from steward.store.platform import Platform
from steward.store.tables import model_versions
from tests.cli.registry_helpers import register

runner = CliRunner()


@pytest.fixture(autouse=True)
def signing_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands on ``steward models``: a no-op once ``cli/models.py`` registers them itself."""
    if {"verify", "sign"} <= {c.name for c in models.app.registered_commands}:
        return
    monkeypatch.setattr(models.app, "registered_commands", list(models.app.registered_commands))
    models.app.command("verify")(model_signing.verify_version)
    models.app.command("sign")(model_signing.sign_version)


@pytest.fixture
def platform(steward_home: Path) -> Iterator[Platform]:
    """The embedded platform the commands use, to tamper with."""
    found = Platform.from_settings(load_settings())
    yield found
    found.close()


def unsign(platform: Platform) -> None:
    """Make every version look registered before signing."""
    with platform.metadata.transaction() as conn:
        conn.execute(update(model_versions).values(signature=None, signing_key_id=None))


def tamper_file(home: Path) -> None:
    """Alter the bytes of the one bundle file ``register`` stores."""
    blob = next(
        p
        for p in (home / "artifacts" / "blobs").rglob("*")
        if p.is_file() and p.read_bytes() == b"weights of churn"
    )
    blob.chmod(0o644)
    blob.write_bytes(b"weights of nobody")


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_verify_exits_0_and_lists_every_check(steward_home: Path, tmp_path: Path) -> None:
    version = register(tmp_path)

    result = run("models", "verify", "churn", version)

    assert result.exit_code == 0, result.output
    for name in ("key", "signature", "manifest", "file:model.bin"):
        assert name in result.stdout
    assert "OK" in result.stdout and "FAILED" not in result.stdout


def test_verify_exits_1_and_names_an_altered_file(steward_home: Path, tmp_path: Path) -> None:
    version = register(tmp_path)
    tamper_file(steward_home)

    result = run("models", "verify", "churn", version)
    as_json = json.loads(run("models", "verify", "churn", version, "--json").stdout)

    assert result.exit_code == 1
    assert "FAILED" in result.stdout and "file:model.bin" in result.stdout
    assert as_json["ok"] is False
    assert [c["name"] for c in as_json["checks"] if not c["ok"]] == ["file:model.bin"]


def test_verify_of_an_unknown_version_is_a_one_line_error(steward_home: Path, tmp_path: Path) -> None:
    register(tmp_path)

    result = run("models", "verify", "churn", "9.9.9")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "9.9.9" in result.stderr


def test_sign_signs_a_version_registered_before_signing(
    steward_home: Path, tmp_path: Path, platform: Platform
) -> None:
    version = register(tmp_path)
    unsign(platform)
    before = run("models", "verify", "churn", version)
    assert before.exit_code == 1 and "registered before signing" in before.stdout

    signed = run("models", "sign", "churn", version)

    assert signed.exit_code == 0, signed.output
    assert "SIGNED" in signed.stdout
    assert run("models", "verify", "churn", version).exit_code == 0
    again = run("models", "sign", "churn", version)
    assert again.exit_code == 0 and "SIGNED" not in again.stdout and "OK" in again.stdout


def test_sign_refuses_a_version_whose_file_was_altered(
    steward_home: Path, tmp_path: Path, platform: Platform
) -> None:
    version = register(tmp_path)
    unsign(platform)
    tamper_file(steward_home)

    result = run("models", "sign", "churn", version)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "file:model.bin" in result.stderr
    assert "nothing was signed" in result.stderr


def test_sign_refuses_to_run_against_a_server(
    steward_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_URI", "http://127.0.0.1:1")

    result = run("models", "sign", "churn", "1.0.0")

    assert result.exit_code == 1
    assert "STEWARD_URI" in result.stderr and "server" in result.stderr
