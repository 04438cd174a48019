"""The Redis stream connector on the local Redis: micro-batches, acknowledgement, checkpoints, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from steward.config import load_settings
from steward.data.connectors import Batch, RedisStreamConnector, connector_for
from steward.data.service import DataService
from steward.errors import InvalidInput, ServiceUnavailable
from steward.store.platform import Platform
from tests.data.connectors.conftest import RedisKeys
from tests.services import free_port

pytestmark = pytest.mark.redis

GROUP = "ingest"


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataService]:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    yield DataService(platform)
    platform.close()


@pytest.fixture
def stream(redis_keys: RedisKeys) -> Iterator[Stream]:
    with Stream(redis_keys) as s:
        yield s


class Stream:
    """One test's stream, and a client to add entries and look at the group's state."""

    def __init__(self, keys: RedisKeys) -> None:
        import redis

        self.url = keys.url
        self.key = f"{keys.prefix}events"
        self.client = redis.Redis.from_url(keys.url, decode_responses=True)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def add(self, n: int, start: int = 1) -> list[str]:
        """Add entries ``start`` … ``start + n - 1`` (fields n, name, price); return their ids."""
        return [
            str(self.client.xadd(self.key, {"n": i, "name": f"e{i}", "price": i / 2}))
            for i in range(start, start + n)
        ]

    def source(self, **options: Any) -> dict[str, Any]:
        return {"redis_stream": self.key, "url": self.url, "group": GROUP, "block_ms": 0, **options}

    def pending(self) -> int:
        return int(self.client.xpending(self.key, GROUP)["pending"])

    def checkpoint(self, consumer: str = "steward") -> str | None:
        value = self.client.hget(f"steward:ckpt:{self.key}:{GROUP}", consumer)
        return None if value is None else str(value)


def generator(connector: RedisStreamConnector) -> Generator[Batch, None, None]:
    """The connector's batches as the generator they are, to close it as a crashed reader would."""
    return cast("Generator[Batch, None, None]", connector.batches())


def published_ids(data: DataService, name: str) -> list[str]:
    """Every entry id in every version of ``name``, in version order."""
    return [i for v in data.list_versions(name) for i in data.read_table(v).column("_id").to_pylist()]


@pytest.mark.parametrize(
    "options", ["", "?protocol=3", "?decode_responses=True"], ids=["resp2", "resp3", "decoded"]
)
def test_a_stream_is_published_in_micro_batches_and_acknowledged(
    stream: Stream, data: DataService, options: str
) -> None:
    ids = stream.add(25)
    result = data.ingest({**stream.source(batch_size=10), "url": stream.url + options}, "events")
    assert [v.rows for v in result.versions] == [10, 10, 5]
    assert published_ids(data, "events") == ids
    first = data.read_table(result.versions[0])
    assert first.schema.names == ["_id", "n", "name", "price"]
    assert [str(t) for t in first.schema.types] == ["string", "int64", "string", "double"]
    assert first.to_pylist()[0] == {"_id": ids[0], "n": 1, "name": "e1", "price": 0.5}
    assert result.versions[1].source == {
        "kind": "redis_stream", "stream": stream.key, "group": GROUP, "first_id": ids[10], "last_id": ids[19],
    }  # fmt: skip
    assert stream.pending() == 0 and stream.checkpoint() == ids[-1]


def test_a_second_ingestion_reads_only_what_is_new(stream: Stream, data: DataService) -> None:
    first = stream.add(4)
    data.ingest(stream.source(), "events")
    assert data.ingest(stream.source(), "events").versions == ()
    later = stream.add(3, start=5)
    result = data.ingest(stream.source(), "events")
    assert [v.number for v in result.versions] == [2]
    assert published_ids(data, "events") == first + later


def test_an_uncommitted_batch_is_delivered_again_identical_and_a_committed_one_never(stream: Stream) -> None:
    ids = stream.add(9)
    connector = RedisStreamConnector(stream.url, stream.key, GROUP, batch_size=3, block_ms=0)
    reader = generator(connector)
    next(reader).commit()
    uncommitted = next(reader)  # the reader "dies" before committing it
    reader.close()
    assert stream.pending() == 3 and stream.checkpoint() == ids[2]
    again = list(connector.batches())
    assert again[0].table == uncommitted.table
    assert [b.table.column("_id").to_pylist() for b in again] == [ids[3:6], ids[6:9]]
    for batch in again:
        batch.commit()
    assert stream.pending() == 0 and stream.checkpoint() == ids[-1]


