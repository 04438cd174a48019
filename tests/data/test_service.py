"""Datasets end to end: ingest → validate → publish or quarantine, content addressing, reading back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import select

import steward
from steward.config import load_settings
from steward.data.models import QuarantineStatus
from steward.data.service import DataService
from steward.errors import Conflict, InvalidInput, NotFound
from steward.store.platform import Platform
from steward.store.tables import lineage_edges

EXPECTATIONS = {
    "columns": {
        "id": {"type": "int64", "nullable": False, "unique": True},
        "amount": {"type": "float64", "min": 0},
        "country": {"type": "string", "allowed": ["AE", "FR"]},
    },
    "min_rows": 1,
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataService]:
    """The data service on SQLite or PostgreSQL, with its blobs in ``tmp_path``."""
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    yield DataService(platform)
    platform.close()


def write_csv(path: Path, rows: list[tuple[int, float, str]]) -> Path:
    lines = ["id,amount,country"] + [f"{i},{a},{c}" for i, a, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingested_csv_becomes_a_profiled_version_that_reads_back(data: DataService, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "tx.csv", [(1, 10.5, "AE"), (2, 20.0, "FR"), (3, 7.25, "AE")])
    result = data.ingest(str(source), "transactions", expectations=EXPECTATIONS)
    version = result.version
    assert version is not None and result.quarantined == ()
    assert (version.ref, version.rows, version.region) == ("transactions@1", 3, "default")
    assert [c["name"] for c in version.arrow_schema] == ["id", "amount", "country"]
    assert version.source["kind"] == "file"
    columns = {c["name"]: c for c in version.profile["columns"]}
    assert columns["amount"]["max"] == 20.0 and columns["id"]["null_count"] == 0
    table = data.read_table(version)
    assert table.column("amount").to_pylist() == [10.5, 20.0, 7.25]


def test_the_same_data_is_the_same_version_and_new_data_a_new_one(data: DataService, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "tx.csv", [(1, 1.0, "AE")])
    first = data.ingest(str(source), "transactions").version
    again = data.ingest(str(source), "transactions")
    assert again.version == first and again.reused == (True,)
    write_csv(source, [(1, 1.0, "AE"), (2, 2.0, "FR")])
    second = data.ingest(str(source), "transactions").version
    assert second is not None and second.number == 2
    assert [v.number for v in data.list_versions("transactions")] == [1, 2]
    assert data.get_version("transactions").number == 2
    assert data.get_dataset("transactions").latest_version == 2


def test_a_failing_batch_is_quarantined_with_its_report_not_published(
    data: DataService, tmp_path: Path
) -> None:
    data.create_dataset("transactions", expectations=EXPECTATIONS)
    bad = write_csv(tmp_path / "bad.csv", [(1, -5.0, "AE"), (1, 3.0, "XX")])
    result = data.ingest(str(bad), "transactions")
    assert result.versions == () and len(result.quarantined) == 1
    held = result.quarantined[0]
    assert held.status is QuarantineStatus.HELD and held.rows == 2
    failed = {(r["check"], r["column"]) for r in held.report["results"] if not r["passed"]}
    assert {("range", "amount"), ("allowed", "country"), ("unique", "id")} <= failed
    with pytest.raises(NotFound):
        data.get_version("transactions")
    assert [b.id for b in data.list_quarantine("transactions")] == [held.id]

    released = data.release(held.id, reason="checked by hand")
    assert released.number == 1 and released.source["kind"] == "quarantine"
    assert data.get_quarantined(held.id).status is QuarantineStatus.RELEASED
    with pytest.raises(Conflict):
        data.drop(held.id)
    assert data.list_quarantine("transactions") == []


def test_a_dropped_batch_keeps_who_and_why(data: DataService, tmp_path: Path) -> None:
    data.create_dataset("transactions", expectations=EXPECTATIONS)
    held = data.ingest(str(write_csv(tmp_path / "bad.csv", [(1, -1.0, "AE")])), "transactions").quarantined[0]
    dropped = data.drop(held.id, reason="test data")
    assert (dropped.status, dropped.resolution) == (QuarantineStatus.DROPPED, "test data")
    assert dropped.resolved_by and dropped.resolved_at is not None
    assert data.list_quarantine("transactions", status=None)[0].id == held.id


def test_malformed_source_names_the_file_and_publishes_nothing(data: DataService, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text('id,amount,country\n1,2.0,AE\n2,"3.0,FR\n')
    with pytest.raises(InvalidInput, match=r"broken\.csv"):
        data.ingest(str(broken), "transactions")
    with pytest.raises(NotFound, match=r"missing\.csv"):
        data.ingest(str(tmp_path / "missing.csv"), "transactions", expectations=EXPECTATIONS)
    assert data.list_datasets() == []  # not even an empty dataset is left behind
    assert not (data.platform.settings.home / "artifacts" / "blobs").exists()


def test_each_version_records_where_it_came_from_as_lineage(data: DataService, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "tx.csv", [(1, 1.0, "AE")])
    version = data.ingest(str(source), "transactions").version
    assert version is not None
    with data.platform.metadata.read() as conn:
        edges = conn.execute(select(lineage_edges).where(lineage_edges.c.target_id == version.id)).all()
    assert [(e.source_kind, e.relation) for e in edges] == [("source", "ingested_from")]
    assert "tx.csv" in edges[0].source_id


def test_bad_dataset_name_and_bad_expectations_are_refused(data: DataService, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "tx.csv", [(1, 1.0, "AE")])
    with pytest.raises(InvalidInput):
        data.ingest(str(source), "bad name")
    with pytest.raises(InvalidInput):
        data.ingest(str(source), "transactions", expectations={"columns": {"id": {"type": "nope"}}})


def test_sdk_ingests_and_reads_back_as_pandas(steward_home: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [1, 2], "amount": [1.5, 2.5], "country": ["AE", "FR"]})
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path)
    result = steward.ingest(str(path), "transactions", expectations=EXPECTATIONS)
    assert result.version is not None and result.version.ref == "transactions@1"
    back = steward.get_dataset("transactions", format="pandas")
    pd.testing.assert_frame_equal(back, frame)
    assert isinstance(steward.get_dataset("transactions", 1), pa.Table)
    assert [d.name for d in steward.list_datasets()] == ["transactions"]
    assert steward.get_dataset_version("transactions").rows == 2


def test_a_query_read_in_chunks_is_one_version_with_one_source(data: DataService, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, amount REAL, country TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, float(i), "AE") for i in range(1, 11)])
    result = data.ingest({"sql": "SELECT * FROM t", "url": f"sqlite:///{db}"}, "tx", batch_rows=3)
    version = result.version
    assert version is not None and version.rows == 10 and len(result.versions) == 1
    assert (version.source["kind"], version.source["query"], version.source["batches"]) == (
        "sql",
        "SELECT * FROM t",
        4,
    )


def test_ingest_returns_the_report_of_every_checked_batch(data: DataService, tmp_path: Path) -> None:
    good = data.ingest(str(write_csv(tmp_path / "ok.csv", [(1, 1.0, "AE")])), "tx", expectations=EXPECTATIONS)
    bad = data.ingest(str(write_csv(tmp_path / "bad.csv", [(2, -1.0, "AE")])), "tx")
    assert [r["passed"] for r in good.reports] == [True] and good.reports[0]["rows"] == 1
    [report] = bad.reports
    assert not report["passed"] and report == dict(bad.quarantined[0].report)
    assert data.ingest(pa.table({"x": [1]}), "unchecked").reports == ()


def test_an_unknown_quarantine_status_is_invalid_input(data: DataService) -> None:
    with pytest.raises(InvalidInput, match="HELD, RELEASED, DROPPED"):
        data.list_quarantine(status="bogus")


def test_polars_frames_go_in_and_come_out(steward_home: Path) -> None:
    import polars as pl

    frame = pl.DataFrame({"id": [1, 2], "city": ["Dubai", "Abu Dhabi"]})
    result = steward.ingest(frame, "cities")
    assert result.version is not None and result.version.rows == 2
    back = steward.get_dataset("cities", format="polars")
    assert isinstance(back, pl.DataFrame) and back.equals(frame)
    with pytest.raises(InvalidInput, match="unknown format"):
        steward.get_dataset("cities", format="excel")  # type: ignore[arg-type]
