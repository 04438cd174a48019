"""``steward lineage model|dataset``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from steward.cli.app import app
from tests.cli.registry_helpers import register

runner = CliRunner()


@pytest.fixture
def models(steward_home: Path, tmp_path: Path) -> None:
    """``churn`` 1.0.0 (run ``lr``; train ds-1, holdout ds-9), 1.1.0 (train ds-2); ``fraud`` 1.0.0 (ds-1)."""
    register(tmp_path, "churn", {"train": "ds-1", "holdout": "ds-9"}, run_name="lr", git_dirty=False)
    register(tmp_path, "churn", {"train": "ds-2"})
    register(tmp_path, "fraud", {"features": "ds-1"})


def invoke(*args: str) -> Any:
    """Run a command that must succeed; return its result."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    """Run a command with ``--json`` and return the parsed output."""
    return json.loads(invoke(*args, "--json").stdout)


def test_model_lineage_json_holds_the_run_and_datasets(models: None) -> None:
    found = as_json("lineage", "model", "churn", "1.0.0")

    assert (found["model"], found["version"], found["status"]) == ("churn", "1.0.0", "READY")
    run = found["run"]
    assert (run["name"], run["experiment"], run["git_commit"], run["git_dirty"]) == (
        "lr",
        "churn-exp",
        "0123abcd",
        False,
    )
    assert run["params"] == {"C": "0.5", "penalty": "l2"}
    assert found["datasets"] == [{"role": "holdout", "id": "ds-9"}, {"role": "train", "id": "ds-1"}]


def test_model_lineage_prints_the_chain_as_a_tree(models: None) -> None:
    tree = invoke("lineage", "model", "churn", "1.0.0").stdout

    for expected in ("churn 1.0.0", "READY", "run lr", "churn-exp", "git commit 0123abcd", "C = 0.5"):
        assert expected in tree
    assert "penalty = l2" in tree
    assert "train: ds-1" in tree
    assert "holdout: ds-9" in tree
    assert "(dirty)" not in tree


def test_model_lineage_without_a_run_says_so(models: None) -> None:
    tree = invoke("lineage", "model", "churn", "1.1.0").stdout

    assert as_json("lineage", "model", "churn", "1.1.0")["run"] is None
    assert "run: none recorded" in tree
    assert "train: ds-2" in tree


def test_model_lineage_of_an_unknown_model_or_version_is_an_error(models: None) -> None:
    missing_model = runner.invoke(app, ["lineage", "model", "ghost", "1.0.0"])
    missing_version = runner.invoke(app, ["lineage", "model", "churn", "7.0.0"])

    assert missing_model.exit_code == 1
    assert missing_model.stderr.startswith("error: ")
    assert "'ghost'" in missing_model.stderr
    assert missing_version.exit_code == 1
    assert "no version 7.0.0" in missing_version.stderr


def test_dataset_lineage_lists_every_version_built_on_it(models: None) -> None:
    found = as_json("lineage", "dataset", "ds-1")
    table = invoke("lineage", "dataset", "ds-1").stdout

    assert [(r["model"], r["version"], r["role"], r["status"]) for r in found] == [
        ("churn", "1.0.0", "train", "READY"),
        ("fraud", "1.0.0", "features", "READY"),
    ]
    assert found[0]["run_id"] is not None
    assert "churn" in table
    assert "fraud" in table
    assert "features" in table
    assert "GDPR erasure" in table
    assert "These 2 model version(s)" in table


def test_dataset_lineage_shows_aliases(models: None) -> None:
    invoke("models", "alias", "churn", "production", "1.1.0")

    found = as_json("lineage", "dataset", "ds-2")

    assert [(r["model"], r["version"], r["aliases"]) for r in found] == [("churn", "1.1.0", ["production"])]
    assert "production" in invoke("lineage", "dataset", "ds-2").stdout


def test_dataset_lineage_of_an_unused_dataset_is_empty(models: None) -> None:
    assert as_json("lineage", "dataset", "ds-unused") == []
    assert "requires no retraining" in invoke("lineage", "dataset", "ds-unused").stdout


def test_the_commands_work_against_a_server(
    steward_home: Path, steward_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEWARD_URI", steward_server)
    register(tmp_path, "churn", {"train": "ds-remote"}, run_name="over-http")

    chain = as_json("lineage", "model", "churn", "1.0.0")
    built = as_json("lineage", "dataset", "ds-remote")

    assert chain["run"]["name"] == "over-http"
    assert chain["datasets"] == [{"role": "train", "id": "ds-remote"}]
    assert [(r["model"], r["version"]) for r in built] == [("churn", "1.0.0")]
    assert "run over-http" in invoke("lineage", "model", "churn", "1.0.0").stdout
