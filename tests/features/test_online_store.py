"""The online store contract, run against every backend: the embedded SQLite file and Redis."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from steward.errors import InvalidInput, ServiceUnavailable
from steward.features.models import OnlineStore
from steward.features.online import decode_values, encode_values, records_from_table
from steward.features.online_redis import RedisOnlineStore
from steward.features.online_sqlite import SqliteOnlineStore
from tests.services import free_port, port_open, service_unavailable

REDIS_HOST = os.environ.get("STEWARD_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("STEWARD_TEST_REDIS_PORT", "6379"))


def _redis_store() -> Iterator[RedisOnlineStore]:
    """A store on the local Redis server under a key prefix of the test's own, removed afterwards."""
    if not port_open(REDIS_HOST, REDIS_PORT):
        service_unavailable("redis", f"nothing listens on {REDIS_HOST}:{REDIS_PORT}")
    import redis

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    prefix = f"steward-test:{uuid.uuid4().hex}:"
    with redis.Redis.from_url(url) as client:
        try:
            client.ping()
        except redis.RedisError as exc:
            service_unavailable("redis", f"{url} does not answer: {exc}")
        store = RedisOnlineStore(url, prefix=prefix)
        try:
            yield store
        finally:
            store.close()
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """Each backend in turn, empty."""
    if request.param == "sqlite":
        sqlite = SqliteOnlineStore(tmp_path / "online.db")
        yield sqlite
        sqlite.close()
    else:
        yield from _redis_store()


def _value(**features: object) -> bytes:
    return encode_values(features)


# -- the contract -----------------------------------------------------------------------------------


def test_written_values_are_read_back(store: OnlineStore) -> None:
    written = store.write("p", "stats", [("1", 100, _value(x=1.5)), ("2", 200, _value(x=None))])

    assert written == 2
    assert store.read("p", "stats", ["1", "2"]) == [(100, _value(x=1.5)), (200, _value(x=None))]
    assert store.read("p", "stats", ["2"]) == [(200, _value(x=None))]


def test_an_older_write_never_replaces_a_newer_value(store: OnlineStore) -> None:
    store.write("p", "stats", [("1", 200, _value(x="streamed"))])

    assert store.write("p", "stats", [("1", 100, _value(x="materialised"))]) == 0
    assert store.read("p", "stats", ["1"]) == [(200, _value(x="streamed"))]

    assert store.write("p", "stats", [("1", 200, _value(x="same time"))]) == 1
    assert store.read("p", "stats", ["1"]) == [(200, _value(x="same time"))]

    assert store.write("p", "stats", [("1", 300, _value(x="newer"))]) == 1
    assert store.read("p", "stats", ["1"]) == [(300, _value(x="newer"))]


def test_the_latest_of_one_entitys_records_in_a_write_wins(store: OnlineStore) -> None:
    records = [("1", 300, _value(x=3)), ("1", 100, _value(x=1)), ("1", 200, _value(x=2))]

    store.write("p", "stats", records)

    assert store.read("p", "stats", ["1"]) == [(300, _value(x=3))]


def test_unknown_keys_read_as_none_in_their_place(store: OnlineStore) -> None:
    store.write("p", "stats", [("a", 1, _value(x=1)), ("b", 2, _value(x=2))])

    assert store.read("p", "stats", ["a", "nobody", "b"]) == [(1, _value(x=1)), None, (2, _value(x=2))]
    assert store.read("p", "stats", ["nobody"]) == [None]
    assert store.read("p", "other_view", ["a", "b"]) == [None, None]
    assert store.read("p", "stats", []) == []


def test_reads_follow_the_order_of_the_keys(store: OnlineStore) -> None:
    store.write("p", "stats", [(str(i), i, _value(i=i)) for i in range(50)])
    keys = [str(i) for i in [49, 3, 17, 3, 0, 25]]

    found = store.read("p", "stats", keys)

    assert [decode_values(f[1])["i"] if f else None for f in found] == [49, 3, 17, 3, 0, 25]


def test_several_views_are_read_at_once_each_in_the_keys_order(store: OnlineStore) -> None:
    store.write("p", "spend", [("1", 100, _value(s=1.0)), ("3", 300, _value(s=3.0))])
    store.write("p", "activity", [("3", 30, _value(a=3)), ("2", 20, _value(a=2))])
    store.write("other", "spend", [("2", 9, _value(s=99.0))])

    keys = ["3", "2", "9", "1"]
    spend, activity, never = store.read_views("p", ["spend", "activity", "never-written"], keys)

    assert spend == [(300, _value(s=3.0)), None, None, (100, _value(s=1.0))]
    assert activity == [(30, _value(a=3)), (20, _value(a=2)), None, None]
    assert never == [None] * 4
    assert store.read_views("p", ["spend", "activity"], ["1"]) == [[(100, _value(s=1.0))], [None]]
    assert store.read_views("p", ["spend", "activity"], []) == [[], []]
    # each view reads as it does alone
    assert store.read_views("p", ["spend", "activity"], keys) == [
        store.read("p", "spend", keys),
        store.read("p", "activity", keys),
    ]


