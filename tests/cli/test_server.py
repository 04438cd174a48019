"""``steward server`` hands its options to ``steward.api.server.serve``."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from steward.cli.app import app
from steward.config import Settings

runner = CliRunner()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the API server's ``serve`` with a recorder of its arguments."""
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("steward.api.server")

    def serve(settings: Settings, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
        calls.append(
            {"settings": settings, "host": host, "port": port, "workers": workers, "level": log_level}
        )

    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "steward.api.server", fake)
    return calls


def test_defaults_listen_on_localhost_8080(steward_home: Path, served: list[dict[str, Any]]) -> None:
    result = runner.invoke(app, ["server"])

    assert result.exit_code == 0, result.output
    (call,) = served
    assert (call["host"], call["port"], call["workers"], call["level"]) == ("127.0.0.1", 8080, 1, "info")
    assert call["settings"].home == steward_home
    assert "http://127.0.0.1:8080/docs" in result.stderr


def test_options_reach_the_server(steward_home: Path, served: list[dict[str, Any]]) -> None:
    args = ["server", "--host", "0.0.0.0", "--port", "9000", "--workers", "2", "--log-level", "DEBUG"]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    assert served[0]["host"] == "0.0.0.0"
    assert served[0]["port"] == 9000
    assert served[0]["workers"] == 2
    assert served[0]["level"] == "debug"


def test_a_bad_port_is_a_usage_error(steward_home: Path, served: list[dict[str, Any]]) -> None:
    assert runner.invoke(app, ["server", "--port", "70000"]).exit_code == 2
    assert served == []
