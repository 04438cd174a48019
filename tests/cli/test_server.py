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

    def serve(
        settings: Settings,
        host: str,
        port: int,
        workers: int = 1,
        log_level: str = "info",
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        calls.append(
            {"settings": settings, "host": host, "port": port, "workers": workers, "level": log_level,
             "tls": (tls_cert, tls_key)}
        )  # fmt: skip

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


def test_auth_on_first_start_prints_one_bootstrap_token_and_later_starts_none(
    steward_home: Path, served: list[dict[str, Any]]
) -> None:
    first = runner.invoke(app, ["server", "--auth"])
    assert first.exit_code == 0, first.output
    assert served[0]["settings"].auth is True
    token = first.stdout.strip()
    assert token.startswith("stw_") and len(token) == 47
    assert "auth on" in first.stderr and "steward login" in first.stderr

    from steward.governance.identity import IdentityService
    from steward.store.platform import Platform

    platform = Platform.from_settings(served[0]["settings"])
    try:
        IdentityService(platform).redeem_bootstrap(token, "ada")
    finally:
        platform.close()
    again = runner.invoke(app, ["server", "--auth"])
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == ""
    assert "auth off" in runner.invoke(app, ["server"]).stderr


def test_tls_needs_both_the_certificate_and_its_key(
    steward_home: Path, served: list[dict[str, Any]], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("certificate")
    key.write_text("key")
    alone = runner.invoke(app, ["server", "--tls-cert", str(cert)])
    assert alone.exit_code == 1
    assert "--tls-cert and --tls-key go together" in alone.stderr
    both = runner.invoke(app, ["server", "--tls-cert", str(cert), "--tls-key", str(key)])
    assert both.exit_code == 0, both.output
    assert served[-1]["tls"] == (str(cert), str(key))
    assert "https://127.0.0.1:8080" in both.stderr
