"""The online store's logic: entity keys, value encoding, records from tables, reads and their statuses."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from steward.config import Settings
from steward.errors import InvalidInput
from steward.features.models import (
    STATUS_NOT_FOUND,
    STATUS_OUTSIDE_TTL,
    STATUS_PRESENT,
    DatasetSource,
    Feature,
    FeatureView,
    OnlineRecord,
)
from steward.features.online import (
    decode_values,
    encode_values,
    entity_key,
    entity_keys,
    open_online_store,
    read_online,
    records_from_table,
)
from steward.features.online_redis import RedisOnlineStore
from steward.features.online_sqlite import SqliteOnlineStore

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _us(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


class MemoryStore:
    """An online store in a dict that counts its reads."""

    name = "memory"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], tuple[int, bytes]] = {}
        self.reads: list[tuple[str, str, list[str]]] = []

    def write(self, project: str, view: str, records: Iterable[OnlineRecord]) -> int:
        n = 0
        for key, ts, value in records:
            old = self.rows.get((project, view, key))
            if old is None or ts >= old[0]:
                self.rows[(project, view, key)] = (ts, value)
                n += 1
        return n

    def read(self, project: str, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        self.reads.append((project, view, list(keys)))
        return [self.rows.get((project, view, k)) for k in keys]

    def read_views(
        self, project: str, views: Sequence[str], keys: Sequence[str]
    ) -> list[list[tuple[int, bytes] | None]]:
        return [self.read(project, view, keys) for view in views]

    def delete(self, project: str, view: str) -> int:
        gone = [k for k in self.rows if k[:2] == (project, view)]
        for k in gone:
            del self.rows[k]
        return len(gone)

    def close(self) -> None:
        pass


def _view(name: str, features: Sequence[str], ttl: timedelta | None = None) -> FeatureView:
    return FeatureView(
        name=name,
        entities=("customer",),
        source=DatasetSource("transactions"),
        timestamp="event_timestamp",
        features=tuple(Feature(f) for f in features),
        ttl=ttl,
    )


# -- entity keys ------------------------------------------------------------------------------------


def test_an_integer_key_and_its_text_are_the_same_entity() -> None:
    assert entity_key([42]) == entity_key(["42"]) == entity_key([np.int64(42)]) == entity_key([42.0]) == "42"
    assert entity_key("42") == "42"
    assert entity_key([-7]) == "-7"


def test_key_values_of_other_types_have_a_stable_text_form() -> None:
    assert entity_key([0.5]) == "0.5"
    assert entity_key([True]) == "true"
    assert entity_key([np.bool_(False)]) == "false"
    assert entity_key([date(2024, 5, 1)]) == "2024-05-01"
    assert entity_key([NOW]) == "2024-05-01T12:00:00+00:00"


def test_composite_keys_join_their_parts_unambiguously() -> None:
    assert entity_key(["a", 7]) == "a|7"
    assert entity_key(["a|b", "c"]) != entity_key(["a", "b|c"])
    assert entity_key(["a\\", "b"]) != entity_key(["a", "\\b"])
    assert entity_key(["a\\|", "b"]) != entity_key(["a\\", "|b"])


@pytest.mark.parametrize("values", [[None], [float("nan")], ["a", None], []])
def test_a_key_without_a_value_is_refused(values: list[object]) -> None:
    with pytest.raises(InvalidInput, match="no value"):
        entity_key(values)


def test_table_keys_are_the_keys_of_each_row() -> None:
    table = pa.table(
        {
            "i": pa.array([1, -2, 300], pa.int32()),
            "s": ["x", "a|b", "back\\slash"],
            "f": [1.0, 0.25, 1e20],
            "b": [True, False, True],
            "d": pa.array(["u", "v", "u"]).dictionary_encode(),
            "t": pa.array([NOW, NOW, NOW], pa.timestamp("us", tz="UTC")),
        }
    )
    rows = table.to_pylist()

    for columns in (["i"], ["s"], ["f"], ["b"], ["d"], ["t"], ["i", "s"], ["s", "f", "b"]):
        assert entity_keys(table, columns) == [entity_key([row[c] for c in columns]) for row in rows]


def test_a_key_column_with_a_missing_value_is_named() -> None:
    table = pa.table({"customer_id": [1, None, 3]})

    with pytest.raises(InvalidInput, match=r"'customer_id'.*row 1") as caught:
        entity_keys(table, ["customer_id"])

    assert caught.value.details["field"] == "customer_id"


# -- values -----------------------------------------------------------------------------------------


def test_floats_round_trip_exactly_and_none_stays_none() -> None:
    rng = random.Random(7)
    values: dict[str, object] = {f"f{i}": rng.uniform(-1e6, 1e6) for i in range(50)}
    values.update(tiny=5e-324, huge=1.7976931348623157e308, third=1 / 3, missing=None, n=7, text="é|,")

    decoded = decode_values(encode_values(values))

    assert decoded == values
    assert all(type(decoded[k]) is type(v) for k, v in values.items())


def test_values_json_cannot_hold_become_null() -> None:
    decoded = decode_values(encode_values({"nan": float("nan"), "inf": math.inf, "ninf": -math.inf}))

    assert decoded == {"nan": None, "inf": None, "ninf": None}


def test_timestamps_are_stored_as_utc_iso_strings() -> None:
    values = {
        "aware": NOW,
        "naive": datetime(2024, 5, 1, 12, 0),
        "pandas": pd.Timestamp("2024-05-01 12:00", tz="UTC"),
        "numpy": np.float32(0.5),
        "decimal": Decimal("1.25"),
    }

    decoded = decode_values(encode_values(values))

    assert decoded["aware"] == decoded["naive"] == decoded["pandas"] == "2024-05-01T12:00:00+00:00"
    assert decoded["numpy"] == 0.5
    assert decoded["decimal"] == 1.25


def test_a_value_that_cannot_be_stored_names_its_feature() -> None:
    with pytest.raises(InvalidInput, match="'weird'") as caught:
        encode_values({"fine": 1.0, "weird": object()})

    assert caught.value.details["field"] == "weird"


# -- records from a table ---------------------------------------------------------------------------


def _table(**extra: pa.Array | list[object]) -> pa.Table:
    columns: dict[str, pa.Array | list[object]] = {
        "customer_id": [1, 2, 3],
        "event_timestamp": pa.array([NOW, NOW + timedelta(seconds=1), NOW], pa.timestamp("us", tz="UTC")),
        "spend": [1.5, None, float("nan")],
        "count": pa.array([1, 2, None], pa.int64()),
        "vip": [True, False, None],
        "city": ['Paris, "FR"', None, "Köln"],
    }
    columns.update(extra)
    return pa.table(columns)


def test_records_carry_keys_event_times_and_the_rows_values() -> None:
    table = _table()
    features = ["spend", "count", "vip", "city"]

    records = records_from_table(table, ["customer_id"], "event_timestamp", features)

    assert [(k, t) for k, t, _ in records] == [("1", _us(NOW)), ("2", _us(NOW) + 1_000_000), ("3", _us(NOW))]
    expected = [{f: row[f] for f in features} for row in table.to_pylist()]
    expected[2]["spend"] = None  # NaN is stored as null
    assert [decode_values(v) for _, _, v in records] == expected
    assert records[0][2] == encode_values(expected[0])


def test_records_accept_naive_nanosecond_and_date_event_times() -> None:
    naive = pa.array([datetime(2024, 5, 1, 12, 0)] * 3, pa.timestamp("ns"))
    dates = pa.array([date(2024, 5, 1)] * 3, pa.date32())

    from_naive = records_from_table(_table(event_timestamp=naive), ["customer_id"], "event_timestamp", [])
    from_dates = records_from_table(_table(event_timestamp=dates), ["customer_id"], "event_timestamp", [])

    assert {t for _, t, _ in from_naive} == {_us(NOW)}
    assert {t for _, t, _ in from_dates} == {_us(datetime(2024, 5, 1, tzinfo=UTC))}
    assert {v for _, _, v in from_naive} == {b"{}"}


def test_feature_names_with_percent_signs_are_encoded_as_they_are() -> None:
    table = pa.table({"k": ["a"], "ts": pa.array([NOW], pa.timestamp("us")), "50%": [0.5], 'q"': ["%s"]})

    [(_, _, value)] = records_from_table(table, ["k"], "ts", ["50%", 'q"'])

    assert decode_values(value) == {"50%": 0.5, 'q"': "%s"}


def test_records_of_an_empty_table_are_none() -> None:
    assert records_from_table(_table().slice(0, 0), ["customer_id"], "event_timestamp", ["spend"]) == []


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (_table().drop_columns(["spend"]), "'spend'"),
        (_table().drop_columns(["customer_id"]), "'customer_id'"),
        (_table(event_timestamp=["2024-05-01"] * 3), "'event_timestamp' is string, not a timestamp"),
        (_table(event_timestamp=pa.array([NOW, None, NOW], pa.timestamp("us"))), "missing values"),
    ],
)
def test_records_of_a_malformed_table_name_the_column(table: pa.Table, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        records_from_table(table, ["customer_id"], "event_timestamp", ["spend"])


# -- reading ----------------------------------------------------------------------------------------


@pytest.fixture
def filled() -> MemoryStore:
    """Customers 1 (fresh) and 2 (a day old) in ``stats``; customer 1 in ``profile``."""
    store = MemoryStore()
    store.write(
        "p",
        "stats",
        [
            ("1", _us(NOW - timedelta(minutes=5)), encode_values({"spend": 10.5, "count": 3})),
            ("2", _us(NOW - timedelta(days=1)), encode_values({"spend": 99.0, "count": 9})),
        ],
    )
    store.write("p", "profile", [("1", _us(NOW - timedelta(days=300)), encode_values({"age": 41}))])
    return store


def _views(
    ttl: timedelta | None = timedelta(hours=1),
) -> list[tuple[FeatureView, tuple[str, ...], tuple[str, ...]]]:
    return [
        (_view("stats", ["spend", "count"], ttl), ("customer_id",), ("count", "spend")),
        (_view("profile", ["age"]), ("customer_id",), ("age",)),
    ]


def test_a_read_gives_values_nulls_and_a_status_per_view_and_row(filled: MemoryStore) -> None:
    result = read_online(filled, "p", _views(), {"customer_id": [1, 2, 3]}, now=NOW)

    assert result.to_dict() == {
        "customer_id": [1, 2, 3],
        "count": [3, None, None],
        "spend": [10.5, None, None],
        "age": [41, None, None],
    }
    assert result.statuses == {
        "stats": [STATUS_PRESENT, STATUS_OUTSIDE_TTL, STATUS_NOT_FOUND],
        "profile": [STATUS_PRESENT, STATUS_NOT_FOUND, STATUS_NOT_FOUND],
    }


def test_a_value_exactly_as_old_as_the_ttl_is_still_present(filled: MemoryStore) -> None:
    result = read_online(filled, "p", _views(ttl=timedelta(days=1)), {"customer_id": [2]}, now=NOW)

    assert result.statuses["stats"] == [STATUS_PRESENT]
    assert result.columns["spend"] == [99.0]
    later = read_online(
        filled, "p", _views(ttl=timedelta(days=1)), {"customer_id": [2]}, now=NOW + timedelta(microseconds=1)
    )
    assert later.statuses["stats"] == [STATUS_OUTSIDE_TTL]


def test_one_row_and_many_rows_read_the_same(filled: MemoryStore) -> None:
    rows = ["1", 2, 3, 1.0]
    many = read_online(filled, "p", _views(), {"customer_id": rows}, now=NOW)

    for i, value in enumerate(rows):
        one = read_online(filled, "p", _views(), {"customer_id": [value]}, now=NOW)
        assert {k: v[0] for k, v in one.columns.items()} == {k: v[i] for k, v in many.columns.items()}
        assert {k: v[0] for k, v in one.statuses.items()} == {k: v[i] for k, v in many.statuses.items()}


def test_rows_that_are_all_found_get_each_features_own_values(filled: MemoryStore) -> None:
    result = read_online(filled, "p", _views(ttl=None), {"customer_id": [2, 1, 2]}, now=NOW)

    assert result.columns["count"] == [9, 3, 9]
    assert result.columns["spend"] == [99.0, 10.5, 99.0]
    assert result.statuses["stats"] == [STATUS_PRESENT] * 3


def test_full_feature_names_prefix_the_view(filled: MemoryStore) -> None:
    result = read_online(filled, "p", _views(), {"customer_id": [1]}, full_feature_names=True, now=NOW)

    assert list(result.columns) == ["customer_id", "stats__count", "stats__spend", "profile__age"]
    assert result.columns["stats__spend"] == [10.5]


def test_extra_entity_columns_pass_through_before_the_features(filled: MemoryStore) -> None:
    rows: dict[str, list[object]] = {"request_id": ["r1", "r2"], "customer_id": [2, 1], "amount": [5.0, 6.0]}

    result = read_online(filled, "p", _views(), rows, now=NOW)

    assert list(result.columns) == ["request_id", "customer_id", "amount", "count", "spend", "age"]
    assert result.columns["request_id"] == ["r1", "r2"]
    assert result.columns["amount"] == [5.0, 6.0]
    assert result.columns["age"] == [None, 41]


def test_each_view_is_read_once_for_all_rows(filled: MemoryStore) -> None:
    read_online(filled, "p", _views(), {"customer_id": [1, 2, 1, "1", 3]}, now=NOW)

    assert filled.reads == [("p", "stats", ["1", "2", "3"]), ("p", "profile", ["1", "2", "3"])]


def test_a_row_without_a_key_value_is_not_found(filled: MemoryStore) -> None:
    result = read_online(filled, "p", _views(), {"customer_id": [None, 1]}, now=NOW)

    assert result.statuses["stats"] == [STATUS_NOT_FOUND, STATUS_PRESENT]
    assert result.columns["spend"] == [None, 10.5]


def test_composite_keys_find_their_entity() -> None:
    store = MemoryStore()
    store.write("p", "pair", [(entity_key([7, "m|x"]), _us(NOW), encode_values({"n": 1}))])
    view = (_view("pair", ["n"]), ("customer_id", "merchant"), ("n",))

    result = read_online(store, "p", [view], {"customer_id": ["7", 7], "merchant": ["m|x", "m"]}, now=NOW)

    assert result.columns["n"] == [1, None]


def test_a_feature_the_stored_values_lack_is_null(filled: MemoryStore) -> None:
    view = (_view("stats", ["spend", "added_later"]), ("customer_id",), ("added_later", "spend"))

    one = read_online(filled, "p", [view], {"customer_id": [1]}, now=NOW)
    many = read_online(filled, "p", [view], {"customer_id": [1, 1]}, now=NOW)

    assert one.columns["added_later"] == [None] and one.columns["spend"] == [10.5]
    assert one.statuses["stats"] == [STATUS_PRESENT]
    assert many.columns["added_later"] == [None, None] and many.columns["spend"] == [10.5, 10.5]


def test_values_of_another_project_are_not_read(filled: MemoryStore) -> None:
    result = read_online(filled, "other", _views(), {"customer_id": [1]}, now=NOW)

    assert result.statuses == {"stats": [STATUS_NOT_FOUND], "profile": [STATUS_NOT_FOUND]}


def test_entity_rows_without_a_join_key_are_refused_naming_it(filled: MemoryStore) -> None:
    with pytest.raises(InvalidInput, match=r"'customer_id'.*'stats'") as caught:
        read_online(filled, "p", _views(), {"customer": [1]}, now=NOW)

    assert caught.value.details == {"field": "customer_id", "view": "stats"}


def test_features_that_would_share_a_name_are_refused(filled: MemoryStore) -> None:
    views = [*_views(), (_view("other", ["spend"]), ("customer_id",), ("spend",))]

    with pytest.raises(InvalidInput, match=r"'spend'.*full_feature_names"):
        read_online(filled, "p", views, {"customer_id": [1]}, now=NOW)
    result = read_online(filled, "p", views, {"customer_id": [1]}, full_feature_names=True, now=NOW)
    assert result.columns["other__spend"] == [None]


def test_entity_columns_of_different_lengths_are_refused(filled: MemoryStore) -> None:
    with pytest.raises(InvalidInput, match="different lengths"):
        read_online(filled, "p", _views(), {"customer_id": [1, 2], "x": [1]}, now=NOW)


def test_no_entity_rows_give_empty_columns(filled: MemoryStore) -> None:
    result = read_online(filled, "p", _views(), {"customer_id": []}, now=NOW)

    assert result.to_dict() == {"customer_id": [], "count": [], "spend": [], "age": []}
    assert result.statuses == {"stats": [], "profile": []}


# -- opening ----------------------------------------------------------------------------------------


def test_the_default_online_store_is_a_sqlite_file_in_home(tmp_path: Path) -> None:
    store = open_online_store(Settings(home=tmp_path, online_store="sqlite"))

    assert isinstance(store, SqliteOnlineStore) and store.name == "sqlite"
    assert store.path == tmp_path / "online.db" and store.path.exists()
    store.close()


def test_a_sqlite_url_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "features.db"

    store = open_online_store(Settings(home=tmp_path, online_store=f"sqlite:///{path}"))

    assert isinstance(store, SqliteOnlineStore) and store.path == path and path.exists()
    store.close()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/3", "rediss://:pw@cache.example:6380/0"])
def test_a_redis_url_opens_redis(tmp_path: Path, url: str) -> None:
    store = open_online_store(Settings(home=tmp_path, online_store=url))

    assert isinstance(store, RedisOnlineStore) and store.name == "redis"
    assert "pw" not in store.url
    store.close()


@pytest.mark.parametrize("url", ["postgres://db", "sqlite:///", "memory", "http://:secret@x"])
def test_another_online_store_is_refused_naming_the_setting(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInput, match="STEWARD_ONLINE_STORE") as caught:
        open_online_store(Settings(home=tmp_path, online_store=url))

    assert caught.value.details["field"] == "online_store"
    assert "secret" not in caught.value.message