def test_a_recreated_group_does_not_deliver_committed_entries_again(
    stream: Stream, data: DataService
) -> None:
    ids = stream.add(6)
    data.ingest(stream.source(batch_size=4), "events")
    stream.client.xgroup_destroy(stream.key, GROUP)  # the next ingestion creates it again from "0"
    stream.add(2, start=7)
    result = data.ingest(stream.source(batch_size=4), "events")
    assert [v.rows for v in result.versions] == [2]
    assert published_ids(data, "events") == ids + published_ids(data, "events")[6:]
    assert len(set(published_ids(data, "events"))) == 8 and stream.pending() == 0


def test_commits_out_of_order_move_the_checkpoint_only_over_the_committed_prefix(stream: Stream) -> None:
    ids = stream.add(6)
    first, second, third = RedisStreamConnector(
        stream.url, stream.key, GROUP, batch_size=2, block_ms=0
    ).batches()
    second.commit()
    assert stream.pending() == 4 and stream.checkpoint() is None
    first.commit()
    assert stream.pending() == 2 and stream.checkpoint() == ids[3]
    third.commit()
    third.commit()  # twice is harmless
    assert stream.pending() == 0 and stream.checkpoint() == ids[5]


def test_max_batches_stops_early_and_leaves_the_rest_for_the_next_call(
    stream: Stream, data: DataService
) -> None:
    ids = stream.add(12)
    assert len(data.ingest(stream.source(batch_size=5, max_batches=2), "events").versions) == 2
    assert stream.pending() == 0 and stream.checkpoint() == ids[9]
    assert [v.rows for v in data.ingest(stream.source(batch_size=5), "events").versions] == [2]
    assert published_ids(data, "events") == ids


def test_a_read_waits_block_ms_for_new_entries(stream: Stream) -> None:
    stream.add(1)
    added: list[str] = []
    timer = threading.Timer(0.2, lambda: added.extend(stream.add(1, start=2)))
    timer.start()
    started = time.monotonic()
    try:
        batches = list(RedisStreamConnector(stream.url, stream.key, GROUP, block_ms=600).batches())
    finally:
        timer.join()
    assert [b.table.column("n").to_pylist() for b in batches] == [[1], [2]]
    assert 0.7 < time.monotonic() - started < 3  # the entry that came late, then one wait for nothing


def test_fields_become_typed_columns_and_a_field_mixing_types_stays_text(stream: Stream) -> None:
    stream.client.xadd(stream.key, {"v": "1", "tags": '["a", "b"]', "only_here": "x"})
    stream.client.xadd(stream.key, {"v": "one", "tags": '["c"]'})
    (batch,) = connector_for(stream.source()).batches()
    assert batch.table.column("v").to_pylist() == ["1", "one"]
    assert batch.table.column("tags").to_pylist() == [["a", "b"], ["c"]]
    assert batch.table.column("only_here").to_pylist() == ["x", None]
    (named,) = connector_for(stream.source(id_column=None, group="other")).batches()
    assert named.table.column_names == ["v", "tags", "only_here"]


def test_bytes_that_are_not_text_stay_bytes_and_odd_field_names_are_escaped(stream: Stream) -> None:
    stream.client.xadd(stream.key, {b"blob": b"\xff\x00", b"caf\xe9": b"x"})
    (batch,) = connector_for(stream.source()).batches()
    assert batch.table.column_names == ["_id", "blob", "caf\\xe9"]
    assert batch.table.column("blob").to_pylist() == [b"\xff\x00"]


def test_a_field_named_like_the_id_column_is_invalid_input(stream: Stream) -> None:
    stream.client.xadd(stream.key, {"_id": "mine"})
    with pytest.raises(InvalidInput, match="field named '_id': pass another id_column"):
        list(connector_for(stream.source()).batches())


def test_quarantined_batches_are_acknowledged_too(stream: Stream, data: DataService) -> None:
    stream.add(4)
    checks = {"columns": {"n": {"type": "int64", "max": 2}}}
    result = data.ingest(stream.source(batch_size=2), "events", expectations=checks)
    assert [v.rows for v in result.versions] == [2] and [q.rows for q in result.quarantined] == [2]
    assert stream.pending() == 0
    assert data.ingest(stream.source(), "events").quarantined == ()


