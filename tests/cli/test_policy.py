"""``steward policy …``, ``steward approvals …`` and ``steward models promote``, embedded and remote."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import steward
from steward.api.app import create_app
from steward.cli import approvals, policy
from steward.cli.app import StewardGroup
from steward.config import load_settings
from tests.api.test_policy_routes import with_governance_routes
from tests.cli.registry_helpers import register
from tests.plugins.server import running_server

GATE = """\
name: gate
rules:
  - metrics.auc >= 0.85
  - metrics.auc >= current.metrics.auc - 0.01
  - approvals >= 2
"""


def build_app() -> typer.Typer:
    """The ``steward`` command with these groups registered as ``cli/app.py`` registers them."""
    root = typer.Typer(cls=StewardGroup, no_args_is_help=True)
    root.add_typer(policy.app, name="policy")
    root.add_typer(approvals.app, name="approvals")
    models = typer.Typer(no_args_is_help=True)
    models.command("promote")(policy.promote)
    root.add_typer(models, name="models")
    return root


APP = build_app()
runner = CliRunner()


def invoke(*args: str, code: int = 0) -> Any:
    result = runner.invoke(APP, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(invoke(*args, "--json").stdout)


def fails(*args: str) -> str:
    """Run a command that must fail with a Steward error; return its stderr."""
    result = invoke(*args, code=1)
    assert "error: " in result.stderr
    return str(result.stderr)


@pytest.fixture
def gate(steward_home: Path, tmp_path: Path) -> Path:
    """``gate.yaml`` written, nothing applied yet."""
    path = tmp_path / "gate.yaml"
    path.write_text(GATE)
    return path


def aliases() -> dict[str, str]:
    conn = steward.connect()
    try:
        return dict(conn.registry.get_model("churn").aliases)
    finally:
        conn.close()


def test_policies_are_applied_listed_shown_and_retired(gate: Path) -> None:
    assert (
        "Created policy gate version 1: 3 rule(s) gating production of *."
        in invoke("policy", "apply", str(gate)).stdout
    )
    assert invoke("policy", "apply", str(gate)).stdout.startswith("Unchanged: policy gate version 1")
    gate.write_text(GATE.replace("0.85", "0.9"))
    assert as_json("policy", "apply", str(gate))["status"] == "updated"
    listed = as_json("policy", "list")
    assert [(p["name"], p["version"], p["required_approvals"]) for p in listed] == [("gate", 2, 2)]
    assert "gate" in invoke("policy", "list").stdout
    shown = invoke("policy", "show", "gate", "--version", "1").stdout
    assert "gate version 1 (superseded)" in shown and "metrics.auc >= 0.85" in shown
    assert [v["version"] for v in as_json("policy", "history", "gate")] == [1, 2]
    assert "Retired policy gate" in invoke("policy", "retire", "gate", "--reason", "replaced").stdout
    assert "No policies in force" in invoke("policy", "list").stdout
    assert "retired already" in fails("policy", "retire", "gate")


def test_a_bad_document_is_refused_naming_its_line(gate: Path) -> None:
    gate.write_text("name: gate\nrules:\n  - metrics.auc >= 0.85\n  - metrics.acu >\n")
    assert "policy line 4: rule 2" in fails("policy", "apply", str(gate))
    assert as_json("policy", "list") == []


def test_check_prints_one_line_per_rule_and_exits_1_when_it_fails(gate: Path, tmp_path: Path) -> None:
    invoke("policy", "apply", str(gate))
    register(tmp_path, metrics={"auc": 0.9})
    result = invoke("policy", "check", "churn", "1.0.0", "--alias", "production", code=1)
    lines = result.stdout.splitlines()
    assert lines[0] == "churn 1.0.0 -> production: PENDING APPROVAL"
    assert lines[1] == "policy gate (version 1)"
    assert (
        lines[2].split()[:5] == ["PASS", "metrics.auc", ">=", "0.85", "actual"]
        and "required >= 0.85" in lines[2]
    )
    assert "no current version" in lines[3]
    assert lines[4].startswith("  FAIL  approvals >= 2") and "actual 0" in lines[4]
    verdict = json.loads(invoke("policy", "check", "churn", "1.0.0", "--format", "json", code=1).stdout)
    assert [r["passed"] for r in verdict["results"]] == [True, True, False]
    passing = json.loads(
        invoke("policy", "check", "churn", "1.0.0", "--alias", "staging", "-f", "json").stdout
    )
    assert passing["passed"] is True and passing["results"] == []


def test_promote_opens_a_request_that_two_other_people_approve(
    gate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("policy", "apply", str(gate))
    register(tmp_path, metrics={"auc": 0.9})
    out = invoke("models", "promote", "churn", "1.0.0", "--alias", "production", "-r", "first release").stdout
    assert "production is protected: approval request" in out and "0 of 2" in out
    [request] = as_json("approvals", "list")
    assert (request["model"], request["version"], request["status"]) == ("churn", "1.0.0", "pending")
    assert "churn 1.0.0 -> production" in invoke("approvals", "show", request["id"]).stdout
    assert "separation of duties" in fails("approvals", "approve", request["id"])  # the author
    monkeypatch.setattr(getpass, "getuser", lambda: "ana")
    assert "1 of 2 approvals" in invoke("approvals", "approve", request["id"], "-m", "checked").stdout
    assert aliases() == {}
    monkeypatch.setattr(getpass, "getuser", lambda: "bo")
    assert "now points at churn 1.0.0" in invoke("approvals", "approve", request["id"]).stdout
    assert aliases() == {"production": "1.0.0"}
    assert as_json("approvals", "list") == []
    assert [r["status"] for r in as_json("approvals", "list", "--status", "all")] == ["approved"]


def test_a_refused_promotion_prints_the_verdict_and_exits_1(gate: Path, tmp_path: Path) -> None:
    invoke("policy", "apply", str(gate))
    register(tmp_path, metrics={"auc": 0.7})
    stderr = fails("models", "promote", "churn", "1.0.0")
    assert "FAIL  metrics.auc >= 0.85" in stderr and "may not take 'production'" in stderr
    assert "production now" not in stderr
    # An unprotected alias just moves.
    assert (
        "staging now points at models:/churn/1.0.0."
        in invoke("models", "promote", "churn", "1.0.0", "-a", "staging").stdout
    )


def test_a_rejection_needs_a_comment(gate: Path, tmp_path: Path) -> None:
    invoke("policy", "apply", str(gate))
    register(tmp_path, metrics={"auc": 0.9})
    request = as_json("models", "promote", "churn", "1.0.0")["request"]
    assert invoke("approvals", "reject", request["id"], code=2).exit_code == 2
    assert "Rejected the promotion" in invoke("approvals", "reject", request["id"], "-m", "too early").stdout
    assert "not pending" in fails("approvals", "approve", request["id"])


@pytest.fixture
def remote(steward_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``STEWARD_URI`` set to a server (auth off) that has the governance routes."""
    app = with_governance_routes(create_app(load_settings(home=tmp_path / "server-home")))
    with running_server(app) as url:
        monkeypatch.setenv("STEWARD_URI", url)
        steward.configure(uri=url)
        yield url


def test_the_commands_speak_to_a_server(remote: str, tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(GATE)
    assert "Created policy gate version 1" in invoke("policy", "apply", str(path)).stdout
    register(tmp_path, metrics={"auc": 0.9})
    assert "FAIL  approvals >= 2" in invoke("policy", "check", "churn", "1.0.0", code=1).stdout
    request = as_json("models", "promote", "churn", "1.0.0")["request"]
    assert [r["id"] for r in as_json("approvals", "list")] == [request["id"]]
    assert "separation of duties" in fails("approvals", "approve", request["id"])
    assert "Rejected" in invoke("approvals", "reject", request["id"], "-m", "no").stdout
    assert [v["version"] for v in as_json("policy", "history", "gate")] == [1]
