"""``steward models list|show|versions|alias|archive|card|history``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import steward
from steward.cli.app import app
from steward.registry.cards import CARD_FIELDS
from tests.cli.registry_helpers import register

runner = CliRunner()


@pytest.fixture
def churn(steward_home: Path, tmp_path: Path) -> list[str]:
    """Model ``churn`` with 1.0.0 (from run ``lr``, auc 0.9) and 1.1.0 (auc 0.93); ``production`` -> 1.0.0."""
    versions = [register(tmp_path, run_name="lr"), register(tmp_path, metrics={"auc": 0.93})]
    invoke("models", "alias", "churn", "production", "1.0.0", "--reason", "first release")
    return versions


def invoke(*args: str) -> Any:
    """Run a command that must succeed; return its result."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    """Run a command with ``--json`` and return the parsed output."""
    return json.loads(invoke(*args, "--json").stdout)


def fails(*args: str) -> str:
    """Run a command that must fail with a Steward error; return its one-line message."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    return str(result.stderr)


def test_list_shows_each_model_with_its_latest_version_and_aliases(churn: list[str], tmp_path: Path) -> None:
    register(tmp_path, model="fraud")

    listed = as_json("models", "list")
    table = invoke("models", "list").stdout

    assert [(m["name"], m["version_count"], m["latest_version"]) for m in listed] == [
        ("churn", 2, "1.1.0"),
        ("fraud", 1, "1.0.0"),
    ]
    assert listed[0]["aliases"] == {"production": "1.0.0"}
    assert "churn" in table
    assert "fraud" in table
    assert "production → 1.0.0" in table


def test_list_without_models_says_how_to_register_one(steward_home: Path) -> None:
    assert as_json("models", "list") == []
    assert "No registered models yet" in invoke("models", "list").stdout


def test_show_summarises_a_model(churn: list[str]) -> None:
    shown = as_json("models", "show", "churn")
    table = invoke("models", "show", "churn").stdout

    assert shown["name"] == "churn"
    assert shown["latest_version"] == "1.1.0"
    assert shown["version_count"] == 2
    assert shown["aliases"] == {"production": "1.0.0"}
    for expected in ("Model churn", "Latest version", "1.1.0", "Versions", "production → 1.0.0"):
        assert expected in table


def test_versions_lists_status_flavor_aliases_and_run(churn: list[str]) -> None:
    listed = as_json("models", "versions", "churn")
    table = invoke("models", "versions", "churn").stdout

    assert [v["version"] for v in listed] == ["1.0.0", "1.1.0"]
    assert [v["status"] for v in listed] == ["READY", "READY"]
    assert listed[0]["aliases"] == ["production"]
    assert listed[0]["run_id"] is not None
    assert listed[1]["run_id"] is None
    assert listed[0]["uri"] == "models:/churn/1.0.0"
    for expected in ("1.0.0", "1.1.0", "READY", "sklearn", "production", "2 version(s) of churn"):
        assert expected in table


def test_an_unknown_model_is_an_error(steward_home: Path) -> None:
    for command in (["show"], ["versions"], ["history"], ["card", "1.0.0"], ["archive", "1.0.0"]):
        message = fails("models", command[0], "ghost", *command[1:])
        assert "'ghost'" in message
        assert "not found" in message


def test_alias_moves_and_history_records_who_when_and_why(churn: list[str]) -> None:
    moved = as_json("models", "alias", "churn", "production", "1.1.0", "--reason", "better auc")
    text = invoke("models", "alias", "churn", "staging", "1.0.0").stdout
    history = as_json("models", "history", "churn")
    production = as_json("models", "history", "churn", "--alias", "production")
    table = invoke("models", "history", "churn").stdout

    assert moved["alias"] == "production"
    assert moved["version"]["version"] == "1.1.0"
    assert moved["version"]["aliases"] == ["production"]
    assert "staging now points at models:/churn/1.0.0" in text
    assert [(e["alias"], e["from_version"], e["to_version"], e["reason"]) for e in history] == [
        ("production", None, "1.0.0", "first release"),
        ("production", "1.0.0", "1.1.0", "better auc"),
        ("staging", None, "1.0.0", ""),
    ]
    assert all(e["actor"] and e["at"] for e in history)
    assert [e["to_version"] for e in production] == ["1.0.0", "1.1.0"]
    assert "1.0.0 → 1.1.0" in table
    assert "better auc" in table


def test_alias_delete_is_recorded(churn: list[str]) -> None:
    deleted = as_json("models", "alias", "churn", "production", "--delete", "--reason", "incident 42")
    text = invoke("models", "alias", "churn", "production", "1.1.0")
    invoke("models", "alias", "churn", "production", "--delete")
    history = as_json("models", "history", "churn", "--alias", "production")

    assert deleted == {"model": "churn", "alias": "production", "version": None}
    assert "production now points" in text.stdout
    assert history[1]["to_version"] is None
    assert history[1]["reason"] == "incident 42"
    assert as_json("models", "show", "churn")["aliases"] == {}
    assert "(removed)" in invoke("models", "history", "churn").stdout
    assert "has no alias 'production'" in fails("models", "alias", "churn", "production", "--delete")


