"""``steward features apply|list|show|materialize|materializations|online|push|stream|skew``, embedded
and against a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from steward.cli import data as data_cli
from steward.cli import features as features_cli
from steward.cli.app import StewardGroup
from steward.cli.app import app as steward_app
from tests.client.test_features import DEFINITIONS, features_server, transactions  # noqa: F401
from tests.data.connectors.conftest import RedisKeys, redis_keys  # noqa: F401  (a fixture)

runner = CliRunner()

# The command groups under test inside a root like ``steward``'s (a StewardError is one line, exit 1),
# so they are tested whether or not ``steward.cli.app`` has registered the group yet.
cli = typer.Typer(cls=StewardGroup, no_args_is_help=True)
cli.add_typer(features_cli.app, name="features")
cli.add_typer(data_cli.app, name="data")


def run(*args: str, code: int = 0) -> Any:
    """Run a command that must exit with ``code``; return its result."""
    result = runner.invoke(cli, list(args))
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
def definitions(tmp_path: Path) -> Path:
    """``transactions`` as a Parquet file (``tmp_path/tx.parquet``) and ``DEFINITIONS`` as YAML."""
    pq.write_table(transactions(), tmp_path / "tx.parquet")
    path = tmp_path / "features.yaml"
    path.write_text(DEFINITIONS)
    return path


@pytest.fixture
def applied(steward_home: Path, definitions: Path, tmp_path: Path) -> Path:
    """Dataset ``transactions`` ingested and ``DEFINITIONS`` applied, embedded."""
    run("data", "ingest", str(tmp_path / "tx.parquet"), "--dataset", "transactions")
    run("features", "apply", str(definitions))
    return definitions


def test_steward_has_the_features_group() -> None:
    result = runner.invoke(steward_app, ["features", "--help"])
    assert result.exit_code == 0, result.output
    assert "materialize" in result.stdout


def test_apply_twice_is_unchanged_and_a_change_is_a_new_version_in_show(
    steward_home: Path, definitions: Path, tmp_path: Path
) -> None:
    run("data", "ingest", str(tmp_path / "tx.parquet"), "--dataset", "transactions")
    first = run("features", "apply", str(definitions)).stdout
    again = as_json("features", "apply", str(definitions))
    definitions.write_text(DEFINITIONS.replace("ttl: 30d", "ttl: 7d"))
    third = run("features", "apply", str(definitions)).stdout

    assert "Created: entity:customer, feature_view:customer_stats, feature_service:churn" in first
    assert again == {
        "created": [],
        "updated": [],
        "unchanged": ["entity:customer", "feature_view:customer_stats", "feature_service:churn"],
    }
    assert "Updated: feature_view:customer_stats" in third
    assert "Unchanged: entity:customer, feature_service:churn" in third

    shown = run("features", "show", "feature_view", "customer_stats").stdout
    assert "version 2 of 2" in shown and "ttl: 604800" in shown
    assert "Region" in shown and "PII" in shown and "none" in shown and "History" in shown
    old = as_json("features", "show", "feature_view", "customer_stats", "--version", "1")
    assert old["definition"]["spec"]["ttl"] == 30 * 86_400
    assert [h["version"] for h in old["history"]] == [1, 2]

    listed = as_json("features", "list")
    assert [(d["kind"], d["name"], d["version"]) for d in listed] == [
        ("entity", "customer", 1),
        ("feature_service", "churn", 1),
        ("feature_view", "customer_stats", 2),
    ]
    assert [d["name"] for d in as_json("features", "list", "--kind", "entity")] == ["customer"]
    table = run("features", "list").stdout
    assert all(name in table for name in ("customer_stats", "churn", "customer", "transactions"))


def test_a_bad_file_is_one_error_line_naming_the_field_and_nothing_is_stored(
    steward_home: Path, definitions: Path, tmp_path: Path
) -> None:
    run("data", "ingest", str(tmp_path / "tx.parquet"), "--dataset", "transactions")
    definitions.write_text(DEFINITIONS.replace("ttl: 30d", "ttl: abc"))
    assert "ttl 'abc' is not a duration" in fails("features", "apply", str(definitions))
    definitions.write_text(
        DEFINITIONS.replace("{name: spend, dtype: float64}", "{name: spend, dtype: string}")
    )
    assert "'spend' is declared string" in fails("features", "apply", str(definitions))
    definitions.write_text(DEFINITIONS.replace("entities: [customer]", "entities: [merchant]"))
    assert "entity 'merchant'" in fails("features", "apply", str(definitions))
    assert as_json("features", "list") == []
    assert "No feature definitions yet" in run("features", "list").stdout
    assert "not found" in fails("features", "show", "entity", "nobody")
    run("features", "show", "table", "x", code=2)  # not a kind: a usage error


def test_materialize_then_online_reads_show_values_and_statuses(applied: Path) -> None:
    shown = run("features", "materialize").stdout
    assert "customer_stats" in shown and "Materialised 1 view(s): 2 entities took new values." in shown
    [again] = as_json("features", "materialize", "--view", "customer_stats")
    assert again["rows"] == 0  # incremental: nothing new since the last run
    runs = as_json("features", "materializations", "--view", "customer_stats")
    assert [r["rows"] for r in runs] == [0, 2]
    assert "customer_stats" in run("features", "materializations").stdout

    table = run("features", "online", "churn", "-e", "customer_id=1", "-e", "customer_id=999").stdout
    assert "PRESENT" in table and "NOT_FOUND" in table and "30.0" in table
    found = as_json("features", "online", "customer_stats", "--entity", "customer_id=2")
    assert found["columns"] == {"customer_id": [2], "spend": [7.0], "orders": [4]}
    assert found["statuses"] == {"customer_stats": ["PRESENT"]}
    full = as_json("features", "online", "customer_stats:spend", "-e", "customer_id=1", "--full-names")
    assert full["columns"] == {"customer_id": [1], "customer_stats__spend": [30.0]}
    assert "KEY=VALUE" in fails("features", "online", "churn", "-e", "customer_id")


def test_a_materialize_window_is_read_from_iso_times(applied: Path) -> None:
    start = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    [window] = as_json("features", "materialize", "--view", "customer_stats", "--start", start)
    assert window["rows"] == 2 and window["start"] == start
    assert "--start 'abc' is not an ISO 8601 time" in fails("features", "materialize", "--start", "abc")
    assert "not found" in fails("features", "materialize", "--view", "nothing")


def test_push_from_a_csv_file_then_skew_exits_1_naming_the_difference(applied: Path, tmp_path: Path) -> None:
    run("features", "materialize")
    clean = run("features", "skew", "customer_stats").stdout
    assert "consistent" in clean and "inconsistent" not in clean

    fresh = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    rows = tmp_path / "fresh.csv"
    rows.write_text(f"customer_id,event_timestamp,spend,orders\n2,{fresh},99.5,4\n")
    pushed = run("features", "push", "customer_stats", str(rows)).stdout
    assert "Pushed 1 row(s) to customer_stats: 1 entities took the new values." in pushed
    report = run("features", "skew", "customer_stats", "--sample", "10", code=1).stdout
    assert "inconsistent" in report and "99.5" in report and "7.0" in report
    parsed = as_json("features", "skew", "customer_stats", code=1)
    assert parsed["consistent"] is False and parsed["mismatches"][0]["feature"] == "spend"

    short = tmp_path / "short.csv"
    short.write_text(f"customer_id,event_timestamp,spend\n2,{fresh},1.0\n")
    assert "lack feature 'orders'" in fails("features", "push", "customer_stats", str(short))


@pytest.mark.redis
def test_stream_pushes_a_views_redis_stream(
    applied: Path,
    redis_keys: RedisKeys,  # noqa: F811
    tmp_path: Path,
) -> None:
    import redis

    stream = f"{redis_keys.prefix}spend"
    view = DEFINITIONS.replace("source: {dataset: transactions}", "")
    view = view.replace(
        "    timestamp: event_timestamp",
        f"    source: {{stream: '{stream}', url: '{redis_keys.url}', history: {{dataset: transactions}}}}\n"
        "    timestamp: event_timestamp",
    )
    applied.write_text(view)
    assert "Updated: feature_view:customer_stats" in run("features", "apply", str(applied)).stdout
    when = (datetime.now(UTC) - timedelta(seconds=10)).isoformat()
    with redis.Redis.from_url(redis_keys.url) as client:
        client.xadd(stream, {"customer_id": "5", "event_timestamp": when, "spend": "1.5", "orders": "2"})

    assert as_json("features", "stream", "customer_stats", "--max-batches", "1") == {
        "view": "customer_stats",
        "pushed": 1,
    }
    assert "Pushed 0 row(s)" in run("features", "stream", "customer_stats").stdout
    assert "feature view 'nothing' not found" in fails("features", "stream", "nothing")


def test_the_commands_work_against_a_server(
    steward_home: Path,
    features_server: str,  # noqa: F811
    definitions: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEWARD_URI", features_server)
    run("data", "ingest", str(tmp_path / "tx.parquet"), "--dataset", "transactions")
    assert "Created:" in run("features", "apply", str(definitions)).stdout
    assert "Unchanged:" in run("features", "apply", str(definitions)).stdout
    assert "version 1 of 1" in run("features", "show", "feature_view", "customer_stats").stdout
    run("features", "materialize")
    found = as_json("features", "online", "churn", "-e", "customer_id=1", "-e", "customer_id=3")
    assert found["columns"]["spend"] == [30.0, None]
    assert found["statuses"]["customer_stats"] == ["PRESENT", "NOT_FOUND"]
    assert as_json("features", "skew", "customer_stats")["consistent"] is True

    monkeypatch.delenv("STEWARD_URI")
    assert as_json("features", "list") == []  # it all went to the server, none to the local home
