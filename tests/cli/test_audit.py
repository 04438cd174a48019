"""``steward audit log|verify|export|public-key``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from steward.cli import output
from steward.cli.app import StewardGroup
from steward.cli.audit import app as audit_app
from steward.cli.audit import parse_time
from steward.config import load_settings
from steward.core.time import to_ms
from steward.governance import audit, audit_chain, signing
from steward.store.metadata import MetadataStore

runner = CliRunner()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# The group as ``steward audit`` mounts it, with the root group's error handling.
cli = typer.Typer(cls=StewardGroup)
cli.add_typer(audit_app, name="audit")


@cli.callback()
def _root() -> None:
    """Steward."""


def invoke(*args: str) -> Any:
    return runner.invoke(cli, ["audit", *args])


@pytest.fixture
def trail(steward_home: Path, monkeypatch: pytest.MonkeyPatch) -> MetadataStore:
    """A home whose trail has 10 entries, one an hour up to ``NOW``, checkpoints every 4."""
    monkeypatch.setenv("STEWARD_AUDIT_CHECKPOINT_EVERY", "4")
    settings = load_settings()
    store = MetadataStore(settings.db_url)
    checkpointer = audit.checkpointer_for(settings)
    plan = [
        ("ana", "dataset.publish", "dataset_version", "dv1", "ok"),
        ("bo", "model.register", "model_version", "churn/1.0.0", "ok"),
        ("ana", "alias.set", "model_alias", "churn@production", "denied"),
        ("ci", "dataset.publish", "dataset_version", "dv2", "ok"),
        ("bo", "model.register", "model_version", "churn/1.1.0", "ok"),
        ("ana", "dataset_version.read_pii", "dataset_version", "dv2", "ok"),
        ("ci", "dataset.publish", "dataset_version", "dv3", "failed"),
        ("bo", "alias.set", "model_alias", "churn@production", "ok"),
        ("ana", "model.register", "model_version", "fraud/0.1.0", "ok"),
        ("ci", "dataset.publish", "dataset_version", "dv4", "ok"),
    ]
    for i, (actor, action, kind, resource, outcome) in enumerate(plan):
        moment = to_ms(NOW - timedelta(hours=len(plan) - 1 - i))
        with monkeypatch.context() as patch, store.transaction() as conn:
            patch.setattr(audit_chain, "now_ms", lambda moment=moment: moment)
            audit.append(
                conn, actor=actor, action=action, resource_kind=kind, resource_id=resource, outcome=outcome,
                details={"n": i}, checkpoint=checkpointer,
            )  # fmt: skip
    return store


def seqs(result: Any) -> list[int]:
    assert result.exit_code == 0, result.output
    return [entry["seq"] for entry in json.loads(result.stdout)]


def test_log_shows_the_newest_entries_oldest_first(
    trail: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output.console, "width", 200)
    result = invoke("log")
    assert result.exit_code == 0, result.output
    assert "churn@production" in result.stdout and "denied" in result.stdout
    assert seqs(invoke("log", "--json")) == list(range(1, 11))
    assert seqs(invoke("log", "-n", "3", "--json")) == [8, 9, 10]


def test_log_filters_by_actor_resource_and_action(trail: MetadataStore) -> None:
    assert seqs(invoke("log", "--actor", "bo", "--json")) == [2, 5, 8]
    assert seqs(invoke("log", "--resource", "model_version", "--json")) == [2, 5, 9]
    assert seqs(invoke("log", "--resource", "model_alias:churn@production", "--json")) == [3, 8]
    assert seqs(invoke("log", "--action", "dataset.publish", "--actor", "ci", "--json")) == [4, 7, 10]
    assert seqs(invoke("log", "--actor", "' OR 1=1 --", "--json")) == []
    assert "No audit entries match" in invoke("log", "--actor", "nobody").stdout


def test_log_filters_by_time(trail: MetadataStore) -> None:
    # Entry n was written at (2 + n):00 UTC on 2026-12-01.
    assert seqs(invoke("log", "--since", "2026-12-01T10:00:00Z", "--json")) == [8, 9, 10]
    assert seqs(invoke("log", "--until", "2026-12-01T04:00", "--json")) == [1, 2]
    since, until = "2026-12-01T09:00+02:00", "2026-12-01 08:00"
    assert seqs(invoke("log", "--since", since, "--until", until, "--json")) == [5, 6]
    assert seqs(invoke("log", "--since", "2026-12-02", "--json")) == []


def test_relative_and_iso_times_parse() -> None:
    assert parse_time("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_time("7d", NOW) == NOW - timedelta(days=7)
    assert parse_time("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_time(" 2w ", NOW) == NOW - timedelta(weeks=2)
    assert parse_time("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-12-01T10:00+01:00") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with pytest.raises(typer.BadParameter, match="not a time"):
        parse_time("yesterday")


def test_a_bad_time_is_a_usage_error(trail: MetadataStore) -> None:
    result = invoke("log", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "not a time" in result.output


def test_verify_says_ok_with_counts_and_rate(trail: MetadataStore) -> None:
    result = invoke("verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 10 entries, 2 signed checkpoints")
    assert "entries/s" in result.stdout
    assert "last checkpoint: entry 8" in result.stdout
    assert "2 entries after it" in result.stdout
    report = json.loads(invoke("verify", "--json").stdout)
    assert report["ok"] is True and report["entries"] == 10 and report["checkpoints"] == 2
    assert report["checkpoints_due"] == 2 and report["first_bad"] is None


def test_verify_names_the_first_bad_entry_and_exits_1(trail: MetadataStore) -> None:
    with trail.transaction() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 6"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 9"))
    result = invoke("verify")
    assert result.exit_code == 1
    assert "BROKEN at entry 6 (hash_mismatch)" in result.stdout
    assert "5 entries and 1 signed checkpoints before it verified" in result.stdout
    report = json.loads(invoke("verify", "--json").stdout)
    assert report["ok"] is False and report["first_bad"]["seq"] == 6


def test_verify_warns_about_missing_checkpoints_and_strict_fails(trail: MetadataStore) -> None:
    with trail.transaction() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE seq = 4"))
    lenient = invoke("verify")
    assert lenient.exit_code == 0
    assert "1 of the 2 checkpoints due" in lenient.stdout
    strict = invoke("verify", "--strict")
    assert strict.exit_code == 1
    assert "BROKEN at entry 4 (checkpoint_missing)" in strict.stdout


def test_verify_with_another_public_key_fails_at_the_first_checkpoint(
    trail: MetadataStore, tmp_path: Path
) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(signing.generate().public_key_pem())
    result = invoke("verify", "--public-key", str(other))
    assert result.exit_code == 1
    assert "BROKEN at entry 4 (checkpoint_key)" in result.stdout


def test_export_writes_json_lines_that_re_verify(trail: MetadataStore, tmp_path: Path) -> None:
    out = tmp_path / "trail.jsonl"
    result = invoke("export", "--format", "jsonl", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "Exported 10 audit entries" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert {"prev_hash", "hash", "details_json", "details", "actor", "at"} <= set(records[0])
    assert records[3]["checkpoint"]["seq"] == 4 and "checkpoint" not in records[4]

    key = signing.platform_public_key(load_settings())
    report = audit.verify_records(records, key, every=4)
    assert report.ok and report.entries == 10 and report.checkpoints == 2
    verified = invoke("verify", "--file", str(out), "--strict")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith("OK: 10 entries, 2 signed checkpoints")

    records[2]["outcome"] = "ok"  # the denial, whitewashed
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    broken = invoke("verify", "--file", str(out))
    assert broken.exit_code == 1
    assert "BROKEN at entry 3 (hash_mismatch)" in broken.stdout


def test_export_streams_to_stdout_from_a_seq_on(trail: MetadataStore) -> None:
    result = invoke("export", "--after", "7")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [8, 9, 10]


def test_verify_file_refuses_what_is_not_an_export(trail: MetadataStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = invoke("verify", "--file", str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {bad}:1 is not JSON")
    bad.write_text('{"seq": 1}\n')
    result = invoke("verify", "--file", str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: not an exported audit record")


def test_public_key_prints_the_pem_and_its_id(trail: MetadataStore) -> None:
    result = invoke("public-key", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    key = signing.load_public_key(shown["public_key_pem"])
    assert shown["key_id"] == signing.key_id(key) == signing.platform_signer(load_settings()).key_id


def test_audit_refuses_a_server_uri(trail: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_URI", "http://127.0.0.1:9")
    result = invoke("log")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: steward audit reads the trail from the database directly")