def test_an_entry_deleted_while_pending_is_acknowledged_and_skipped(stream: Stream) -> None:
    ids = stream.add(3)
    connector = RedisStreamConnector(stream.url, stream.key, GROUP, block_ms=0)
    reader = generator(connector)
    next(reader)
    reader.close()
    stream.client.xdel(stream.key, ids[1])
    (batch,) = connector.batches()
    assert batch.table.column("_id").to_pylist() == [ids[0], ids[2]]
    batch.commit()
    assert stream.pending() == 0


def test_a_key_that_is_not_a_stream_is_invalid_input(stream: Stream) -> None:
    stream.client.set(stream.key, "plain string")
    with pytest.raises(InvalidInput, match=r"Redis refused a command on .*WRONGTYPE"):
        list(connector_for(stream.source()).batches())


def test_an_unreachable_redis_is_service_unavailable_without_the_password(data: DataService) -> None:
    port = free_port()
    source = {"redis_stream": "events", "url": f"redis://:hunter2@127.0.0.1:{port}/0", "group": GROUP}
    with pytest.raises(
        ServiceUnavailable, match=f"cannot read redis://:\\*\\*\\*@127.0.0.1:{port}/0"
    ) as caught:
        data.ingest(source, "unreachable")
    assert "hunter2" not in "".join(traceback.format_exception(caught.value))
    assert data.list_datasets() == []  # nothing was read, so nothing was created


# -- a crash midway: SIGKILL an ingestion in another process, then start it again ----------------------

CHILD = '''
import sys, time
from steward.config import load_settings
from steward.data.connectors import Batch, connector_for
from steward.data.service import DataService
from steward.store.platform import Platform

home, url, stream, group, stop_at, where = sys.argv[1:]

def say(line):
    print(line, flush=True)

class StopsOnce:
    """The stream's batches, saying each step on stdout and stopping for good at batch `stop_at`."""

    def __init__(self, inner):
        self.inner = inner

    def batches(self):
        for number, batch in enumerate(self.inner.batches(), 1):
            if number == int(stop_at) and where == "before-publish":
                say(f"stopped {number}")
                time.sleep(120)

            def commit(batch=batch, number=number):
                if number == int(stop_at) and where == "before-commit":
                    say(f"stopped {number}")
                    time.sleep(120)
                batch.commit()
                say(f"committed {number}")

            yield Batch(batch.table, batch.source, commit)

source = {"redis_stream": stream, "url": url, "group": group, "batch_size": 5, "block_ms": 0}
service = DataService(Platform.from_settings(load_settings(home=home)))
service.ingest(StopsOnce(connector_for(source)), "events")
say("done")
'''


def run_until_stopped(tmp_path: Path, stream: Stream, stop_at: int, where: str) -> list[str]:
    """Run an ingestion in a child process; SIGKILL it once it stops at batch ``stop_at``.

    Returns:
        The lines the child printed.
    """
    script = tmp_path / "ingest_child.py"
    script.write_text(textwrap.dedent(CHILD))
    home = str(tmp_path / "home")
    args = [sys.executable, str(script), home, stream.url, stream.key, GROUP, str(stop_at), where]
    lines: list[str] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stderr is not None
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("stopped"):
                os.kill(child.pid, signal.SIGKILL)
                break
        child.wait(30)
        errors = child.stderr.read()
    assert child.returncode == -signal.SIGKILL, f"the child ended by itself: {lines} {errors}"
    return lines


@pytest.mark.parametrize("where", ["before-publish", "before-commit"])
def test_a_killed_ingestion_restarts_without_losing_or_duplicating_entries(
    tmp_path: Path, stream: Stream, where: str
) -> None:
    ids = stream.add(25)  # five batches of five
    lines = run_until_stopped(tmp_path, stream, stop_at=3, where=where)
    assert lines == ["committed 1", "committed 2", "stopped 3"]
    assert stream.pending() == 5 and stream.checkpoint() == ids[9]

    platform = Platform.from_settings(load_settings(home=tmp_path / "home"))
    try:
        data = DataService(platform)
        before = len(data.list_versions("events"))
        assert before == (3 if where == "before-commit" else 2)  # batch 3 was published, or not yet
        result = data.ingest(stream.source(batch_size=5), "events")
        assert result.reused[0] is (where == "before-commit")  # re-delivered identical: the same version
        assert published_ids(data, "events") == ids  # every entry exactly once, in order
        assert [v.rows for v in data.list_versions("events")] == [5] * 5
    finally:
        platform.close()
    assert stream.pending() == 0 and stream.checkpoint() == ids[-1]
