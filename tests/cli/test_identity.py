"""``steward projects|users|tokens``, ``steward login|logout`` and the stored credentials."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi import FastAPI
from typer.testing import CliRunner

from steward.api.identity import identity_service_of
from steward.cli import output
from steward.cli.app import StewardGroup
from steward.cli.identity import login_command, logout_command, projects_app, tokens_app, users_app
from steward.client import credentials
from steward.config import load_settings
from steward.errors import InvalidInput
from steward.governance import tokens
from steward.governance.identity import IdentityService
from steward.store.platform import Platform
from tests.api.test_identity_routes import make_app
from tests.plugins.server import running_server

runner = CliRunner()

# The groups as ``steward`` mounts them, with the root group's error handling.
cli = typer.Typer(cls=StewardGroup)
cli.add_typer(projects_app, name="projects")
cli.add_typer(users_app, name="users")
cli.add_typer(tokens_app, name="tokens")
cli.command("login")(login_command)
cli.command("logout")(logout_command)


@cli.callback()
def _root() -> None:
    """Steward."""


def invoke(*args: str, input: str | None = None) -> Any:
    return runner.invoke(cli, list(args), input=input)


def ok(*args: str) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.console, "width", 200)


@pytest.fixture
def local(steward_home: Path) -> Iterator[IdentityService]:
    """The identity service on the CLI's own home, to look at what the commands did."""
    platform = Platform.from_settings(load_settings())
    yield IdentityService(platform)
    platform.close()


# -- users, tokens, projects ---------------------------------------------------------------------------


def test_a_token_is_printed_once_and_only_its_id_is_listed(local: IdentityService) -> None:
    ok("users", "create", "ci-bot", "--service", "--display-name", "CI")
    created = ok("tokens", "create", "ci", "--user", "ci-bot", "--scope", "models:read", "--expires", "30d")

    secret = created.stdout.strip()
    assert tokens.looks_like_token(secret)  # stdout holds the secret alone, for $(...)
    assert "only time it is shown" in created.stderr
    identity = local.authenticate(secret)
    assert (identity.name, identity.kind, identity.scopes) == (
        "ci-bot",
        "service",
        frozenset({"models:read"}),
    )

    listed = ok("tokens", "list", "--user", "ci-bot")
    (info,) = local.list_tokens("ci-bot")
    assert info.id in listed.stdout and "active" in listed.stdout and secret not in listed.stdout
    ok("tokens", "revoke", info.id)
    again = invoke("tokens", "revoke", info.id)
    assert again.exit_code == 1 and "revoked already" in again.output
    assert "revoked" in ok("tokens", "list", "--json").stdout


def test_users_are_created_listed_granted_and_disabled(local: IdentityService) -> None:
    ok("users", "create", "root", "--global-role", "admin")
    ok("users", "create", "ana", "--email", "ana@example.com")
    assert "ana now holds the global role auditor" in ok("users", "grant-global", "ana", "auditor").stdout
    ok("users", "disable", "ana")

    found = {p["name"]: p for p in json.loads(ok("users", "list", "--json").stdout)}
    assert found["ana"]["global_role"] == "auditor" and found["ana"]["disabled_at"] is not None
    assert found["root"]["global_role"] == "admin"
    assert "disabled" in ok("users", "list").stdout
    last = invoke("users", "grant-global", "root", "none")
    assert last.exit_code == 1 and "last enabled admin" in last.output
    bad = invoke("users", "create", "bad name")
    assert bad.exit_code == 1 and "invalid principal name" in bad.output


def test_projects_and_their_members(local: IdentityService) -> None:
    ok("users", "create", "ana")
    ok("projects", "create", "fraud", "-d", "fraud models")
    ok("projects", "add-member", "fraud", "ana", "--role", "data-scientist")
    ok("projects", "add-member", "fraud", "ana", "-r", "approver")

    assert "approver, data-scientist" in ok("projects", "members", "fraud").stdout
    listed = json.loads(ok("projects", "list", "--json").stdout)
    assert [p["name"] for p in listed] == ["default", "fraud"]
    assert "Removed approver" in ok("projects", "remove-member", "fraud", "ana", "--role", "approver").stdout
    assert json.loads(ok("projects", "members", "fraud", "--json").stdout)[0]["roles"] == ["data-scientist"]
    bad = invoke("projects", "add-member", "fraud", "ana", "--role", "boss")
    assert bad.exit_code == 1 and "unknown role" in bad.output


