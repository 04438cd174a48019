"""``steward triggers list|create|delete|firings`` and ``steward scheduler`` (one pass, and the loop until
Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from steward.cli import scheduler as scheduler_cli
from steward.cli import triggers as triggers_cli
from steward.cli.app import StewardGroup
from tests.automation.pipelines_for_tests import Env, env_for

runner = CliRunner()
HELLO = "tests.automation.pipelines_for_tests:hello"


def _cli() -> typer.Typer:
    """The two commands as ``steward`` mounts them, reporting Steward errors as ``steward`` does."""
    group = typer.Typer(cls=StewardGroup)
    group.add_typer(triggers_cli.app, name="triggers")
    group.command("scheduler")(scheduler_cli.scheduler)
    return group


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(_cli(), list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from env_for(request, tmp_path, monkeypatch)


def test_triggers_are_created_listed_and_deleted(env: Env) -> None:
    made = run("triggers", "create", "hourly", "--cron", "0 * * * *", "--pipeline", HELLO, "-p", "message=hi")
    assert "Created trigger hourly (cron 0 * * * *)" in made.stdout and HELLO in made.stdout
    run("triggers", "create", "often", "--every", "15m", "--pipeline", HELLO, "--disabled")
    env.ingest("tx", 1)
    made = json.loads(
        run("triggers", "create", "on-tx", "--on-dataset", "tx", "--pipeline", HELLO, "--json").stdout
    )
    assert (made["kind"], made["cursor"]) == ("dataset", "1")
    listed = run("triggers", "list").stdout
    assert "hourly" in listed and "often" in listed and "version > 1" in listed
    rows = {t["name"]: t for t in json.loads(run("triggers", "list", "--json").stdout)}
    assert rows["hourly"]["action"]["params"] == {"message": "hi"} and rows["often"]["enabled"] is False
    assert "Deleted trigger often" in run("triggers", "delete", "often", "-r", "spare").stdout
    assert sorted(t.name for t in env.automation.list_triggers()) == ["hourly", "on-tx"]


def test_bad_trigger_options_are_one_line_errors(env: Env) -> None:
    both = run("triggers", "create", "x", "--cron", "@daily", "--every", "60", "--pipeline", HELLO, code=1)
    assert "exactly one of --cron, --every and --on-dataset" in both.stderr
    bad = run("triggers", "create", "x", "--cron", "99 * * * *", "--pipeline", HELLO, code=1)
    assert "not a valid cron expression" in bad.stderr and "Traceback" not in bad.output
    assert "no pipeline" in run("triggers", "create", "x", "--cron", "@daily", "--pipeline",
                                "tests.automation.pipelines_for_tests:nope", code=1).stderr  # fmt: skip
    assert "not found" in run("triggers", "delete", "missing", code=1).stderr
    assert "No triggers" in run("triggers", "list").stdout


def test_one_scheduler_pass_fires_what_is_due_and_the_firings_show_it(env: Env) -> None:
    env.ingest("tx", 1)
    run("triggers", "create", "on-tx", "--on-dataset", "tx", "--pipeline", HELLO, "-p", "message=new")
    assert json.loads(run("scheduler", "--once", "--json").stdout) == []
    env.ingest("tx", 2)
    passed = run("scheduler", "--once").stdout
    (pipeline_run,) = env.runs("hello")
    assert "on-tx" in passed and "succeeded" in passed and pipeline_run.run_id in passed
    assert "fired 1 (0 failed)" in passed
    firings = run("triggers", "firings", "on-tx").stdout
    assert "succeeded" in firings and pipeline_run.run_id in firings
    (stored,) = json.loads(run("triggers", "firings", "on-tx", "--json").stdout)
    assert stored["details"]["cause"]["version"] == 2


def test_the_scheduler_runs_until_ctrl_c_and_then_stops_cleanly(env: Env) -> None:
    env.ingest("tx", 1)
    env.automation.create_trigger("on-tx", "dataset", "tx", HELLO)
    env.ingest("tx", 2)
    fired = threading.Event()

    def interrupt_once_fired() -> None:
        for _ in range(600):
            if env.automation.list_firings("on-tx"):
                fired.set()
                break
            fired.wait(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_fired)
    watcher.start()
    try:
        result = run("scheduler", "--interval", "0.05")
    finally:
        watcher.join(120)
    assert fired.is_set()
    assert "Stopping after the pass under way" in result.stdout
    assert "Scheduler stopped: 1 firing(s), 0 failed." in result.stdout
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    with env.platform.metadata.read() as conn:
        from steward.automation import repository as repo

        assert repo.lease_holder(conn, env.automation.get_trigger("on-tx").id) is None