def test_a_project_never_sees_another_projects_values(store: OnlineStore) -> None:
    store.write("alpha", "stats", [("1", 10, _value(owner="alpha"))])
    store.write("beta", "stats", [("1", 20, _value(owner="beta")), ("2", 20, _value(owner="beta"))])

    assert store.read("alpha", "stats", ["1", "2"]) == [(10, _value(owner="alpha")), None]
    assert store.delete("alpha", "stats") == 1
    assert store.read("beta", "stats", ["1"]) == [(20, _value(owner="beta"))]


def test_delete_removes_one_views_entities_and_counts_them(store: OnlineStore) -> None:
    store.write("p", "stats", [(str(i), 1, _value(i=i)) for i in range(5)])
    store.write("p", "profile", [("0", 1, _value(age=40))])

    assert store.delete("p", "stats") == 5

    assert store.read("p", "stats", ["0", "4"]) == [None, None]
    assert store.read("p", "profile", ["0"]) == [(1, _value(age=40))]
    assert store.delete("p", "stats") == 0


def test_ten_thousand_records_are_written_and_read_in_bulk(store: OnlineStore) -> None:
    n = 10_000
    table = pa.table(
        {
            "id": list(range(n)),
            "ts": pa.array([1_700_000_000_000_000 + i for i in range(n)], pa.timestamp("us", tz="UTC")),
            "x": [i / 7 for i in range(n)],
        }
    )
    records = records_from_table(table, ["id"], "ts", ["x"])

    assert store.write("p", "stats", records) == n
    found = store.read("p", "stats", [str(i) for i in range(n)])

    assert found == [(ts, value) for _, ts, value in records]
    assert store.write("p", "stats", [(k, ts - 1, value) for k, ts, value in records]) == 0


def test_threads_read_and_write_at_once(store: OnlineStore) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(w: int) -> None:
        try:
            start.wait()
            for ts in range(1, 31):
                store.write("p", "stats", [(f"{w}-{k}", ts, _value(ts=ts)) for k in range(20)])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            start.wait()
            for _ in range(60):
                for found in store.read("p", "stats", [f"{w}-{k}" for w in range(3) for k in range(20)]):
                    assert found is None or decode_values(found[1]) == {"ts": found[0]}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert store.read("p", "stats", ["0-0", "2-19"]) == [(30, _value(ts=30)), (30, _value(ts=30))]


def test_a_closed_store_reconnects_when_used_again(store: OnlineStore) -> None:
    store.write("p", "stats", [("1", 1, _value(x=1))])

    store.close()

    assert store.read("p", "stats", ["1"]) == [(1, _value(x=1))]


# -- backend specifics ------------------------------------------------------------------------------


def test_sqlite_values_survive_reopening_the_file(tmp_path: Path) -> None:
    first = SqliteOnlineStore(tmp_path / "deep" / "online.db")
    first.write("p", "stats", [("1", 5, _value(x=2.5))])
    first.close()

    again = SqliteOnlineStore(tmp_path / "deep" / "online.db")

    assert again.read("p", "stats", ["1"]) == [(5, _value(x=2.5))]
    again.close()


def test_sqlite_that_cannot_open_its_file_is_unavailable_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")

    with pytest.raises(ServiceUnavailable, match="a-file") as caught:
        SqliteOnlineStore(tmp_path / "a-file" / "online.db")

    assert caught.value.details["store"] == "sqlite"


def test_unreachable_redis_is_unavailable_without_showing_the_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    store = RedisOnlineStore(url, socket_connect_timeout=0.5)

    with pytest.raises(ServiceUnavailable) as caught:
        store.read("p", "stats", ["1"])

    assert "127.0.0.1" in caught.value.message
    assert "hunter2" not in caught.value.message
    assert "hunter2" not in str(caught.value.details)
    with pytest.raises(ServiceUnavailable):
        store.write("p", "stats", [("1", 1, b"{}")])
    store.close()


def test_redis_without_its_package_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(InvalidInput, match=r"pip install 'steward-ml\[redis\]'"):
        RedisOnlineStore("redis://127.0.0.1:6379/0")


def test_redis_refuses_names_that_could_reach_another_tenants_keys() -> None:
    store = RedisOnlineStore("redis://127.0.0.1:6379/0")

    with pytest.raises(InvalidInput, match="':'"):
        store.read("a:b", "stats", ["1"])
    store.close()
