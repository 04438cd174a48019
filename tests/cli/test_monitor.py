"""``steward monitor create|list|show|run|report|alerts|delete|enable|disable`` against the embedded
service, on an endpoint log written by the serving prediction log's own writer (the fixtures of
``tests/monitoring/test_service.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from steward.cli import monitor as monitor_cli
from steward.cli.app import StewardGroup
from steward.cli.app import app as steward_app
from steward.monitoring.runs import MonitoringReport
from tests.client.test_monitoring import served
from tests.conftest import reset_sdk
from tests.monitoring.test_channels import receiver  # noqa: F401 (a fixture)
from tests.monitoring.test_service import Env, at, open_env

runner = CliRunner()

# The group inside a root like ``steward``'s (a StewardError is one line, exit 1), so it is tested
# whether or not ``steward.cli.app`` has registered it yet.
cli = typer.Typer(cls=StewardGroup, no_args_is_help=True)
cli.add_typer(monitor_cli.app, name="monitor")


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(cli, ["monitor", *args])
    assert result.exit_code == code, result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def fails(*args: str) -> str:
    result = run(*args, code=1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return str(result.stderr)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """Model ``churn`` and its training dataset in a home the CLI opens, with drifted traffic logged."""
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "home"))
    for name in ("STEWARD_URI", "STEWARD_DB", "STEWARD_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    # a wide screen, so that rows are read whole (tables fold to the terminal's width)
    monkeypatch.setattr(monitor_cli, "console", Console(highlight=False, soft_wrap=True, width=200))
    found = open_env(tmp_path)
    found.traffic(at(5), shift=30)
    yield found
    found.platform.close()
    reset_sdk()


def test_create_list_show_and_delete(env: Env) -> None:
    out = run(
        "create", "churn-drift", "--endpoint", "churn", "--rule", "drift_share > 0.3",
        "--rule", "accuracy < 0.85 for 3 windows", "--window", "1h", "--schedule", "900",
        "--webhook", "https://hooks.example.org/services/T000/secret-token", "--action", "rollback",
        "--action", "retrain:pipelines.churn:train", "--param", "epochs=3", "--cooldown", "2h",
        "--reference", "churn-train@1",
    ).stdout  # fmt: skip
    assert "Created monitor churn-drift of endpoint churn: 2 rule(s), window 1h, schedule 900" in out
    assert "webhook:https://hooks.example.org" in out and "secret-token" not in out

    [listed] = as_json("list")
    assert listed["rules"] == ["drift_share > 0.3", "accuracy < 0.85 for 3 windows"]
    assert (listed["window_s"], listed["cooldown_s"], listed["reference"]) == (
        3600, 7200, {"dataset": "churn-train", "version": 1},
    )  # fmt: skip
    assert listed["actions"] == [
        {"kind": "rollback", "target": "", "params": {}},
        {"kind": "retrain", "target": "pipelines.churn:train", "params": {"epochs": 3}},
    ]
    table = run("list").stdout
    assert "churn-drift" in table and "drift_share > 0.3" in table

    shown = run("show", "churn-drift").stdout
    assert "churn-train@1" in shown and "retrain pipelines.churn:train" in shown
    assert "secret-token" not in shown

    assert "Disabled" in run("disable", "churn-drift").stdout
    assert as_json("show", "churn-drift")["enabled"] is False
    run("enable", "churn-drift")
    assert as_json("show", "churn-drift")["enabled"] is True

    assert "Deleted monitor churn-drift" in run("delete", "churn-drift").stdout
    assert as_json("list") == []
    assert "monitor 'churn-drift' not found" in fails("show", "churn-drift")


def test_a_bad_rule_is_one_line_naming_it(env: Env) -> None:
    message = fails(
        "create", "m", "--endpoint", "churn", "--rule", "drift_share > 0.3", "--rule", "acuracy < 0.9"
    )
    assert "rule 'acuracy < 0.9'" in message and "did you mean 'accuracy'" in message
    assert "--smtp-host" in fails(
        "create", "m", "--endpoint", "churn", "--rule", "rows < 1", "--email", "a@b.org"
    )
    assert "schedule" in fails(
        "create", "m", "--endpoint", "churn", "--rule", "rows < 1", "--schedule", "often"
    )
    assert "unknown action 'reboot'" in fails("create", "m", "--endpoint", "churn", "--rule", "rows < 1",
                                              "--action", "reboot")  # fmt: skip
    assert as_json("list") == []


def test_run_prints_the_facts_the_outcomes_and_the_alerts(env: Env) -> None:
    run("create", "drifty", "-e", "churn", "-r", "drift_share > 0.3", "-r", "drifted(age)", "-w", "1h")
    out = run("run", "drifty", "--now", at(30).isoformat()).stdout
    assert "Monitor drifty on churn: 2025-03-04 09:30:00 to 2025-03-04 10:30:00 UTC, 400 row(s)" in out
    assert "drift_share" in out and "income" in out  # the facts, whole-window and per column
    assert "opened" in out and "ok" in out
    [alert] = as_json("alerts", "--state", "firing")
    assert (alert["rule"], alert["monitor"], alert["count"]) == ("drift_share > 0.3", "drifty", 1)
    assert f"Opened alert {alert['id']}: drift_share > 0.3 (no channel)" in out

    again = as_json("run", "drifty", "--now", at(40).isoformat())
    assert [r["outcome"] for r in again["rules"]] == ["counted", "ok"]
    assert [a["id"] for a in again["updated"]] == [alert["id"]]

    env.traffic(at(100))  # undrifted: the next window resolves the alert
    out = run("run", "drifty", "--now", at(120).isoformat()).stdout
    assert f"Resolved alert {alert['id']}" in out
    assert as_json("alerts", "--state", "firing") == []
    [resolved] = as_json("alerts", "--monitor", "drifty", "--state", "resolved")
    assert (resolved["id"], resolved["count"]) == (alert["id"], 2)
    listing = run("alerts").stdout
    assert alert["id"] in listing and "resolved" in listing
    assert "No firing alerts." in run("alerts", "--state", "firing").stdout
    assert "state" in runner.invoke(cli, ["monitor", "alerts", "--state", "burning"]).output
    bad_time = runner.invoke(cli, ["monitor", "run", "drifty", "--now", "yesterday"])
    assert bad_time.exit_code == 2 and "'yesterday' is not a time" in bad_time.output


def test_report_writes_html_to_a_file_and_json_to_stdout(env: Env, tmp_path: Path) -> None:
    page = tmp_path / "churn.html"
    out = run("report", "churn", "--window", "1h", "--now", at(30).isoformat(), "-o", str(page)).stdout
    assert f"Wrote the html report of churn to {page}" in out and "drift share 0.5" in out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and 'id="distributions"' in html

    data = json.loads(
        run("report", "churn", "-w", "1h", "--now", at(30).isoformat(), "--format", "json").stdout
    )
    found = MonitoringReport.from_json(data)
    assert found.drift is not None and found.drift.drifted_columns == ["income"]
    income = found.drift.feature("income")
    assert income is not None and income.statistic is not None
    assert f'title="{json.dumps(income.statistic)}">{income.statistic:.4g}<' in html  # the same numbers

    assert "window" in fails("report", "churn", "--window", "1y")
    assert "--reference-to" in fails("report", "churn", "--reference-from", at(0).isoformat())


def test_steward_has_the_monitor_group() -> None:
    result = runner.invoke(steward_app, ["monitor", "--help"])
    if result.exit_code != 0 and "No such command" in result.output:
        pytest.skip("steward.cli.app does not register the monitor group yet")
    assert result.exit_code == 0, result.output
    assert "alerts" in result.stdout and "report" in result.stdout


def test_the_commands_work_through_a_server(
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    receiver: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    hook = receiver()
    with served(env) as remote:
        monkeypatch.setenv("STEWARD_URI", remote.url)
        run("create", "remote", "-e", "churn", "-r", "drift_share > 0.3", "-w", "1h", "--webhook", hook.url)
        shown = run("show", "remote").stdout
        assert "webhook:http://127.0.0.1" in shown and "secret-token" not in shown
        out = run("run", "remote", "--now", at(30).isoformat()).stdout
        assert "opened" in out and "400 row(s)" in out and "delivered to webhook:http://127.0.0.1" in out
        [body] = hook.bodies
        [alert] = as_json("alerts", "--state", "firing")
        assert alert["monitor"] == "remote" and body["steward"]["id"] == alert["id"]
        page = tmp_path / "remote.html"
        run("report", "churn", "-w", "1h", "--now", at(30).isoformat(), "-o", str(page))
        assert 'id="distributions"' in page.read_text()
        run("delete", "remote")
        assert as_json("list") == []
