"""``steward deploy``: create, update, list, rollout, status, promote, rollback, results and watch, embedded
and against a server; refusals print the verdict and exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from steward.cli import deploy as deploy_cli
from steward.cli.app import StewardGroup
from steward.config import load_settings
from steward.governance.policy_store import PolicyStore
from steward.store.platform import Platform
from tests.deploy.conftest import DeployEnv, open_deploy_env

runner = CliRunner()


def _cli() -> typer.Typer:
    """The ``deploy`` group as ``steward`` mounts it, reporting Steward errors as ``steward`` does."""
    group = typer.Typer(cls=StewardGroup)
    group.add_typer(deploy_cli.app, name="deploy")
    return group


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(_cli(), ["deploy", *args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def home(steward_home: Path) -> Iterator[DeployEnv]:
    """The home the CLI uses (``STEWARD_HOME``), with churn 1.0.0 to 1.2.0 registered."""
    env = open_deploy_env(steward_home.parent, home=steward_home)
    yield env
    env.platform.close()


def test_an_endpoint_is_created_rolled_out_promoted_and_rolled_back(home: DeployEnv) -> None:
    made = run("create", "churn", "--model", "churn", "--version", "1.0.0", "--sticky-key", "user")
    assert "Created endpoint churn: 1.0.0 stable 100% (revision 1)." in made.stdout
    started = run(
        "rollout", "churn", "1.1.0", "--steps", "20,100", "--min-duration", "0", "-o", "min_labels=5"
    )
    assert "canary rollout" in started.stdout and "1.1.0 takes 20%" in started.stdout
    listed = run("list").stdout
    assert "churn" in listed and "canary 20%" in listed
    assert [a["weight"] for a in json.loads(run("list", "--json").stdout)[0]["arms"]] == [0.8, 0.2]
    status = run("status", "churn").stdout
    assert "stable 80%" in status and "running" in status and "Events" in status
    assert json.loads(run("status", "churn", "--json").stdout)["rollout"]["options"]["min_labels"] == 5
    watched = json.loads(run("watch", "churn", "--once", "--json").stdout)
    assert watched["action"] == "waiting"
    assert "succeeded" in run("promote", "churn", "--reason", "fine").stdout
    assert "rolled_back" in run("rollback", "churn").stdout
    results = json.loads(run("results", "churn", "--json").stdout)
    assert [a["version"] for a in results["arms"]] == ["1.0.0", "1.1.0"]
    table = run("results", "churn").stdout
    assert "canary rollout" in table and "Arm" in table
    assert len(json.loads(run("rollouts", "churn", "--json").stdout)) == 1


def test_a_gate_refusal_prints_the_verdict_rule_by_rule_and_exits_1(home: DeployEnv) -> None:
    PolicyStore(home.platform).apply("name: gate\naliases: [production]\nrules:\n  - metrics.auc >= 0.85\n")
    result = run("create", "churn", "--model", "churn", "--version", "1.0.0", code=1)
    assert "FAIL  metrics.auc >= 0.85" in result.stderr
    assert "error: churn 1.0.0 may not be deployed to 'churn'" in result.stderr
    assert "churn" not in run("list", "--json").stdout


def test_bad_input_is_a_one_line_error(home: DeployEnv) -> None:
    run("create", "churn", "--model", "churn", "--version", "1.0.0")
    assert "--option takes KEY=VALUE" in run("rollout", "churn", "1.1.0", "-o", "steps", code=1).stderr
    weights = run("rollout", "churn", "1.1.0", "--strategy", "ab", "--weights", "70,70", code=1).stderr
    assert weights.startswith("error: A/B weights must be two positive percentages summing to 100")
    assert "nothing to promote" in run("promote", "churn", code=1).stderr
    assert "not found" in run("status", "nope", code=1).stderr


def test_update_changes_what_it_is_given_and_refuses_bad_flags_in_one_line(home: DeployEnv) -> None:
    run("create", "churn", "--model", "churn", "--version", "1.0.0", "--description", "scores")
    keyed = run("update", "churn", "--sticky-key", "user", "--reason", "A/B next week").stdout
    assert "Endpoint churn (revision 2): sticky key user, feature service -." in keyed
    found = json.loads(run("update", "churn", "-d", "churn scores", "--json").stdout)
    assert (found["description"], found["sticky_key"], found["revision"]) == ("churn scores", "user", 3)
    assert json.loads(run("update", "churn", "--no-sticky-key", "--json").stdout)["sticky_key"] is None
    both = run("update", "churn", "--sticky-key", "u", "--no-sticky-key", code=1).stderr
    assert both.strip() == "error: give --sticky-key or --no-sticky-key, not both"
    assert "nothing to change" in run("update", "churn", code=1).stderr
    missing = " ".join(run("update", "churn", "--feature-service", "nope", code=1).stderr.split())
    assert missing.startswith("error: feature service 'nope' not found")
    assert "not found" in run("update", "nope", "-d", "x", code=1).stderr
    shown = json.loads(run("status", "churn", "--json").stdout)["endpoint"]
    assert (shown["description"], shown["sticky_key"], shown["revision"]) == ("churn scores", None, 4)
    actions = [e.action for e in home.trail()]
    assert actions == ["endpoint.create"] + ["endpoint.update"] * 3
    assert home.trail()[1].details["reason"] == "A/B next week"


def test_the_commands_speak_to_a_server_when_steward_uri_is_set(
    home: DeployEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steward.api.app import create_app
    from tests.deploy.test_service import with_deploy_routes
    from tests.plugins.server import running_server

    app = with_deploy_routes(create_app(load_settings(home=home.platform.settings.home)))
    with running_server(app) as url:
        monkeypatch.setenv("STEWARD_URI", url)
        run("create", "churn", "--model", "churn", "--version", "1.0.0")
        run("rollout", "churn", "1.1.0", "--strategy", "blue-green")
        assert json.loads(run("watch", "churn", "--once", "--json").stdout)["action"] == "waiting"
        assert "succeeded" in run("promote", "churn").stdout
        assert "revision 4" in run("update", "churn", "--description", "served remotely").stdout
    monkeypatch.delenv("STEWARD_URI")
    local = Platform.from_settings(load_settings())
    try:
        from steward.deploy.service import DeployService

        written = DeployService(local).get_endpoint("churn")  # the server wrote it
        assert (written.stable, written.description) == ("1.1.0", "served remotely")
    finally:
        local.close()
