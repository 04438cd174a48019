"""The ``steward`` app as a whole: errors without tracebacks, exit codes, help on everything."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

import steward
from steward.cli.app import app

runner = CliRunner()


def test_a_missing_run_is_one_red_line_on_stderr_and_exit_code_1(steward_home: Path) -> None:
    result = runner.invoke(app, ["runs", "show", "nope"])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "'nope'" in result.stderr
    assert "not found" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_a_malformed_filter_is_an_error_message_not_a_traceback(steward_home: Path) -> None:
    runner.invoke(app, ["experiments", "create", "exp"])

    result = runner.invoke(app, ["runs", "list", "exp", "--filter", "metrics.auc >> 1"])

    assert result.exit_code == 1
    assert result.stderr.startswith("error: filter")
    assert "Traceback" not in result.output


def test_a_bad_setting_is_reported_as_an_error(steward_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_URI", "ftp://nowhere")

    result = runner.invoke(app, ["experiments", "list"])

    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid setting uri")


def test_usage_errors_exit_with_code_2(steward_home: Path) -> None:
    assert runner.invoke(app, ["runs", "list"]).exit_code == 2
    assert runner.invoke(app, ["runs", "compare", "only-one"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert runner.invoke(app, ["runs", "list", "exp", "--max-results", "0"]).exit_code == 2


def test_version_is_printed() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.strip() == f"steward {steward.__version__}"


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    missing: list[str] = []

    def visit(command: click.Command, path: str) -> None:
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{path} {param.opts[0]}")
            if isinstance(param, click.Argument) and not getattr(param, "help", None):
                missing.append(f"{path} {param.name}")
        for name, sub in getattr(command, "commands", {}).items():
            visit(sub, f"{path} {name}")

    visit(root, "steward")

    assert missing == []
    assert runner.invoke(app, ["runs", "--help"]).exit_code == 0
