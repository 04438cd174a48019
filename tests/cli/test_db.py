"""``steward db upgrade|current``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steward.cli.app import app
from steward.store.metadata import head_revision

runner = CliRunner()


@pytest.fixture
def empty_db(steward_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database file nothing has migrated yet (the home's own one is migrated by the SDK)."""
    path = steward_home.parent / "fresh.db"
    monkeypatch.setenv("STEWARD_DB", f"sqlite:///{path}")
    return path


def test_current_reports_an_empty_database_as_behind(empty_db: Path) -> None:
    result = runner.invoke(app, ["db", "current", "--json"])

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "database": f"sqlite:///{empty_db}",
        "current": None,
        "head": head_revision(),
        "up_to_date": False,
    }
    assert "steward db upgrade" in runner.invoke(app, ["db", "current"]).stdout


def test_upgrade_migrates_to_head_and_says_so(empty_db: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])

    assert result.exit_code == 0
    assert head_revision() in result.stdout
    current = json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)
    assert current["current"] == head_revision()
    assert current["up_to_date"] is True
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0
    assert "already at revision" in again.stdout


def test_current_prints_current_and_head(steward_home: Path) -> None:
    result = runner.invoke(app, ["db", "current"])

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert f"current:  {head_revision()}" in lines
    assert f"head:     {head_revision()}" in lines


def test_db_commands_refuse_a_server_uri(steward_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_URI", "http://127.0.0.1:9")

    result = runner.invoke(app, ["db", "upgrade"])

    assert result.exit_code == 1
    assert result.stderr.startswith("error: steward db works on the database directly")
