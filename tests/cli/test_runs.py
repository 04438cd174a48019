"""``steward runs list|show|compare|delete|restore``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import steward
from steward.cli.app import app

runner = CliRunner()


@pytest.fixture
def two_runs(steward_home: Path) -> tuple[str, str]:
    """Two finished runs in experiment ``exp``: ``lr`` (auc 0.91, with an artifact) and ``rf`` (auc 0.85)."""
    with steward.start_run(experiment="exp", run_name="lr", tags={"team": "risk"}) as first:
        steward.log_params({"model": "lr", "C": 1.0})
        for step, loss in enumerate([0.6, 0.4, 0.3]):
            steward.log_metric("loss", loss, step=step)
        steward.log_metric("auc", 0.91)
        steward.log_text("x" * 2048, "notes/readme.txt")
    with steward.start_run(experiment="exp", run_name="rf") as second:
        steward.log_params({"model": "rf", "C": 1.0})
        steward.log_metric("auc", 0.85)
    return first.id, second.id


def _json(args: list[str]) -> object:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_json_applies_the_filter_and_order(two_runs: tuple[str, str]) -> None:
    lr, rf = two_runs

    matched = _json(["runs", "list", "exp", "--filter", "params.model = 'lr'", "--json"])
    ordered = _json(["runs", "list", "exp", "--order-by", "metrics.auc ASC", "--json"])
    capped = _json(["runs", "list", "exp", "--order-by", "metrics.auc DESC", "--max-results", "1", "--json"])

    assert isinstance(matched, list)
    assert [r["id"] for r in matched] == [lr]
    assert matched[0]["params"] == {"model": "lr", "C": "1.0"}
    assert matched[0]["metrics"] == {"loss": 0.3, "auc": 0.91}
    assert matched[0]["status"] == "FINISHED"
    assert isinstance(ordered, list)
    assert [r["id"] for r in ordered] == [rf, lr]
    assert isinstance(capped, list)
    assert [r["id"] for r in capped] == [lr]


def test_list_table_shows_runs_and_metric_columns(two_runs: tuple[str, str]) -> None:
    result = runner.invoke(app, ["runs", "list", "exp", "--metric", "auc"])

    assert result.exit_code == 0
    assert "FINISHED" in result.stdout
    assert "0.91" in result.stdout
    assert "0.85" in result.stdout
    assert " lr " in result.stdout
    assert " rf " in result.stdout


def test_list_of_an_unknown_experiment_fails(steward_home: Path) -> None:
    result = runner.invoke(app, ["runs", "list", "nothing-here"])

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: experiment 'nothing-here' not found"


def test_show_prints_everything_recorded(two_runs: tuple[str, str]) -> None:
    lr, _ = two_runs

    result = runner.invoke(app, ["runs", "show", lr])

    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("FINISHED", "exp", "Duration", "Python", "Entry point", "Git commit", "User", "Host"):
        assert expected in out
    for expected in ("model", "lr", "team", "risk", "auc", "0.91", "loss", "0.3"):
        assert expected in out
    assert "notes/readme.txt" in out
    assert "2.0 KiB" in out


def test_show_json_adds_experiment_duration_and_artifacts(two_runs: tuple[str, str]) -> None:
    lr, _ = two_runs

    shown = _json(["runs", "show", lr, "--json"])

    assert isinstance(shown, dict)
    assert shown["id"] == lr
    assert shown["experiment_name"] == "exp"
    assert shown["duration_seconds"] >= 0
    assert shown["tags"]["team"] == "risk"
    sizes = {a["path"]: a["size"] for a in shown["artifacts"]}
    assert sizes["notes/readme.txt"] == 2048
    assert set(sizes) == {"notes/readme.txt", "_steward/environment.json"}
    assert {"user", "host", "entry_point", "git_commit", "git_dirty", "python_version", "error"} <= set(shown)


def test_compare_marks_the_fields_that_differ(two_runs: tuple[str, str]) -> None:
    lr, rf = two_runs

    result = runner.invoke(app, ["runs", "compare", lr, rf])

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert rows["params.model"].lstrip().startswith("*")
    assert "lr" in rows["params.model"]
    assert "rf" in rows["params.model"]
    assert not rows["params.C"].lstrip().startswith("*")
    assert rows["metrics.auc"].lstrip().startswith("*")
    assert rows["metrics.loss"].lstrip().startswith("*")  # only one run has it


def test_compare_json_lays_values_side_by_side(two_runs: tuple[str, str]) -> None:
    lr, rf = two_runs

    compared = _json(["runs", "compare", lr, rf, "--json"])

    assert isinstance(compared, dict)
    assert [r["id"] for r in compared["runs"]] == [lr, rf]
    assert compared["params"] == {"C": ["1.0", "1.0"], "model": ["lr", "rf"]}
    assert compared["metrics"] == {"auc": [0.91, 0.85], "loss": [0.3, None]}
    assert compared["differs"] == ["params.model", "metrics.auc", "metrics.loss"]


def test_compare_names_a_missing_run(two_runs: tuple[str, str]) -> None:
    result = runner.invoke(app, ["runs", "compare", two_runs[0], "ghost"])

    assert result.exit_code == 1
    assert "'ghost'" in result.stderr


def test_delete_hides_a_run_and_restore_brings_it_back(two_runs: tuple[str, str]) -> None:
    lr, rf = two_runs

    deleted = runner.invoke(app, ["runs", "delete", lr])
    visible = _json(["runs", "list", "exp", "--json"])
    everything = _json(["runs", "list", "exp", "--deleted", "--json"])
    restored = runner.invoke(app, ["runs", "restore", lr])
    after = _json(["runs", "list", "exp", "--json"])

    assert deleted.exit_code == 0
    assert f"steward runs restore {lr}" in deleted.stdout
    assert isinstance(visible, list)
    assert [r["id"] for r in visible] == [rf]
    assert isinstance(everything, list)
    assert {r["id"]: r["deleted"] for r in everything} == {lr: True, rf: False}
    assert restored.exit_code == 0
    assert isinstance(after, list)
    assert {r["id"] for r in after} == {lr, rf}


def test_deleting_twice_is_a_conflict(two_runs: tuple[str, str]) -> None:
    runner.invoke(app, ["runs", "delete", two_runs[0]])

    result = runner.invoke(app, ["runs", "delete", two_runs[0]])

    assert result.exit_code == 1
    assert "already deleted" in result.stderr


def test_the_commands_work_against_a_server(
    steward_home: Path, steward_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_URI", steward_server)
    steward.configure(uri=steward_server)
    created = runner.invoke(app, ["experiments", "create", "remote"])
    with steward.start_run(experiment="remote", run_name="over-http") as run:
        steward.log_params({"where": "server"})

    listed = _json(["runs", "list", "remote", "--json"])
    shown = _json(["runs", "show", run.id, "--json"])
    missing = runner.invoke(app, ["runs", "show", "nope"])

    assert created.exit_code == 0, created.output
    assert isinstance(listed, list)
    assert [r["id"] for r in listed] == [run.id]
    assert isinstance(shown, dict)
    assert shown["params"] == {"where": "server"}
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: ")
    assert "nope" in missing.stderr
    local = steward.connect(uri="", home=steward_home)  # the embedded home saw none of it
    try:
        assert "remote" not in [e.name for e in local.tracking.list_experiments()]
    finally:
        local.close()
