"""The data contract: the same behaviour embedded (SQLite, PostgreSQL) and over HTTP.

In remote mode the client reads every source and YAML file on this side and uploads what it read; the
server (``steward_server``, on its own home) validates, publishes and quarantines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from steward.config import load_settings
from steward.data.connectors import Batch
from steward.data.models import DataBackend, QuarantineStatus
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.store.platform import Platform

EXPECTATIONS = {
    "columns": {
        "id": {"type": "int64", "nullable": False, "unique": True},
        "amount": {"type": "float64", "min": 0},
        "country": {"type": "string", "allowed": ["AE", "FR"]},
    },
    "min_rows": 1,
}
ROWS = [(1, 10.5, "AE"), (2, 20.0, "FR"), (3, 7.25, "AE")]
PSEUDONYMISE_EMAIL = {"by_tag": {"email": {"action": "pseudonymize"}}}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres), "remote"])
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataBackend]:
    """The data service embedded on SQLite or PostgreSQL, or the HTTP client of a real server."""
    if request.param == "remote":
        from steward.client.data import RemoteDataService
        from steward.client.http import HttpClient

        url = request.getfixturevalue("steward_server")
        with HttpClient(url) as http:
            yield RemoteDataService(http)
        return
    from steward.data.service import DataService

    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    yield DataService(platform)
    platform.close()


def write_csv(path: Path, rows: list[tuple[Any, ...]], header: str = "id,amount,country") -> Path:
    """Write ``rows`` as a CSV file under ``header`` and return its path."""
    path.write_text("\n".join([header, *(",".join(str(v) for v in row) for row in rows)]) + "\n")
    return path


def people_csv(path: Path) -> Path:
    """A CSV file with an e-mail column and quasi-identifiers (age band, postcode)."""
    rows = [
        (1, "ana@example.com", "30-39", "10115"),
        (2, "bo@example.org", "30-39", "10115"),
        (3, "cy@example.net", "40-49", "10115"),
        (4, "di@example.com", "40-49", "20095"),
        (5, "ed@example.com", "40-49", "20095"),
    ]
    return write_csv(path, rows, "id,email,age_band,postcode")


def test_an_ingested_csv_file_becomes_a_version_that_reads_back_with_its_columns(
    data: DataBackend, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "tx.csv", ROWS)
    result = data.ingest(str(source), "tx", expectations=EXPECTATIONS, description="payments")
    version = result.version
    assert version is not None and result.quarantined == () and result.reused == (False,)
    assert (version.ref, version.rows, version.parent_id) == ("tx@1", 3, None)
    assert (version.source["kind"], version.source["url"]) == ("file", str(source))
    assert [c["name"] for c in version.arrow_schema] == ["id", "amount", "country"]
    assert {c["name"]: c["max"] for c in version.profile["columns"]}["amount"] == 20.0
    assert data.get_version("tx") == version
    assert data.get_version("tx", 1) == version
    assert data.get_version_by_id(version.id) == version
    assert data.list_versions("tx") == [version]
    dataset = data.get_dataset("tx")
    assert (dataset.name, dataset.description, dataset.latest_version, dataset.version_count) == (
        "tx",
        "payments",
        1,
        1,
    )
    assert dataset.expectations == EXPECTATIONS
    assert data.list_datasets() == [dataset]

    table = data.read_table(version)
    assert isinstance(table, pa.Table)
    assert table.column_names == ["id", "amount", "country"]
    assert table.column("amount").to_pylist() == [10.5, 20.0, 7.25]
    some = data.read_table(version, ["country", "id"])
    assert some.column_names == ["country", "id"]
    assert some.column("id").to_pylist() == [1, 2, 3]


def test_the_same_data_twice_is_the_same_version_and_new_data_a_new_one(
    data: DataBackend, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "tx.csv", ROWS)
    first = data.ingest(source, "tx").version
    assert first is not None
    again = data.ingest(str(source), "tx", format="csv")
    assert again.version == first and again.reused == (True,)
    write_csv(source, [*ROWS, (4, 1.0, "FR")])
    second = data.ingest(str(source), "tx").version
    assert second is not None and (second.number, second.rows) == (2, 4)
    assert second.content_digest != first.content_digest
    assert [v.number for v in data.list_versions("tx")] == [1, 2]


def test_tables_and_data_frames_are_ingested_with_their_source_info(data: DataBackend) -> None:
    table = pa.table({"id": [1, 2], "amount": [1.5, 2.5], "country": ["AE", "FR"]})
    version = data.ingest(table, "tx", source_info={"kind": "table", "from": "notebook"}).version
    assert version is not None and version.source == {"kind": "table", "from": "notebook"}
    frame = pd.DataFrame({"id": [3], "amount": [0.5], "country": ["AE"]})
    second = data.ingest(frame, "tx").version
    assert second is not None and (second.number, second.source) == (2, {"kind": "table"})
    assert data.read_table(second).to_pylist() == [{"id": 3, "amount": 0.5, "country": "AE"}]
    with pytest.raises(InvalidInput):
        data.ingest(table, "tx", format="csv")


def test_files_of_a_glob_become_one_version_recording_every_part(data: DataBackend, tmp_path: Path) -> None:
    write_csv(tmp_path / "part-1.csv", ROWS[:2])
    write_csv(tmp_path / "part-2.csv", ROWS[2:])
    version = data.ingest(str(tmp_path / "part-*.csv"), "tx").version
    assert version is not None and version.rows == 3
    assert version.source["kind"] == "batches"
    assert [Path(p["url"]).name for p in version.source["parts"]] == ["part-1.csv", "part-2.csv"]


def test_a_failing_batch_is_quarantined_then_released_once(data: DataBackend, tmp_path: Path) -> None:
    data.create_dataset("tx", expectations=EXPECTATIONS)
    bad = write_csv(tmp_path / "bad.csv", [(1, -5.0, "AE"), (1, 3.0, "XX")])
    result = data.ingest(str(bad), "tx")
    assert result.versions == () and result.version is None and len(result.quarantined) == 1
    held = result.quarantined[0]
    assert (held.status, held.dataset, held.rows) == (QuarantineStatus.HELD, "tx", 2)
    assert held.source["url"] == str(bad)
    assert held.report["passed"] is False
    failed = {(r["check"], r["column"]) for r in held.report["results"] if not r["passed"]}
    assert {("range", "amount"), ("allowed", "country"), ("unique", "id")} <= failed
    with pytest.raises(NotFound):
        data.get_version("tx")
    assert data.list_quarantine("tx") == [held]
    assert data.get_quarantined(held.id) == held
    assert data.ingest(str(bad), "tx").quarantined[0].id == held.id  # a redelivery: one copy

    released = data.release(held.id, reason="checked by hand")
    assert (released.ref, released.rows, released.source["kind"]) == ("tx@1", 2, "quarantine")
    assert released.source["original"]["url"] == str(bad)
    assert data.read_table(released).column("country").to_pylist() == ["AE", "XX"]
    after = data.get_quarantined(held.id)
    assert after.status is QuarantineStatus.RELEASED and after.resolved_at is not None
    assert after.resolution and "checked by hand" in after.resolution
    assert data.list_quarantine("tx") == []
    assert data.list_quarantine(status=None) == [after]
    assert data.list_quarantine(status="RELEASED") == [after]
    with pytest.raises(Conflict):
        data.release(held.id)
    with pytest.raises(Conflict):
        data.drop(held.id)


def test_a_dropped_batch_is_never_published(data: DataBackend, tmp_path: Path) -> None:
    data.create_dataset("tx", expectations=EXPECTATIONS)
    held = data.ingest(str(write_csv(tmp_path / "bad.csv", [(1, -1.0, "AE")])), "tx").quarantined[0]
    dropped = data.drop(held.id, reason="test data")
    assert (dropped.status, dropped.resolution) == (QuarantineStatus.DROPPED, "test data")
    assert dropped.resolved_by and dropped.resolved_at is not None
    assert data.list_quarantine("tx", status=QuarantineStatus.DROPPED) == [dropped]
    assert data.list_versions("tx") == []


def test_stream_batches_are_committed_only_once_published(data: DataBackend) -> None:
    seen: list[int] = []

    def commit() -> None:  # what exists when the stream is told the batch is safe
        seen.append(len(data.list_versions("events")))

    class Stream:
        def batches(self) -> Iterator[Batch]:
            for first in (1, 3):
                table = pa.table({"id": [first, first + 1]})
                yield Batch(table, {"kind": "redis_stream", "stream": "ev", "first_id": str(first)}, commit)

    result = data.ingest(Stream(), "events")
    assert [v.ref for v in result.versions] == ["events@1", "events@2"]
    assert [v.source["first_id"] for v in result.versions] == ["1", "3"]
    assert seen == [1, 2]


def test_expectations_are_read_from_yaml_where_the_caller_runs(data: DataBackend, tmp_path: Path) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text("columns:\n  amount: {type: float64, max: 15}\n")
    data.ingest(str(write_csv(tmp_path / "tx.csv", ROWS)), "tx")
    assert data.set_expectations("tx", checks).expectations == {
        "columns": {"amount": {"type": "float64", "max": 15}}
    }
    report = data.validate_version("tx")
    assert not report.passed and [r.check for r in report.failures] == ["range"]
    assert report.rows == 3 and report.failures[0].failing_rows == 1
    assert report.failures[0].examples == (20.0,)
    assert data.validate_version("tx", EXPECTATIONS, 1).passed
    assert data.validate_version("tx", "columns:\n  country: {allowed: [AE]}\n").summary().startswith("1 of")
    assert data.set_expectations("tx", None).expectations is None
    with pytest.raises(InvalidInput):
        data.validate_version("tx")
    with pytest.raises(InvalidInput):
        data.set_expectations("tx", {"columns": {"id": {"type": "nope"}}})


def test_diff_compares_versions_of_one_dataset_or_two(data: DataBackend, tmp_path: Path) -> None:
    data.ingest(str(write_csv(tmp_path / "tx.csv", ROWS)), "tx")
    wider = [(i, 100.0 * i, "FR", f"user{i}@example.com") for i in range(1, 9)]
    data.ingest(str(write_csv(tmp_path / "tx2.csv", wider, "id,amount,country,email")), "tx")
    data.ingest(str(write_csv(tmp_path / "copy.csv", ROWS)), "copy")
    changes = data.diff("tx", 1, 2)
    assert (changes.rows_before, changes.rows_after, changes.schema_changed) == (3, 8, True)
    by_name = {c.name: c for c in changes.columns}
    assert by_name["email"].change == "added"
    assert by_name["amount"].psi is not None and by_name["amount"].psi > 0.2
    same = data.diff("tx", 1, 1, other="copy")
    assert not same.schema_changed and {c.change for c in same.columns} == {"same"}
    with pytest.raises(NotFound):
        data.diff("tx", 1, 9)


def test_scan_finds_the_email_column_and_records_it_on_the_version(data: DataBackend, tmp_path: Path) -> None:
    raw = data.ingest(str(people_csv(tmp_path / "people.csv")), "people").version
    assert raw is not None
    version, findings = data.scan("people")
    assert [(f.column, f.tags) for f in findings if "email" in f.tags] == [("email", ("email",))]
    email = next(f for f in findings if f.column == "email")
    assert email.by_name and email.match_share == 1.0
    assert all("@" in e and "ana" not in e for e in email.examples)  # masked
    assert version.id == raw.id and version.pii_tags["email"] == ["email"]
    assert data.get_version("people").pii_tags == version.pii_tags


def test_protect_publishes_a_derived_version_with_the_email_pseudonymised(
    data: DataBackend, tmp_path: Path
) -> None:
    raw = data.ingest(str(people_csv(tmp_path / "people.csv")), "people").version
    assert raw is not None
    with pytest.raises(InvalidInput):
        data.protect("people")  # neither a policy given nor one of its own
    safe = data.protect("people", 1, PSEUDONYMISE_EMAIL)
    assert (safe.ref, safe.parent_id, safe.rows) == ("people@2", raw.id, 5)
    assert (safe.source["kind"], safe.source["from_id"]) == ("privacy", raw.id)
    before, after = data.read_table(raw), data.read_table(safe)
    emails = after.column("email").to_pylist()
    assert all(isinstance(e, str) and HEX64.match(e) for e in emails)
    assert not set(emails) & set(before.column("email").to_pylist())
    assert after.column("postcode").to_pylist() == before.column("postcode").to_pylist()
    data.set_privacy("people", PSEUDONYMISE_EMAIL)
    assert data.get_dataset("people").privacy is not None
    assert data.protect("people", 1) == safe  # the same protected content is the same version
    copy = data.protect("people", 1, PSEUDONYMISE_EMAIL, target="people-safe")
    assert (copy.ref, copy.parent_id, copy.content_digest) == ("people-safe@1", raw.id, safe.content_digest)


def test_ingesting_with_a_policy_publishes_the_raw_version_and_its_protected_copy(
    data: DataBackend, tmp_path: Path
) -> None:
    result = data.ingest(str(people_csv(tmp_path / "people.csv")), "people", privacy=PSEUDONYMISE_EMAIL)
    [raw], [safe] = result.raw, result.versions
    assert result.version == safe and safe.parent_id == raw.id
    assert (raw.ref, safe.ref) == ("people@1", "people@2")
    assert all(HEX64.match(e) for e in data.read_table(safe, ["email"]).column("email").to_pylist())


def test_k_anonymity_reports_the_smallest_group(data: DataBackend, tmp_path: Path) -> None:
    data.ingest(str(people_csv(tmp_path / "people.csv")), "people")
    report = data.k_anonymity("people", ["age_band", "postcode"])
    assert (report.k, report.groups, report.quasi_identifiers) == (1, 3, ("age_band", "postcode"))
    assert report.smallest_group == {"age_band": "40-49", "postcode": 10115}  # CSV: read as a number
    assert report.rows_below == {2: 1, 5: 5, 10: 5}
    assert data.k_anonymity("people", ["postcode"], 1).k == 2


def test_datasets_are_created_once_with_their_region_rules(data: DataBackend) -> None:
    created = data.create_dataset(
        "tx", "payments", EXPECTATIONS, allowed_regions=["default", "eu-west-1"], privacy=PSEUDONYMISE_EMAIL
    )
    assert (created.name, created.region, created.latest_version, created.version_count) == (
        "tx",
        "default",
        None,
        0,
    )
    assert created.allowed_regions == ("default", "eu-west-1")
    assert created.privacy == {
        "by_tag": {"email": {"action": "pseudonymize", "params": {}}},
        "by_column": {},
        "default": {"action": "keep", "params": {}},
    }
    assert data.get_dataset("tx") == created
    residency = data.residency("tx")
    assert (residency.dataset, residency.region, residency.allowed) == (
        "tx",
        "default",
        frozenset({"default", "eu-west-1"}),
    )
    with pytest.raises(AlreadyExists):
        data.create_dataset("tx")
    with pytest.raises(InvalidInput):
        data.create_dataset("other", region="not a region")
    with pytest.raises(InvalidInput):
        data.create_dataset("other", privacy={"by_tag": {"shoe_size": {"action": "drop"}}})


def test_unknown_datasets_versions_and_batches_are_not_found(data: DataBackend, tmp_path: Path) -> None:
    version = data.ingest(str(write_csv(tmp_path / "tx.csv", ROWS)), "tx").version
    assert version is not None
    calls: list[Callable[[], object]] = [
        lambda: data.get_dataset("nope"),
        lambda: data.list_versions("nope"),
        lambda: data.get_version("nope"),
        lambda: data.get_version("tx", 9),
        lambda: data.get_version_by_id("nope"),
        lambda: data.set_expectations("nope", None),
        lambda: data.set_privacy("nope", None),
        lambda: data.residency("nope"),
        lambda: data.validate_version("nope", EXPECTATIONS),
        lambda: data.validate_version("tx", EXPECTATIONS, 9),
        lambda: data.diff("nope", 1, 1),
        lambda: data.diff("tx", 1, 1, other="nope"),
        lambda: data.scan("nope"),
        lambda: data.scan("tx", 9),
        lambda: data.protect("tx", 9, PSEUDONYMISE_EMAIL),
        lambda: data.k_anonymity("nope", ["country"]),
        lambda: data.list_quarantine("nope"),
        lambda: data.get_quarantined("nope"),
        lambda: data.release("nope"),
        lambda: data.drop("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound, match=r"missing\.csv"):
        data.ingest(str(tmp_path / "missing.csv"), "tx")


def test_bad_names_and_malformed_sources_are_invalid_input(data: DataBackend, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "tx.csv", ROWS)
    broken = tmp_path / "broken.csv"
    broken.write_text('id,amount,country\n1,2.0,AE\n2,"3.0,FR\n')
    calls: list[Callable[[], object]] = [
        lambda: data.get_dataset("a/b"),
        lambda: data.get_version("has space"),
        lambda: data.create_dataset("-lead"),
        lambda: data.ingest(str(source), "a/b"),
        lambda: data.ingest(str(source), "tx", expectations={"columns": {"id": {"type": "nope"}}}),
        lambda: data.ingest(str(source), "tx", expectations="columns: [unclosed"),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    with pytest.raises(InvalidInput, match=r"broken\.csv"):
        data.ingest(str(broken), "tx")
    with pytest.raises(NotFound):
        data.get_version("tx")


def test_a_source_with_non_ascii_names_is_recorded_as_given(data: DataBackend, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "données-été.csv", [(1, 1.5, "AE")], "id,montant €,pays")
    version = data.ingest(str(source), "tx", description="paiements à l'été").version
    assert version is not None and version.source["url"] == str(source)
    assert [c["name"] for c in version.arrow_schema] == ["id", "montant €", "pays"]
    assert data.get_dataset("tx").description == "paiements à l'été"
    assert data.read_table(version, ["montant €"]).column("montant €").to_pylist() == [1.5]


def test_a_source_read_in_chunks_is_one_version_with_one_description(data: DataBackend) -> None:
    class Chunked:
        def batches(self) -> Iterator[Batch]:
            for first in (1, 3):
                yield Batch(pa.table({"id": [first, first + 1]}), {"kind": "sql", "query": "SELECT id"})

    version = data.ingest(Chunked(), "ids").version
    assert version is not None and version.rows == 4
    assert version.source == {"kind": "sql", "query": "SELECT id", "batches": 2}
    assert data.read_table(version).column("id").to_pylist() == [1, 2, 3, 4]
