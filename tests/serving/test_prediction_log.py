"""The prediction log's writer: every offered record lands (or is counted), in the right partition, typed.

Real Parquet files on a real filesystem; where a test must hold the writer back or make storage fail, it
passes a subclass of fsspec's local filesystem that waits or raises on writes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from steward.config import load_settings
from steward.errors import InvalidInput
from steward.serving.log_store import LogStore, read_predictions
from steward.serving.models import NamedColumns, PredictionRecord
from steward.serving.prediction_log import PredictionLog
from steward.store.platform import Platform

AT = datetime(2025, 3, 4, 10, 15, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)
HOUR_MS = 3_600_000
PART = re.compile(
    r"predictions/project=([\w.-]+)/endpoint=([\w.-]+)/hour=(\d{4}-\d\d-\d\dT\d\d)/part-[0-9a-f]{32}\.parquet$"
)
GUARD = 30.0  # seconds: only a deadlock guard, never a measured assertion


def record(
    request_id: str,
    *,
    project: str = "default",
    endpoint: str = "churn",
    version: str = "1.0.0",
    role: str = "stable",
    at_ms: int = AT_MS,
    inputs: Any = None,
    outputs: Any = None,
    status: int = 200,
) -> PredictionRecord:
    if inputs is None and status < 400:
        inputs = pd.DataFrame({"age": [41], "plan": ["gold"]})
    if outputs is None and status < 400:
        outputs = np.zeros(len(inputs))
    return PredictionRecord(
        project, endpoint, "churn-model", version, role, request_id, at_ms, inputs, outputs, 2.5, status
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def log(root: Path) -> Iterator[PredictionLog]:
    log = PredictionLog(str(root), flush_interval=0.05)
    yield log
    log.close()


def parts(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_records_offered_from_many_threads_all_land_in_hour_partitions(root: Path) -> None:
    log = PredictionLog(str(root), flush_interval=0.02, max_rows=500)
    threads, per_thread = 8, 150

    def serve(worker: int) -> None:
        for i in range(per_thread):
            rows = 1 + i % 3
            log.offer(
                record(
                    f"w{worker}-{i}",
                    project="alpha" if worker % 2 else "beta",
                    endpoint="churn" if i % 2 else "fraud",
                    at_ms=AT_MS + (i % 2) * HOUR_MS,  # this hour and the next
                    inputs=pd.DataFrame({"age": np.arange(rows) + worker, "plan": ["gold"] * rows}),
                    outputs=np.full(rows, worker, dtype=np.int64),
                )
            )

    workers = [threading.Thread(target=serve, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(GUARD)
    log.close()

    stats = log.stats()
    total_rows = threads * sum(1 + i % 3 for i in range(per_thread))
    assert stats["offered"] == stats["written"] == threads * per_thread
    assert (stats["dropped"], stats["failed"], stats["queued"], stats["rows"]) == (0, 0, 0, total_rows)
    files = parts(root)
    assert len(files) == stats["files"]
    matched = [PART.search(f) for f in files]
    assert all(matched), [f for f, m in zip(files, matched, strict=True) if not m]
    places = {m.groups() for m in matched if m}
    assert {(p, e) for p, e, _ in places} == {(p, e) for p in ("alpha", "beta") for e in ("churn", "fraud")}
    # Even requests (fraud) were answered in the first hour, odd ones (churn) in the next.
    assert {h for _, e, h in places if e == "fraud"} == {"2025-03-04T10"}
    assert {h for _, e, h in places if e == "churn"} == {"2025-03-04T11"}
    store = LogStore(str(root))
    read = sum(
        read_predictions(store, e, project=p).num_rows for p in ("alpha", "beta") for e in ("churn", "fraud")
    )
    assert read == total_rows
    table = read_predictions(store, "churn", project="alpha")
    assert table.column_names == [
        "request_id", "row", "at", "endpoint", "model", "version", "role", "latency_ms", "status",
        "in.age", "in.plan", "out.prediction",
    ]  # fmt: skip
    workers_in = {int(rid.split("-")[0][1:]) for rid in table.column("request_id").to_pylist()}
    assert workers_in == {1, 3, 5, 7}


def test_rows_carry_each_input_and_output_as_a_typed_column(log: PredictionLog, root: Path) -> None:
    frame = pd.DataFrame({"age": [30, 52], "income": [1200.5, 880.0], "plan": ["gold", "basic"]})
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7]])
    log.offer(record("frame-1", inputs=frame, outputs=probabilities))
    tensor = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    log.offer(record("tensor-1", endpoint="images", inputs=tensor, outputs=np.array(["cat", "dog", "cat"])))
    log.offer(record("bad-1", status=422))
    assert log.flush(GUARD)

    store = LogStore(str(root))
    table = read_predictions(store, "churn")
    schema = table.schema
    assert schema.field("at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("in.age").type == pa.int64()
    assert schema.field("in.income").type == pa.float64()
    assert schema.field("in.plan").type == pa.string()
    assert schema.field("out.prediction").type == pa.int64()
    assert pa.types.is_list(schema.field("out.scores").type)
    rows = table.to_pylist()
    assert [(r["request_id"], r["row"]) for r in rows] == [("bad-1", 0), ("frame-1", 0), ("frame-1", 1)]
    first = rows[1]
    assert first["at"] == AT
    assert (first["in.age"], first["in.plan"], first["out.prediction"], first["out.scores"]) == (
        30, "gold", 0, [0.9, 0.1],
    )  # fmt: skip
    assert (rows[2]["out.prediction"], rows[2]["out.scores"]) == (1, [0.3, 0.7])
    assert (rows[0]["status"], rows[0]["in.age"], rows[0]["out.prediction"]) == (422, None, None)

    images = read_predictions(store, "images").to_pylist()
    assert [r["in.x"] for r in images] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 11.0]]
    assert [r["out.prediction"] for r in images] == ["cat", "dog", "cat"]


def test_named_arrays_from_the_fast_path_land_as_a_dataframe_would(log: PredictionLog, root: Path) -> None:
    names = ("age", "income")
    for i in range(40):  # many single rows, as the server hands them over: concatenated once per batch
        block = NamedColumns(names, np.array([[20.0 + i, 100.0 * i]]))
        log.offer(record(f"named-{i:02d}", inputs=block, outputs=np.array([[0.25, 0.75]])))
    pair = NamedColumns(names, np.array([[1.0, 2.0], [3.0, 4.0]]))
    log.offer(record("named-pair", inputs=pair, outputs=np.array([[0.9, 0.1], [0.2, 0.8]])))
    frame = pd.DataFrame({"age": [70.0], "income": [5.0]})
    log.offer(record("frame", inputs=frame, outputs=np.array([[0.6, 0.4]])))
    assert log.flush(GUARD)

    rows = read_predictions(LogStore(str(root)), "churn").to_pylist()
    assert len(rows) == 43
    by_id = {(r["request_id"], r["row"]): r for r in rows}
    assert (by_id[("named-07", 0)]["in.age"], by_id[("named-07", 0)]["in.income"]) == (27.0, 700.0)
    assert [by_id[("named-pair", i)]["in.income"] for i in (0, 1)] == [2.0, 4.0]
    assert [by_id[("named-pair", i)]["out.prediction"] for i in (0, 1)] == [0, 1]
    assert by_id[("named-pair", 1)]["out.scores"] == [0.2, 0.8]
    assert (by_id[("frame", 0)]["in.age"], by_id[("frame", 0)]["out.prediction"]) == (70.0, 0)
    assert log.stats()["written"] == 42 and log.stats()["failed"] == 0


def test_versions_with_different_signatures_are_read_together(log: PredictionLog, root: Path) -> None:
    log.offer(record("old", version="1.0.0", inputs=pd.DataFrame({"age": [40], "plan": ["gold"]})))
    assert log.flush(GUARD)
    log.offer(
        record("new", version="2.0.0", role="canary", inputs=pd.DataFrame({"age": [40.5], "tenure": [7]}))
    )
    assert log.flush(GUARD)
    assert len(parts(root)) == 2
    rows = {r["request_id"]: r for r in read_predictions(LogStore(str(root)), "churn").to_pylist()}
    assert (rows["old"]["in.age"], rows["old"]["in.plan"], rows["old"]["in.tenure"]) == (40.0, "gold", None)
    assert (rows["new"]["in.age"], rows["new"]["in.plan"], rows["new"]["in.tenure"]) == (40.5, None, 7)
    assert (rows["new"]["version"], rows["new"]["role"]) == ("2.0.0", "canary")


def test_sampling_keeps_about_the_rate_and_each_request_whole(root: Path) -> None:
    log = PredictionLog(str(root), sample_rate=0.3, flush_interval=0.05)
    requests = 3000
    for i in range(requests):
        two_rows = pd.DataFrame({"age": [i, i + 1]})
        log.offer(record(f"req-{i}", inputs=two_rows))
        log.offer(record(f"req-{i}", version="2.0.0", role="shadow", inputs=two_rows))  # same request
    log.close()

    stats = log.stats()
    assert stats["offered"] == 2 * requests
    assert stats["sampled_out"] + stats["written"] == stats["offered"]
    kept = stats["written"] // 2
    assert 0.25 * requests < kept < 0.35 * requests
    table = read_predictions(LogStore(str(root)), "churn")
    per_request = table.group_by("request_id").aggregate([("version", "count_distinct"), ("row", "count")])
    assert per_request.num_rows == kept
    assert set(per_request.column("version_count_distinct").to_pylist()) == {2}
    assert set(per_request.column("row_count").to_pylist()) == {4}
    # The choice depends on the request id alone: another log (another worker) keeps the same requests.
    again = PredictionLog(str(root / "again"), sample_rate=0.3, flush_interval=0.05)
    for i in range(requests):
        again.offer(record(f"req-{i}"))
    again.close()
    ids = set(read_predictions(LogStore(str(root / "again")), "churn").column("request_id").to_pylist())
    assert ids == set(per_request.column("request_id").to_pylist())


class HeldFileSystem(LocalFileSystem):
    """A local filesystem whose writes wait until the test releases them."""

    def __init__(self) -> None:
        super().__init__(skip_instance_cache=True)
        self.writing = threading.Event()
        self.release = threading.Event()

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            self.writing.set()
            self.release.wait(GUARD)
        return super()._open(path, mode, *args, **kwargs)


def test_a_full_queue_drops_and_counts_records_and_never_blocks(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fs = HeldFileSystem()
    log = PredictionLog(str(root), queue_size=4, flush_interval=0.01, warn_interval=3600, filesystem=fs)
    log.offer(record("first"))
    assert fs.writing.wait(GUARD)  # the writer holds "first" and waits on the filesystem

    offering = threading.Thread(target=lambda: [log.offer(record(f"r{i}")) for i in range(10)])
    with caplog.at_level(logging.WARNING, logger="steward.serving.prediction_log"):
        offering.start()
        offering.join(GUARD)
    assert not offering.is_alive()  # no offer waited for the stuck writer
    stats = log.stats()
    assert (stats["offered"], stats["queued"], stats["dropped"], stats["written"]) == (11, 4, 6, 0)
    assert log.dropped == 6
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert warnings == ["prediction log: queue full (4 records), 1 records dropped so far"]

    fs.release.set()
    log.close()
    stats = log.stats()
    assert (stats["written"], stats["dropped"], stats["queued"]) == (5, 6, 0)
    ids = read_predictions(LogStore(str(root)), "churn").column("request_id").to_pylist()
    assert sorted(ids) == ["first", "r0", "r1", "r2", "r3"]


def test_close_writes_everything_queued(root: Path) -> None:
    log = PredictionLog(str(root), flush_interval=3600, max_rows=1_000_000)
    for i in range(5000):
        log.offer(record(f"r{i}"))
    assert parts(root) == []  # nothing is due yet: an hour-long interval
    log.close()
    assert log.stats()["written"] == 5000
    assert read_predictions(LogStore(str(root)), "churn").num_rows == 5000
    log.offer(record("late"))  # after close: counted as dropped, not queued
    assert (log.stats()["dropped"], log.stats()["queued"]) == (1, 0)
    assert not log.flush(1.0)


def test_max_rows_starts_a_new_file_within_an_interval(root: Path) -> None:
    log = PredictionLog(str(root), flush_interval=3600, max_rows=100)
    for i in range(250):
        log.offer(record(f"r{i}"))
    log.close()
    sizes = sorted(pq.read_metadata(root / f).num_rows for f in parts(root))
    assert sizes == [50, 100, 100]


def test_unusable_records_are_counted_and_the_rest_written(log: PredictionLog, root: Path) -> None:
    log.offer(record("escape", endpoint="../../etc"))
    log.offer(record("mismatch", inputs=pd.DataFrame({"age": [1, 2]}), outputs=np.array([1, 2, 3])))
    log.offer(record("fine"))
    log.close()
    stats = log.stats()
    assert (stats["failed"], stats["written"]) == (1, 2)
    assert all(f.startswith("predictions/project=default/endpoint=churn/") for f in parts(root))
    rows = {
        (r["request_id"], r["row"]): r for r in read_predictions(LogStore(str(root)), "churn").to_pylist()
    }
    assert set(rows) == {("mismatch", 0), ("mismatch", 1), ("fine", 0)}
    # Three answers for two rows cannot be paired with them: the inputs are kept, the outputs left null.
    assert [(rows["mismatch", i]["in.age"], rows["mismatch", i]["out.prediction"]) for i in (0, 1)] == [
        (1, None),
        (2, None),
    ]


class BrokenFileSystem(LocalFileSystem):
    """A local filesystem on which every write fails."""

    def __init__(self) -> None:
        super().__init__(skip_instance_cache=True)

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            raise OSError("no space left on device")
        return super()._open(path, mode, *args, **kwargs)


def test_a_storage_failure_is_retried_then_counted(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = PredictionLog(str(root), flush_interval=0.01, filesystem=BrokenFileSystem())
    log.offer(record("lost"))
    with caplog.at_level(logging.ERROR, logger="steward.serving.prediction_log"):
        log.close()
    assert (log.stats()["failed"], log.stats()["written"]) == (1, 0)
    assert "no space left on device" in caplog.text
    assert parts(root) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("sample_rate", 1.5),
        ("sample_rate", -0.1),
        ("queue_size", 0),
        ("max_rows", 2.5),
        ("flush_interval", 0),
    ],
)
def test_bad_options_are_refused_naming_them(root: Path, option: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        PredictionLog(str(root), **{option: value})
    assert caught.value.details["field"] == option


def test_two_projects_never_read_each_others_predictions(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", project="alpha")
    with PredictionLog.from_settings(settings, flush_interval=0.05) as log:
        log.offer(record("alpha-1", project="alpha"))
        log.offer(record("beta-1", project="beta"))
    assert read_predictions(settings, "churn").column("request_id").to_pylist() == ["alpha-1"]
    assert read_predictions(settings, "churn", project="beta").column("request_id").to_pylist() == ["beta-1"]
    platform = Platform.from_settings(settings)
    try:
        assert read_predictions(platform, "churn").column("request_id").to_pylist() == ["alpha-1"]
    finally:
        platform.close()
    assert read_predictions(settings, "churn", project="gamma").num_rows == 0


def test_a_window_reads_only_its_hours(log: PredictionLog, root: Path) -> None:
    for hour in range(3):
        log.offer(record(f"h{hour}", at_ms=AT_MS + hour * HOUR_MS))
    log.close()
    # A corrupt file in the first hour: a window that does not need that hour never opens it.
    (root / "predictions/project=default/endpoint=churn/hour=2025-03-04T10/part-0.parquet").write_bytes(
        b"junk"
    )
    store = LogStore(str(root))
    later = read_predictions(store, "churn", since=datetime(2025, 3, 4, 11, tzinfo=UTC))
    assert later.column("request_id").to_pylist() == ["h1", "h2"]
    middle = read_predictions(
        store, "churn", since=datetime(2025, 3, 4, 11, 15), until=datetime(2025, 3, 4, 12, 15)
    )  # naive times are UTC; until is exclusive
    assert middle.column("request_id").to_pylist() == ["h1"]
    assert read_predictions(store, "churn", since=datetime(2025, 3, 4, 11), limit=1).num_rows == 1
    with pytest.raises(InvalidInput):
        read_predictions(store, "churn")  # all hours: the corrupt file is read, and named as unreadable
    with pytest.raises(InvalidInput) as caught:
        read_predictions(store, "churn", since=AT, until=datetime(2025, 1, 1, tzinfo=UTC))
    assert caught.value.details["field"] == "since"
    with pytest.raises(InvalidInput) as caught:
        read_predictions(store, "no/such")
    assert caught.value.details["field"] == "endpoint"


@pytest.mark.s3
def test_the_log_writes_and_reads_on_s3(tmp_path: Path, s3_artifacts: Any) -> None:
    settings = load_settings(
        home=tmp_path / "home", artifacts=s3_artifacts.url, s3_endpoint_url=s3_artifacts.endpoint_url
    )
    with PredictionLog.from_settings(settings, flush_interval=0.05) as log:
        for i in range(20):
            log.offer(record(f"r{i}", inputs=pd.DataFrame({"age": [i]})))
    assert log.stats()["written"] == 20
    table = read_predictions(settings, "churn")
    assert table.column("request_id").to_pylist() == sorted(f"r{i}" for i in range(20))
    assert table.column("in.age").to_pylist() == sorted(range(20), key=lambda i: f"r{i}")
    store = LogStore.from_settings(settings)
    assert all(PART.search(f) for f in store.files(store.predictions_dir("default", "churn"), "hour"))


def _array_records(n: int, *, version: str = "1.0.0", at_ms: int = AT_MS) -> list[PredictionRecord]:
    names = ("age", "income", "tenure")
    found = []
    for i in range(n):
        rows = 1 + i % 3  # one request may carry several rows
        inputs = NamedColumns(names, np.arange(rows * 3, dtype=np.float64).reshape(rows, 3) + i)
        outputs = np.tile([[0.3, 0.7]] if i % 2 else [[0.8, 0.2]], (rows, 1))
        found.append(
            record(f"{version}-{i:03d}", version=version, at_ms=at_ms + i, inputs=inputs, outputs=outputs)
        )
    return found


def test_fast_path_records_make_the_table_the_general_path_makes() -> None:
    from steward.serving.log_columns import ColumnBuffer, group_key
    from steward.serving.prediction_log import _partition

    records = _array_records(30)
    keys = {group_key(r)[0] for r in records if group_key(r) is not None}  # type: ignore[index]
    assert len(keys) == 1  # one endpoint, version, hour and layout: one group
    buffer = ColumnBuffer(keys.pop())
    for r in records:
        _key, inputs, outputs = group_key(r)  # type: ignore[misc]
        buffer.add(r, inputs, outputs)
    [(tables, failed)] = _partition(records).values()  # array records handed to the writer directly
    assert failed == 0 and len(tables) == 1
    assert buffer.table().equals(tables[0][0])
    assert buffer.records == 30 and buffer.rows == sum(1 + i % 3 for i in range(30))
    for unfit in (record("frame"), record("objects", inputs=np.array([["a"]], dtype=object))):
        assert group_key(unfit) is None  # DataFrames and object arrays take the writer's general path


def test_fast_path_records_land_by_hour_and_version_and_are_bounded_by_the_queue(root: Path) -> None:
    fs = HeldFileSystem()
    log = PredictionLog(str(root), queue_size=100, flush_interval=0.01, warn_interval=3600, filesystem=fs)
    log.offer(_array_records(1, version="0.9.0")[0])
    assert fs.writing.wait(GUARD)  # the writer holds that one record at the filesystem
    offered = [*_array_records(60), *_array_records(50, version="1.1.0", at_ms=AT_MS + HOUR_MS)]
    for r in offered:
        log.offer(r)
    stats = log.stats()
    assert stats["offered"] == 111 and stats["queued"] == 100  # the bound holds
    assert stats["dropped"] >= 10 and stats["dropped"] + stats["queued"] <= 111
    fs.release.set()
    log.close()
    table = read_predictions(LogStore(str(root)), "churn")
    done = log.stats()
    assert done["written"] + done["dropped"] == 111 and table.num_rows == done["rows"]
    hours = sorted({PART.search(p).group(3) for p in parts(root) if PART.search(p)})  # type: ignore[union-attr]
    assert hours == ["2025-03-04T10", "2025-03-04T11"]
    assert {r.request_id for r in offered[:99]} <= set(table.column("request_id").to_pylist())
    versions = dict(
        zip(table.column("request_id").to_pylist(), table.column("version").to_pylist(), strict=True)
    )
    assert versions["1.1.0-000"] == "1.1.0" and versions["1.0.0-059"] == "1.0.0"