def test_alias_needs_exactly_one_of_version_and_delete(churn: list[str]) -> None:
    assert runner.invoke(app, ["models", "alias", "churn", "production"]).exit_code == 2
    assert runner.invoke(app, ["models", "alias", "churn", "production", "1.1.0", "--delete"]).exit_code == 2


def test_history_without_moves_says_so(steward_home: Path, tmp_path: Path) -> None:
    register(tmp_path)

    assert as_json("models", "history", "churn") == []
    assert "No alias of churn has moved yet" in invoke("models", "history", "churn").stdout


def test_archive_and_restore(churn: list[str]) -> None:
    archived = as_json("models", "archive", "churn", "1.1.0", "--reason", "superseded")
    refused = fails("models", "alias", "churn", "staging", "1.1.0")
    restored = invoke("models", "archive", "churn", "1.1.0", "--restore").stdout
    listed = as_json("models", "versions", "churn")

    assert archived["status"] == "ARCHIVED"
    assert archived["archived_at"] is not None
    assert "archived" in refused
    assert "models:/churn/1.1.0 is now READY" in restored
    assert [v["status"] for v in listed] == ["READY", "READY"]


def test_archiving_a_version_an_alias_holds_is_refused(churn: list[str]) -> None:
    message = fails("models", "archive", "churn", "1.0.0")

    assert "production" in message
    assert as_json("models", "versions", "churn")[0]["status"] == "READY"


def test_restore_takes_no_reason(churn: list[str]) -> None:
    result = runner.invoke(app, ["models", "archive", "churn", "1.1.0", "--restore", "--reason", "x"])

    assert result.exit_code == 2


def test_card_prints_markdown_with_gaps_and_facts(churn: list[str]) -> None:
    card = invoke("models", "card", "churn", "1.0.0").stdout

    assert card.startswith("# Model card: churn 1.0.0\n")
    assert card.count("**Not provided.**") == len(CARD_FIELDS)
    for fact in ("| auc | 0.9 |", "lr", "churn-exp", "`0123abcd` (dirty", "| penalty | l2 |", "`ds-1`"):
        assert fact in card


def test_card_options_save_sections_that_later_saves_keep(churn: list[str]) -> None:
    saved = as_json(
        "models", "card", "churn", "1.0.0", "--intended-use", "Retention offers.", "--limitations", "EU only."
    )
    invoke("models", "card", "churn", "1.0.0", "--caveats", "Retrain monthly.")
    card = invoke("models", "card", "churn", "1.0.0").stdout

    assert saved["saved"]["fields"] == {"intended_use": "Retention offers.", "limitations": "EU only."}
    assert saved["format"] == "md"
    assert "Retention offers." in saved["card"]
    for text in ("Retention offers.", "EU only.", "Retrain monthly."):
        assert text in card
    assert card.count("**Not provided.**") == len(CARD_FIELDS) - 3


def test_card_writes_html_to_a_file(churn: list[str], tmp_path: Path) -> None:
    target = tmp_path / "card.html"

    result = invoke(
        "models",
        "card",
        "churn",
        "1.0.0",
        "--format",
        "html",
        "--output",
        str(target),
        "--evaluation",
        "<b>x</b>",
    )
    listed = as_json("models", "card", "churn", "1.0.0", "--format", "html", "--output", str(target))

    html = target.read_text(encoding="utf-8")
    assert "Wrote the html card of churn 1.0.0" in result.stdout
    assert html.startswith("<!DOCTYPE html>")
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<svg" in html
    assert listed["card"] is None
    assert listed["output"] == str(target)
    assert listed["saved"]["fields"] == {"evaluation": "<b>x</b>"}  # kept, and this rendering stored
    assert len(listed["saved"]["html_digest"]) == 64


def test_card_refuses_an_unknown_format_version_or_unwritable_output(
    churn: list[str], tmp_path: Path
) -> None:
    assert runner.invoke(app, ["models", "card", "churn", "1.0.0", "--format", "pdf"]).exit_code == 2
    assert "no version 9.9.9" in fails("models", "card", "churn", "9.9.9")
    assert "cannot write the card" in fails(
        "models", "card", "churn", "1.0.0", "-o", str(tmp_path / "no/x.md")
    )


def test_card_has_one_option_per_card_field() -> None:
    card = typer.main.get_command(app).commands["models"].commands["card"]  # type: ignore[attr-defined]
    options = {opt for param in card.params for opt in param.opts}

    assert {"--" + field.replace("_", "-") for field in CARD_FIELDS} <= options


def test_the_commands_work_against_a_server(
    steward_home: Path, steward_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEWARD_URI", steward_server)
    register(tmp_path, run_name="over-http")
    invoke("models", "alias", "churn", "production", "1.0.0", "--reason", "remote release")

    listed = as_json("models", "list")
    card = invoke("models", "card", "churn", "1.0.0", "--intended-use", "Served remotely.").stdout
    history = as_json("models", "history", "churn")

    assert [(m["name"], m["aliases"]) for m in listed] == [("churn", {"production": "1.0.0"})]
    assert "Served remotely." in card
    assert "over-http" in card
    assert [e["reason"] for e in history] == ["remote release"]
    assert "'ghost'" in fails("models", "show", "ghost")
    local = steward.connect(uri="", home=steward_home)  # the embedded home saw none of it
    try:
        assert local.registry.list_models() == []
    finally:
        local.close()