def test_identity_commands_refuse_to_run_against_a_server(
    steward_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_URI", "http://127.0.0.1:9")
    result = invoke("users", "list")
    assert result.exit_code == 1 and "STEWARD_URI points at a server" in result.output


# -- login and logout ---------------------------------------------------------------------------------


@pytest.fixture
def server_app(tmp_path: Path) -> FastAPI:
    return make_app(tmp_path / "server-home")


@pytest.fixture
def server(server_app: FastAPI) -> Iterator[str]:
    with running_server(server_app) as url:
        yield url


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_with_the_bootstrap_token_makes_the_admin_and_stores_its_token(
    steward_home: Path, server_app: FastAPI, server: str
) -> None:
    bootstrap = identity_service_of(server_app.state).start_bootstrap()
    assert bootstrap is not None

    result = ok("login", "--uri", server, "--bootstrap", bootstrap, "--admin", "root")

    assert "Created the admin root" in result.stdout and "as root (user)" in result.stdout
    assert "admin (global)" in result.stdout
    path = steward_home / "credentials.json"
    assert mode(path) == 0o600
    stored = credentials.load_token(steward_home, server)
    assert stored is not None and tokens.looks_like_token(stored)
    assert stored not in result.output and bootstrap not in result.output
    again = invoke("login", "--uri", server, "--bootstrap", bootstrap, "--admin", "root2")
    assert again.exit_code == 1 and "already used" in again.output


def test_login_checks_the_token_before_storing_it(
    steward_home: Path, server_app: FastAPI, server: str
) -> None:
    identities = identity_service_of(server_app.state)
    identities.create_user("ana", global_role="admin")
    secret = identities.issue_token("ana").secret

    wrong = invoke("login", "--uri", server, "--token", tokens.generate())
    assert wrong.exit_code == 1 and "unknown token" in wrong.output
    assert not (steward_home / "credentials.json").exists()

    result = invoke("login", "--uri", server + "/", input=secret + "\n")  # asked for, hidden
    assert result.exit_code == 0, result.output
    assert "as ana (user)" in result.stdout and secret not in result.output
    assert credentials.load_token(steward_home, server) == secret
    assert "Logged out" in ok("logout", "--uri", server).stdout
    assert credentials.load_token(steward_home, server) is None
    assert "No token was stored" in ok("logout", "--uri", server).stdout


def test_login_needs_a_server_and_consistent_flags(steward_home: Path) -> None:
    assert invoke("login", "--token", "x").exit_code == 2
    assert invoke("login", "--uri", "http://h", "--bootstrap", "x").exit_code == 2
    both = invoke("login", "--uri", "http://h", "--token", "x", "--bootstrap", "y", "--admin", "a")
    assert both.exit_code == 2
    assert invoke("login", "--uri", "ftp://h", "--token", "x").exit_code == 1


# -- the credentials file -----------------------------------------------------------------------------


def test_credentials_are_kept_per_server_in_a_private_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old_umask = os.umask(0)  # even a permissive umask leaves the file private
    try:
        path = credentials.save_token(home, "http://a:8080/", "token-a")
    finally:
        os.umask(old_umask)
    credentials.save_token(home, "http://b:8080", "token-b")
    credentials.save_token(home, "http://a:8080", "token-a2")

    assert mode(path) == 0o600
    assert credentials.load_token(home, "http://a:8080") == "token-a2"
    assert credentials.load_token(home, "http://b:8080/") == "token-b"
    assert credentials.load_token(home, "http://c:8080") is None
    assert credentials.load_token(home, None) is None
    assert credentials.forget(home, "http://a:8080") and not credentials.forget(home, "http://a:8080")
    assert credentials.load_token(home, "http://b:8080") == "token-b"
    assert [p.name for p in home.iterdir()] == ["credentials.json"]  # no temporary file left


def test_a_damaged_credentials_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="damaged"):
        credentials.load_token(tmp_path, "http://a")
    with pytest.raises(InvalidInput, match="damaged"):
        credentials.save_token(tmp_path, "http://a", "t")
    assert path.read_text() == "{not json"
    assert credentials.load_token(tmp_path / "nowhere", "http://a") is None
