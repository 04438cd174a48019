"""``steward data …`` against a Steward server (``STEWARD_URI``): files are read here and uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_data import EXPECTATIONS, ROWS, STRICT, as_json, fails, run, write_csv


@pytest.fixture
def remote(steward_home: Path, steward_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI at the test server; the local home stays empty."""
    monkeypatch.setenv("STEWARD_URI", steward_server)
    return steward_server


def test_files_are_ingested_shown_checked_and_compared_on_the_server(
    remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expectations = tmp_path / "expectations.yaml"
    expectations.write_text(EXPECTATIONS)
    strict = tmp_path / "strict.yaml"
    strict.write_text(STRICT)
    source = write_csv(tmp_path / "tx.csv", ROWS)
    wider = [(i, 100.0 * i, "FR", f"user{i}@example.com") for i in range(1, 9)]
    second = write_csv(tmp_path / "tx2.csv", wider, "id,amount,country,email")

    [version] = as_json("data", "ingest", str(source), "-d", "tx", "-e", str(expectations))["versions"]
    assert version.pop("reused") is False
    again = run("data", "ingest", str(source), "--dataset", "tx").stdout
    run("data", "ingest", str(second), "-d", "tx")

    assert (version["ref"], version["rows"], version["source"]["url"]) == ("tx@1", 5, str(source))
    assert "Already published as tx@1" in again
    assert [(d["name"], d["latest_version"]) for d in as_json("data", "list")] == [("tx", 2)]
    assert as_json("data", "show", "tx", "--version", "1") == version
    assert "Dataset version tx@2" in run("data", "show", "tx").stdout
    assert [v["ref"] for v in as_json("data", "versions", "tx")] == ["tx@1", "tx@2"]
    assert {c["name"] for c in as_json("data", "profile", "tx")["columns"]} >= {"email", "amount"}
    assert as_json("data", "validate", "tx", "-e", str(strict), "--version", "1", code=3)["passed"] is False
    assert "email" in {f["column"] for f in as_json("data", "scan", "tx")["findings"]}
    assert as_json("data", "diff", "tx", "1", "2")["schema_changed"] is True

    monkeypatch.delenv("STEWARD_URI")
    assert as_json("data", "list") == []  # it all went to the server, none to the local home


def test_a_quarantined_upload_is_listed_shown_and_released_on_the_server(remote: str, tmp_path: Path) -> None:
    expectations = tmp_path / "expectations.yaml"
    expectations.write_text(EXPECTATIONS)
    bad = write_csv(tmp_path / "bad.csv", [(1, -5.0, "AE"), (1, 3.0, "XX")])

    [batch] = as_json("data", "ingest", str(bad), "-d", "tx", "-e", str(expectations), code=3)["quarantined"]
    held = as_json("data", "quarantine", "list", "--dataset", "tx")
    details = run("data", "quarantine", "show", batch["id"]).stdout
    released = as_json("data", "quarantine", "release", batch["id"], "--reason", "checked by hand")

    assert [b["id"] for b in held] == [batch["id"]]
    for expected in ("Failed checks", "bad.csv", "XX", "release"):
        assert expected in details
    assert (released["version"]["ref"], released["batch"]["status"]) == ("tx@1", "RELEASED")
    assert "RELEASED" in fails("data", "quarantine", "drop", batch["id"])
    assert "'nope'" in fails("data", "show", "nope")


def test_an_unreachable_server_is_an_error_naming_it(
    steward_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_URI", "http://127.0.0.1:9")
    source = write_csv(tmp_path / "tx.csv", ROWS)

    assert "http://127.0.0.1:9" in fails("data", "list")
    assert "http://127.0.0.1:9" in fails("data", "ingest", str(source), "-d", "tx")
