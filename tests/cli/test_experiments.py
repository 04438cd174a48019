"""``steward experiments list|create``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from steward.cli.app import app

runner = CliRunner()


def test_created_experiments_are_listed_as_json(steward_home: Path) -> None:
    created = runner.invoke(app, ["experiments", "create", "churn", "--description", "Who leaves"])
    runner.invoke(app, ["experiments", "create", "fraud"])

    result = runner.invoke(app, ["experiments", "list", "--json"])

    assert created.exit_code == 0
    assert "churn" in created.stdout
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [e["name"] for e in listed] == ["churn", "fraud"]
    assert listed[0]["description"] == "Who leaves"
    assert set(listed[0]) >= {"id", "name", "description", "created_at", "deleted"}


def test_create_can_answer_in_json(steward_home: Path) -> None:
    result = runner.invoke(app, ["experiments", "create", "churn", "--json"])

    assert result.exit_code == 0
    assert json.loads(result.stdout)["name"] == "churn"


def test_the_table_names_each_experiment(steward_home: Path) -> None:
    runner.invoke(app, ["experiments", "create", "churn", "-d", "Who leaves"])

    result = runner.invoke(app, ["experiments", "list"])

    assert result.exit_code == 0
    assert "churn" in result.stdout
    assert "Who leaves" in result.stdout


def test_an_empty_home_says_how_to_start(steward_home: Path) -> None:
    result = runner.invoke(app, ["experiments", "list"])

    assert result.exit_code == 0
    assert "steward quickstart" in result.stdout
    assert json.loads(runner.invoke(app, ["experiments", "list", "--json"]).stdout) == []


def test_a_taken_name_is_an_error(steward_home: Path) -> None:
    runner.invoke(app, ["experiments", "create", "churn"])

    result = runner.invoke(app, ["experiments", "create", "churn"])

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: experiment 'churn' already exists"


def test_a_bad_name_is_an_error(steward_home: Path) -> None:
    result = runner.invoke(app, ["experiments", "create", "no spaces"])

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
