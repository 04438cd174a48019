"""``steward data ingest|list|show|versions|profile|validate|scan|diff|quarantine``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from steward.cli.app import app
from steward.cli.output import SPARK_BLOCKS

runner = CliRunner()

EXPECTATIONS = """\
columns:
  id: {type: int64, nullable: false, unique: true}
  amount: {type: float64, min: 0}
  country: {type: string, allowed: [AE, FR]}
min_rows: 1
"""

STRICT = """\
columns:
  amount: {type: float64, max: 15}
"""

ROWS = [(1, 10.5, "AE"), (2, 20.0, "FR"), (3, 7.25, "AE"), (4, 12.0, "AE"), (5, 3.5, "FR")]


def write_csv(path: Path, rows: list[tuple[Any, ...]], header: str = "id,amount,country") -> Path:
    """Write ``rows`` as a CSV file with ``header`` and return its path."""
    path.write_text("\n".join([header, *(",".join(str(v) for v in row) for row in rows)]) + "\n")
    return path


def run(*args: str, code: int = 0) -> Any:
    """Run a command that must exit with ``code``; return its result."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def as_json(*args: str, code: int = 0) -> Any:
    """Run a command with ``--json`` (exiting with ``code``) and return the parsed output."""
    return json.loads(run(*args, "--json", code=code).stdout)


def fails(*args: str) -> str:
    """Run a command that must fail with a Steward error; return its one-line message."""
    result = run(*args, code=1)
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    return str(result.stderr)


@pytest.fixture
def tx(steward_home: Path, tmp_path: Path) -> Path:
    """Dataset ``tx``: version 1 (5 rows) ingested under ``EXPECTATIONS``; returns that YAML file."""
    expectations = tmp_path / "expectations.yaml"
    expectations.write_text(EXPECTATIONS)
    source = write_csv(tmp_path / "tx.csv", ROWS)
    run("data", "ingest", str(source), "--dataset", "tx", "--expectations", str(expectations))
    return expectations


def add_email_version(tmp_path: Path) -> None:
    """Ingest ``tx`` version 2: an added ``email`` column and much larger amounts."""
    rows = [(i, 100.0 * i, "FR", f"user{i}@example.com") for i in range(1, 9)]
    run("data", "ingest", str(write_csv(tmp_path / "tx2.csv", rows, "id,amount,country,email")), "-d", "tx")


def test_ingest_publishes_a_version_and_the_same_data_again_is_the_same_version(
    steward_home: Path, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "tx.csv", ROWS)

    first = as_json("data", "ingest", str(source), "--dataset", "tx", "--description", "payments")
    again = run("data", "ingest", str(source), "--dataset", "tx", "--format", "csv").stdout

    assert first["quarantined"] == []
    [version] = first["versions"]
    assert (version["ref"], version["rows"], version["reused"]) == ("tx@1", 5, False)
    assert [c["name"] for c in version["arrow_schema"]] == ["id", "amount", "country"]
    assert "Already published as tx@1" in again
    assert version["content_digest"][:16] in again
    assert as_json("data", "list")[0]["description"] == "payments"


def test_list_show_and_versions_describe_datasets(tx: Path, tmp_path: Path) -> None:
    add_email_version(tmp_path)

    listed = as_json("data", "list")
    shown = as_json("data", "show", "tx", "--version", "1")
    latest = as_json("data", "show", "tx")
    versions = as_json("data", "versions", "tx")
    table = run("data", "show", "tx").stdout

    assert [(d["name"], d["version_count"], d["latest_version"]) for d in listed] == [("tx", 2, 2)]
    assert (shown["ref"], shown["rows"], shown["source"]["kind"]) == ("tx@1", 5, "file")
    assert (latest["ref"], latest["rows"]) == ("tx@2", 8)
    assert [v["ref"] for v in versions] == ["tx@1", "tx@2"]
    for expected in ("Dataset version tx@2", latest["content_digest"], "tx2.csv", "Schema", "email"):
        assert expected in table
    assert "tx@1" in run("data", "versions", "tx").stdout
    assert "tx" in run("data", "list").stdout


def test_list_without_datasets_says_how_to_ingest_one(steward_home: Path) -> None:
    assert as_json("data", "list") == []
    assert "steward data ingest" in run("data", "list").stdout


def test_profile_draws_a_histogram_for_numbers_and_top_values_for_text(tx: Path) -> None:
    profile = as_json("data", "profile", "tx")
    table = run("data", "profile", "tx").stdout

    columns = {c["name"]: c for c in profile["columns"]}
    assert profile["ref"] == "tx@1"
    assert columns["amount"]["max"] == 20.0
    assert columns["country"]["null_count"] == 0
    amount_line = next(line for line in table.splitlines() if line.lstrip().startswith("amount"))
    assert any(block in amount_line for block in SPARK_BLOCKS)
    country_line = next(line for line in table.splitlines() if line.lstrip().startswith("country"))
    assert "AE" in country_line and "FR" in country_line


def test_validate_exits_0_when_checks_pass_and_3_when_one_fails(tx: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(STRICT)

    passed = as_json("data", "validate", "tx", "--expectations", str(tx))
    failed = as_json("data", "validate", "tx", "-e", str(strict), "--version", "1", code=3)
    table = run("data", "validate", "tx", "-e", str(strict), code=3).stdout

    assert passed["passed"] is True and passed["ref"] == "tx@1"
    assert failed["passed"] is False
    [failure] = [r for r in failed["results"] if not r["passed"]]
    assert (failure["column"], failure["failing_rows"]) == ("amount", 1)
    assert "✗" in table and "20" in table
    assert as_json("data", "versions", "tx")[-1]["ref"] == "tx@1"  # nothing was published


def test_a_failing_batch_is_quarantined_then_listed_shown_and_released(tx: Path, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [(1, -5.0, "AE"), (1, 3.0, "XX")])

    ingested = as_json("data", "ingest", str(bad), "--dataset", "tx", code=3)
    [batch] = ingested["quarantined"]
    printed = run("data", "ingest", str(bad), "--dataset", "tx", code=3).stdout
    held = as_json("data", "quarantine", "list", "--dataset", "tx")
    shown = as_json("data", "quarantine", "show", batch["id"])
    details = run("data", "quarantine", "show", batch["id"]).stdout

    assert ingested["versions"] == [] and batch["rows"] == 2
    assert f"steward data quarantine show {printed.split('batch ')[1].split(':')[0]}" in printed
    assert [b["id"] for b in held] == [batch["id"]]
    failed = {(r["check"], r["column"]) for r in shown["report"]["results"] if not r["passed"]}
    assert {("unique", "id"), ("allowed", "country")} <= failed
    for expected in ("Failed checks", "bad.csv", "country", "XX", "release"):
        assert expected in details

    released = as_json("data", "quarantine", "release", batch["id"], "--reason", "checked by hand")
    assert (released["version"]["ref"], released["batch"]["status"]) == ("tx@2", "RELEASED")
    assert batch["id"] not in [b["id"] for b in as_json("data", "quarantine", "list")]
    everything = as_json("data", "quarantine", "list", "--all")
    assert {b["id"]: b["status"] for b in everything}[batch["id"]] == "RELEASED"
    assert "RELEASED" in fails("data", "quarantine", "drop", batch["id"])


def test_a_dropped_batch_is_never_published(tx: Path, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [(7, -1.0, "AE")])
    [batch] = as_json("data", "ingest", str(bad), "-d", "tx", code=3)["quarantined"]

    dropped = as_json("data", "quarantine", "drop", batch["id"], "--reason", "test data")
    message = run("data", "quarantine", "drop", batch["id"], code=1).stderr

    assert (dropped["status"], dropped["resolution"]) == ("DROPPED", "test data")
    assert "not HELD" in message
    assert as_json("data", "show", "tx")["ref"] == "tx@1"
    assert "No batches in quarantine" in run("data", "quarantine", "list").stdout


def test_diff_reports_an_added_column_and_highlights_shifted_ones(tx: Path, tmp_path: Path) -> None:
    add_email_version(tmp_path)

    diff = as_json("data", "diff", "tx", "1", "2")
    table = run("data", "diff", "tx", "1", "2").stdout

    shifts = {c["name"]: c for c in diff["columns"]}
    assert (diff["from"], diff["to"], diff["schema_changed"]) == ("tx@1", "tx@2", True)
    assert shifts["email"]["change"] == "added"
    assert shifts["amount"]["psi"] > 0.2
    assert "tx@1 → tx@2" in table and "email" in table and "added" in table


def test_scan_finds_the_email_column_and_masks_its_examples(tx: Path, tmp_path: Path) -> None:
    add_email_version(tmp_path)

    scanned = as_json("data", "scan", "tx")
    table = run("data", "scan", "tx").stdout

    findings = {f["column"]: f for f in scanned["findings"]}
    assert "email" in findings["email"]["tags"]
    assert findings["email"]["match_share"] == 1.0
    assert "user1@example.com" not in table and "email" in table
    assert as_json("data", "scan", "tx", "--version", "1")["findings"] == []


def test_unknown_dataset_or_batch_is_an_error(steward_home: Path) -> None:
    assert "'nope'" in fails("data", "show", "nope")
    assert "'nope'" in fails("data", "profile", "nope", "--json")
    assert "'nope'" in fails("data", "versions", "nope")
    assert "nope" in fails("data", "quarantine", "show", "nope")


def test_malformed_csv_is_an_error_naming_the_file(steward_home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text('id,amount,country\n1,2.0,AE\n2,"3.0,FR\n')

    assert "broken.csv" in fails("data", "ingest", str(broken), "--dataset", "tx")
    assert "missing.csv" in fails("data", "ingest", str(tmp_path / "missing.csv"), "--dataset", "tx")


POLICY = """\
by_tag:
  email: {action: pseudonymize}
by_column:
  country: {action: mask, params: {keep_first: 1}}
"""


def test_protect_publishes_a_pseudonymised_copy_and_says_what_changed(tx: Path, tmp_path: Path) -> None:
    add_email_version(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)

    printed = run("data", "protect", "tx", "--policy", str(policy)).stdout
    versions = as_json("data", "versions", "tx")
    rows = as_json("data", "protect", "tx", "-p", str(policy), "--version", "2")

    assert "tx@2" in printed and "tx@3" in printed and "pseudonymize" in printed and "mask" in printed
    assert [v["ref"] for v in versions] == ["tx@1", "tx@2", "tx@3"]
    assert versions[-1]["parent_id"] == versions[1]["id"]
    assert rows["version"]["ref"] == "tx@3"  # the same input and key: the same version
    assert rows["version"]["source"]["actions"] == {"country": "mask", "email": "pseudonymize"}


def test_ingest_with_a_privacy_policy_publishes_raw_and_protected(steward_home: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("by_tag:\n  email: {action: drop}\n")
    rows = [(i, 1.0 * i, "AE", f"user{i}@example.com") for i in range(1, 5)]
    source = write_csv(tmp_path / "people.csv", rows, "id,amount,country,email")

    ingested = as_json("data", "ingest", str(source), "-d", "people", "--privacy", str(policy))

    [version] = ingested["versions"]
    assert version["ref"] == "people@2" and version["parent_id"] == ingested["raw"][0]["id"]
    assert "email" not in [c["name"] for c in version["arrow_schema"]]
    bad = tmp_path / "bad.yaml"
    bad.write_text("by_tag:\n  email: {action: shred}\n")
    assert "shred" in fails("data", "ingest", str(source), "-d", "people", "--privacy", str(bad))


def test_kanon_reports_the_smallest_group(tx: Path) -> None:
    report = as_json("data", "kanon", "tx", "-q", "country")
    printed = run("data", "kanon", "tx", "--quasi", "country").stdout

    assert (report["k"], report["groups"], report["smallest_group"]) == (2, 2, {"country": "FR"})
    assert "2-anonymous" in printed
    assert "'nope'" in fails("data", "kanon", "tx", "-q", "nope")
