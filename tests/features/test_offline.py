"""Tests of steward.features.offline: point-in-time joins, the latest rows per entity and entity samples."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.errors import InvalidInput, ServiceUnavailable
from steward.features.models import DatasetSource, Feature, FeatureView, ViewInput
from steward.features.offline import (
    check_view_data,
    latest_per_entity,
    point_in_time_join,
    sample_entities,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
US = pa.timestamp("us", tz="UTC")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def times(*hours: float | None) -> pa.Array:
    return pa.array([None if h is None else at(h) for h in hours], US)


def make_view(
    name: str = "trips",
    features: Sequence[tuple[str, str]] = (("x", "float64"),),
    *,
    ttl: timedelta | None = None,
    created: str | None = None,
) -> FeatureView:
    feats = tuple(Feature(n, t) for n, t in features)
    return FeatureView(name, ("driver",), DatasetSource(name), "event_timestamp", feats, ttl, created)


def view_input(
    view: FeatureView,
    table: pa.Table | None = None,
    *,
    parquet: Sequence[Path] = (),
    keys: tuple[str, ...] = ("driver_id",),
    features: tuple[str, ...] | None = None,
) -> ViewInput:
    wanted = tuple(f.name for f in view.features) if features is None else features
    return ViewInput(view, keys, wanted, tuple(str(p) for p in parquet), table)


def entity_rows(ids: Sequence[Any], hours: Sequence[float], **extra: Sequence[Any]) -> pa.Table:
    return pa.table({"driver_id": ids, "event_timestamp": times(*hours), **extra})


def values(table: pa.Table, column: str) -> list[Any]:
    return table.column(column).to_pylist()


# Driver 1 has values at hours 1, 3 and 5, driver 2 at hour 2.
HISTORY = pa.table(
    {"driver_id": [1, 1, 1, 2], "event_timestamp": times(5, 1, 3, 2), "x": [50.0, 10.0, 30.0, 20.0]}
)


def test_join_takes_the_latest_value_at_or_before_each_row_never_a_later_one() -> None:
    rows = entity_rows([1, 1, 1, 1, 2], [2, 3, 4, 6, 2.5])

    out = point_in_time_join(rows, [view_input(make_view(), HISTORY)])

    # The overall latest value (50) or the next one (30 at hour 2) would be leaks.
    assert values(out, "x") == [10.0, 30.0, 30.0, 50.0, 20.0]


def test_every_entity_row_comes_back_in_order_with_its_columns_and_nulls_where_nothing_is_known() -> None:
    rows = entity_rows(
        [2, 1, 9, 1, None, 1],
        [3, 0.5, 4, 4, 4, 1],
        label=[1, 0, 1, 1, 0, 0],
        note=["a", "b", None, "d", "e", "f"],
    )

    out = point_in_time_join(rows, [view_input(make_view(), HISTORY)])

    assert out.num_rows == rows.num_rows
    assert out.select(rows.column_names).equals(rows)
    assert out.column_names == [*rows.column_names, "x"]
    # Driver 9 is unknown, hour 0.5 is before driver 1's first value, a null key matches nothing.
    assert values(out, "x") == [20.0, None, None, 30.0, None, 10.0]


def test_rows_of_an_unknown_entity_only_are_all_kept() -> None:
    rows = entity_rows([7, 8, 7], [1, 2, 3])

    out = point_in_time_join(rows, [view_input(make_view(), HISTORY)])

    assert out.num_rows == 3
    assert values(out, "x") == [None, None, None]


def test_no_entity_rows_give_an_empty_table_with_typed_feature_columns() -> None:
    rows = entity_rows([], [])

    out = point_in_time_join(rows, [view_input(make_view(features=[("x", "float64")]), HISTORY)])

    assert out.num_rows == 0
    assert out.schema.field("x").type == pa.float64()


def test_a_value_older_than_the_ttl_is_null() -> None:
    view = make_view(ttl=timedelta(hours=2))
    rows = entity_rows([1, 1, 1, 2], [4, 5.5, 7, 4.5])

    out = point_in_time_join(rows, [view_input(view, HISTORY)])

    # Hour 4 sees hour 3 (1 h old), 5.5 sees 5; hour 7 sees 5, exactly the TTL old; 4.5 sees 2, too old.
    assert values(out, "x") == [30.0, 50.0, 50.0, None]


def test_ttl_never_falls_back_to_an_older_value() -> None:
    view = make_view(ttl=timedelta(minutes=30))
    rows = entity_rows([1], [4])

    out = point_in_time_join(rows, [view_input(view, HISTORY)])

    assert values(out, "x") == [None]


# Driver 1: the value for hour 1 was 10, corrected to 11 at hour 5. Driver 2: the same, plus a value for
# hour 2 known at once. Driver 3: a value for hour 4 already known at hour 2 (a forecast).
KNOWN = pa.table(
    {
        "driver_id": [1, 1, 2, 2, 2, 3],
        "event_timestamp": times(1, 1, 1, 1, 2, 4),
        "created": times(1, 5, 1, 5, 2, 2),
        "x": [10.0, 11.0, 10.0, 11.0, 20.0, 40.0],
    }
)


def test_a_late_correction_is_invisible_before_it_arrived_and_seen_after() -> None:
    view = make_view(created="created")
    rows = entity_rows([1, 1, 1, 2, 2, 3, 3], [3, 5, 6, 3, 6, 3, 4])

    out = point_in_time_join(rows, [view_input(view, KNOWN)])

    assert values(out, "x") == [10.0, 11.0, 11.0, 20.0, 20.0, None, 40.0]


def test_without_as_known_the_created_timestamp_only_breaks_ties() -> None:
    view = make_view(created="created")
    rows = entity_rows([1, 2, 3, 3], [3, 3, 3, 4])

    out = point_in_time_join(rows, [view_input(view, KNOWN)], as_known=False)

    # The correction wins its tie even before it arrived; the forecast is still not taken early.
    assert values(out, "x") == [11.0, 20.0, None, 40.0]


def test_a_row_without_created_timestamp_counts_as_known_at_its_event_time() -> None:
    view = make_view(created="created")
    data = pa.table(
        {"driver_id": [1, 1], "event_timestamp": times(1, 2), "created": times(1, None), "x": [10.0, 20.0]}
    )

    out = point_in_time_join(entity_rows([1, 1], [1.5, 2]), [view_input(view, data)])

    assert values(out, "x") == [10.0, 20.0]


def test_created_timestamp_and_ttl_together() -> None:
    view = make_view(created="created", ttl=timedelta(hours=2))
    rows = entity_rows([1, 1, 2], [3, 5, 5])

    out = point_in_time_join(rows, [view_input(view, KNOWN)])

    # Driver 1's only value is for hour 1: at hour 3 it is 2 h old (kept), at 5 the correction is 4 h old.
    assert values(out, "x") == [10.0, None, None]


def test_two_views_with_composite_keys_and_full_feature_names() -> None:
    by_city = make_view("by_city", [("x", "float64")])
    by_driver = make_view("by_driver", [("x", "float64"), ("y", "int64")])
    city_data = pa.table(
        {
            "driver_id": [1, 1, 2],
            "city": ["paris", "rome", "paris"],
            "event_timestamp": times(1, 1, 1),
            "x": [1.0, 2.0, 3.0],
        }
    )
    driver_data = pa.table(
        {"driver_id": [1, 2], "event_timestamp": times(2, 2), "x": [100.0, 200.0], "y": [7, 8]}
    )
    rows = pa.table(
        {
            "driver_id": [1, 1, 2, 2],
            "city": ["rome", "paris", "rome", "paris"],
            "event_timestamp": times(3, 1.5, 3, 3),
        }
    )

    out = point_in_time_join(
        rows,
        [
            view_input(by_city, city_data, keys=("driver_id", "city")),
            view_input(by_driver, driver_data),
        ],
        full_feature_names=True,
    )

    assert out.column_names == [
        "driver_id",
        "city",
        "event_timestamp",
        "by_city__x",
        "by_driver__x",
        "by_driver__y",
    ]
    assert values(out, "by_city__x") == [2.0, 1.0, None, 3.0]
    assert values(out, "by_driver__x") == [100.0, None, 200.0, 200.0]
    assert values(out, "by_driver__y") == [7, None, 8, 8]


def test_the_same_feature_name_from_two_views_needs_full_names() -> None:
    a, b = make_view("alpha"), make_view("beta")
    rows = entity_rows([1], [3])

    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(rows, [view_input(a, HISTORY), view_input(b, HISTORY)])

    assert (
        "'x'" in caught.value.message
        and "'alpha'" in caught.value.message
        and "'beta'" in caught.value.message
    )
    assert caught.value.details["views"] == ["alpha", "beta"]
    out = point_in_time_join(rows, [view_input(a, HISTORY), view_input(b, HISTORY)], full_feature_names=True)
    assert values(out, "alpha__x") == values(out, "beta__x") == [30.0]


def test_a_feature_named_like_an_entity_column_is_refused() -> None:
    rows = entity_rows([1], [3], x=[0.0])

    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(rows, [view_input(make_view(), HISTORY)])

    assert caught.value.details == {"feature": "trips:x", "field": "x"}


def bad_entity_rows() -> list[tuple[str, pa.Table, str]]:
    ok = entity_rows([1], [3])
    return [
        ("no join key", ok.drop_columns(["driver_id"]), "driver_id"),
        ("no timestamp", ok.drop_columns(["event_timestamp"]), "event_timestamp"),
        (
            "null timestamp",
            pa.table({"driver_id": [1, 1], "event_timestamp": times(3, None)}),
            "event_timestamp",
        ),
        (
            "text timestamp",
            pa.table({"driver_id": [1], "event_timestamp": ["2024-03-01"]}),
            "event_timestamp",
        ),
        (
            "integer timestamp",
            pa.table({"driver_id": [1], "event_timestamp": [1709251200]}),
            "event_timestamp",
        ),
    ]


@pytest.mark.parametrize(("case", "rows", "field"), bad_entity_rows(), ids=[c[0] for c in bad_entity_rows()])
def test_bad_entity_rows_are_refused_naming_the_column(case: str, rows: pa.Table, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(rows, [view_input(make_view(), HISTORY)])

    assert caught.value.details["field"] == field
    assert repr(field) in caught.value.message


def bad_view_data() -> list[tuple[str, FeatureView, pa.Table, tuple[str, ...], str]]:
    view = make_view()
    typed = make_view(features=[("x", "float64"), ("n", "int64"), ("s", "string"), ("b", "bool")])
    data = pa.table(
        {"driver_id": [1], "event_timestamp": times(1), "x": [1.0], "n": [1], "s": ["a"], "b": [True]}
    )
    return [
        ("no feature column", view, data.drop_columns(["x"]), ("x",), "x"),
        ("no key column", view, data.drop_columns(["driver_id"]), ("x",), "driver_id"),
        ("no timestamp column", view, data.drop_columns(["event_timestamp"]), ("x",), "event_timestamp"),
        ("no created column", make_view(created="created"), data, ("x",), "created"),
        (
            "text timestamp",
            view,
            data.set_column(1, "event_timestamp", pa.array(["x"])),
            ("x",),
            "event_timestamp",
        ),
        ("text for float64", typed, data.set_column(2, "x", pa.array(["1.5"])), ("x",), "x"),
        ("float for int64", typed, data.set_column(3, "n", pa.array([1.5])), ("n",), "n"),
        ("int64 for float64", typed, data.set_column(2, "x", pa.array([2**60])), ("x",), "x"),
        ("number for string", typed, data.set_column(4, "s", pa.array([1])), ("s",), "s"),
        ("number for bool", typed, data.set_column(5, "b", pa.array([1])), ("b",), "b"),
        ("undeclared feature", view, data, ("n",), "n"),
        ("unknown type", make_view(features=[("x", "complex")]), data, ("x",), "x"),
    ]


@pytest.mark.parametrize(
    ("case", "view", "data", "wanted", "field"), bad_view_data(), ids=[c[0] for c in bad_view_data()]
)
def test_bad_view_data_is_refused_naming_the_view_and_column(
    case: str, view: FeatureView, data: pa.Table, wanted: tuple[str, ...], field: str
) -> None:
    vi = view_input(view, data, features=wanted)

    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(entity_rows([1], [3]), [vi])
    with pytest.raises(InvalidInput) as checked:
        check_view_data(vi)

    assert caught.value.details["field"] == field and caught.value.details["view"] == "trips"
    assert repr(field) in caught.value.message
    assert checked.value.details == caught.value.details


def test_a_type_error_names_the_feature_and_both_types() -> None:
    view = make_view(features=[("n", "int64")])
    data = pa.table({"driver_id": [1], "event_timestamp": times(1), "n": [1.5]})

    with pytest.raises(InvalidInput) as caught:
        check_view_data(view_input(view, data))

    assert (
        "'n'" in caught.value.message and "int64" in caught.value.message and "DOUBLE" in caught.value.message
    )
    assert caught.value.details == {
        "view": "trips",
        "field": "n",
        "feature": "trips:n",
        "declared": "int64",
        "actual": "DOUBLE",
    }


def test_join_keys_of_different_kinds_are_refused() -> None:
    rows = pa.table({"driver_id": ["1"], "event_timestamp": times(3)})

    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(rows, [view_input(make_view(), HISTORY)])

    assert caught.value.details == {"field": "driver_id", "view": "trips"}


def test_features_come_back_cast_to_their_declared_types() -> None:
    view = make_view(
        features=[
            ("a", "int64"),
            ("b", "float64"),
            ("c", "float32"),
            ("d", "string"),
            ("e", "timestamp"),
            ("f", "bool"),
        ]
    )
    data = pa.table(
        {
            "driver_id": pa.array([1], pa.int32()),
            "event_timestamp": pa.array([datetime(2024, 3, 1, 1)], pa.timestamp("ns")),
            "a": pa.array([5], pa.int32()),
            "b": pa.array([1.5], pa.float32()),
            "c": pa.array([2.5], pa.float16()),
            "d": pa.array(["red"]).dictionary_encode(),
            "e": pa.array([date(2024, 2, 29)], pa.date32()),
            "f": [True],
        }
    )

    out = point_in_time_join(entity_rows([1, 2], [3, 3]), [view_input(view, data)])

    assert out.schema.field("a").type == pa.int64()
    assert out.schema.field("b").type == pa.float64()
    assert out.schema.field("c").type == pa.float32()
    assert out.schema.field("d").type == pa.string()
    assert out.schema.field("e").type == US
    assert out.schema.field("f").type == pa.bool_()
    assert out.slice(0, 1).to_pylist()[0] == {
        "driver_id": 1,
        "event_timestamp": at(3),
        "a": 5,
        "b": 1.5,
        "c": 2.5,
        "d": "red",
        "e": datetime(2024, 2, 29, tzinfo=UTC),
        "f": True,
    }
    assert values(out, "a") == [5, None]


def test_parquet_and_table_inputs_give_the_same_answer(tmp_path: Path) -> None:
    view = make_view(created="created", ttl=timedelta(hours=3))
    pq.write_table(KNOWN.slice(0, 3), tmp_path / "part-0.parquet")
    pq.write_table(KNOWN.slice(3), tmp_path / "part-1.parquet")
    rows = entity_rows([1, 1, 1, 2, 2, 3, 3, 4], [3, 5, 6, 3, 6, 3, 4, 4])

    from_table = point_in_time_join(rows, [view_input(view, KNOWN)])
    from_parquet = point_in_time_join(
        rows, [view_input(view, parquet=[tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"])]
    )

    assert from_parquet.equals(from_table)
    assert values(from_table, "x") == [10.0, None, None, 20.0, None, None, 40.0, None]


def test_naive_aware_and_date_timestamps_compare_in_utc() -> None:
    paris = pa.timestamp("ms", tz="Europe/Paris")
    naive_data = HISTORY.set_column(1, "event_timestamp", HISTORY.column(1).cast(pa.timestamp("us")))
    aware = entity_rows([1, 1, 2], [2, 4, 2.5])
    naive = aware.set_column(1, "event_timestamp", aware.column(1).cast(pa.timestamp("ns")))
    in_paris = aware.set_column(1, "event_timestamp", aware.column(1).cast(paris))

    results = [
        point_in_time_join(rows, [view_input(make_view(), data)])
        for rows in (aware, naive, in_paris)
        for data in (HISTORY, naive_data)
    ]

    assert all(values(r, "x") == [10.0, 30.0, 20.0] for r in results)
    # The entity timestamp column comes back as it was given.
    assert results[2].schema.field("event_timestamp").type == pa.timestamp("ns")
    assert results[4].column("event_timestamp").equals(in_paris.column("event_timestamp"))
    days = pa.table({"driver_id": [1, 1], "event_timestamp": pa.array([date(2024, 3, 1), date(2024, 3, 2)])})
    by_day = point_in_time_join(days, [view_input(make_view(), HISTORY)])
    assert values(by_day, "x") == [None, 50.0]  # midnight UTC: before hour 1, then after hour 5


def test_duckdb_settings_are_applied_and_checked(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    rows = entity_rows([1], [3])

    out = point_in_time_join(
        rows, [view_input(make_view(), HISTORY)], memory_limit="256MB", temp_directory=str(spill)
    )

    assert values(out, "x") == [30.0]
    assert spill.is_dir()  # the caller's directory is left in place
    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(rows, [view_input(make_view(), HISTORY)], memory_limit="lots")
    assert caught.value.details == {"field": "memory_limit"}


def big_history(rows: int) -> tuple[pa.Table, pa.Table]:
    rnd = random.Random(0)
    data = pa.table(
        {
            "driver_id": [rnd.randrange(1000) for _ in range(rows)],
            "event_timestamp": times(*[rnd.uniform(0, 10_000) for _ in range(rows)]),
            "x": [rnd.random() for _ in range(rows)],
        }
    )
    entities = entity_rows(
        [rnd.randrange(1000) for _ in range(50_000)], [rnd.uniform(0, 10_000) for _ in range(50_000)]
    )
    return data, entities


def test_a_tight_memory_limit_spills_to_disk_and_gives_the_same_answer(tmp_path: Path) -> None:
    data, rows = big_history(400_000)

    # 16 MB is less than the join's sort needs here, so DuckDB writes part of it to the temp directory.
    tight = point_in_time_join(
        rows, [view_input(make_view(), data)], memory_limit="16MB", temp_directory=str(tmp_path)
    )
    roomy = point_in_time_join(rows, [view_input(make_view(), data)])

    assert tight.equals(roomy)
    assert tight.column("x").null_count < rows.num_rows // 10


def test_running_out_of_memory_says_to_raise_the_limit() -> None:
    data, rows = big_history(400_000)

    with pytest.raises(ServiceUnavailable) as caught:
        point_in_time_join(rows, [view_input(make_view(), data)], memory_limit="2MB")

    assert "memory_limit" in caught.value.message


def test_a_view_needs_exactly_one_source() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_view_data(ViewInput(make_view(), ("driver_id",), ("x",)))

    assert caught.value.details == {"view": "trips"}


def test_a_missing_parquet_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_view_data(view_input(make_view(), parquet=[tmp_path / "nothing.parquet"]))

    assert caught.value.details == {"view": "trips"}


def test_check_view_data_accepts_lossless_types() -> None:
    view = make_view(features=[("x", "float64"), ("n", "int64"), ("t", "timestamp")])
    data = pa.table(
        {
            "driver_id": [1],
            "event_timestamp": pa.array([date(2024, 3, 1)]),
            "x": pa.array([3], pa.int32()),
            "n": pa.array([3], pa.uint32()),
            "t": pa.array([None], pa.null()),
        }
    )

    check_view_data(view_input(view, data))


# Latest rows per entity: driver 1 at hours 1, 3 (twice: the later-created one wins) and 5; driver 2 at 2.
LATEST = pa.table(
    {
        "driver_id": [1, 1, 1, 1, 2, None],
        "event_timestamp": times(1, 3, 3, 5, 2, 4),
        "created": times(1, 6, 4, 5, 2, 4),
        "x": [10.0, 31.0, 30.0, 50.0, 20.0, 99.0],
    }
)


def latest(start: float | None, end: float, view: FeatureView | None = None) -> dict[Any, Any]:
    vi = view_input(view or make_view(created="created"), LATEST)
    table = latest_per_entity(vi, None if start is None else at(start), at(end))
    return {r["driver_id"]: (r["event_timestamp"], r["x"]) for r in table.to_pylist()}


def test_latest_per_entity_keeps_the_last_row_in_the_window() -> None:
    assert latest(None, 10) == {1: (at(5), 50.0), 2: (at(2), 20.0)}
    assert latest(None, 5) == {
        1: (at(3), 31.0),
        2: (at(2), 20.0),
    }  # end excluded; the tie to the later created
    assert latest(2, 3) == {2: (at(2), 20.0)}  # start included
    assert latest(3.5, 4.5) == {}


def test_latest_per_entity_columns_and_naive_bounds() -> None:
    view = make_view(created="created")
    vi = view_input(view, LATEST.set_column(3, "x", LATEST.column("x").cast(pa.float32())))

    table = latest_per_entity(vi, datetime(2024, 3, 1, 2), datetime(2024, 3, 1, 4))

    assert table.schema == pa.schema(
        [("driver_id", pa.int64()), ("event_timestamp", US), ("x", pa.float64())]
    )
    assert sorted(table.to_pylist(), key=lambda r: r["driver_id"]) == [
        {"driver_id": 1, "event_timestamp": at(3), "x": 31.0},
        {"driver_id": 2, "event_timestamp": at(2), "x": 20.0},
    ]


def test_latest_per_entity_reads_parquet_of_many_entities(tmp_path: Path) -> None:
    n = 5000
    data = pa.table(
        {
            "driver_id": [i % 1000 for i in range(n)],
            "event_timestamp": times(*[i / 100 for i in range(n)]),
            "x": [float(i) for i in range(n)],
        }
    )
    pq.write_table(data, tmp_path / "rows.parquet")

    table = latest_per_entity(view_input(make_view(), parquet=[tmp_path / "rows.parquet"]), None, at(1000))

    assert table.num_rows == 1000
    assert {r["driver_id"]: r["x"] for r in table.to_pylist()} == {i: float(4000 + i) for i in range(1000)}


def test_sample_entities_is_distinct_and_reproducible() -> None:
    data = pa.table(
        {
            "driver_id": [i % 50 for i in range(500)],
            "city": ["paris" if i % 3 else "rome" for i in range(500)],
            "event_timestamp": times(*range(500)),
            "x": [1.0] * 500,
        }
    )
    vi = view_input(make_view(), data, keys=("driver_id", "city"))
    every = {(i % 50, "paris" if i % 3 else "rome") for i in range(500)}

    first = sample_entities(vi, 20, seed=1)
    again = sample_entities(vi, 20, seed=1)
    other = sample_entities(vi, 20, seed=2)

    pairs = [(r["driver_id"], r["city"]) for r in first.to_pylist()]
    assert first.column_names == ["driver_id", "city"]
    assert len(pairs) == len(set(pairs)) == 20 and set(pairs) <= every
    assert again.equals(first)
    assert not other.equals(first)
    everyone = sample_entities(vi, 1000)
    assert everyone.num_rows == len(every)
    assert sample_entities(vi, 0).num_rows == 0
    with pytest.raises(InvalidInput):
        sample_entities(vi, -1)


# The cross-check: random histories against an obviously correct reference.


def reference_join(
    rows: list[dict[str, Any]], data: list[dict[str, Any]], ttl: timedelta | None, as_known: bool
) -> list[float | None]:
    """For each entity row, scan every view row: same keys, event time <= the row's time (and created
    too, if as known); the best by (event, created); null past the TTL."""
    by_key: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in data:
        by_key.setdefault((r["driver_id"], r["city"]), []).append(r)
    answers: list[float | None] = []
    for row in rows:
        t = row["event_timestamp"]
        best = None
        for r in by_key.get((row["driver_id"], row["city"]), []):
            if r["event_timestamp"] > t:
                continue
            if as_known and r["created"] > t:
                continue
            if best is None or (r["event_timestamp"], r["created"]) > (
                best["event_timestamp"],
                best["created"],
            ):
                best = r
        fresh = best is not None and (ttl is None or best["event_timestamp"] >= t - ttl)
        answers.append(best["x"] if fresh and best is not None else None)
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_join_matches_a_plain_reference_on_random_data(seed: int) -> None:
    rnd = random.Random(seed)
    data: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    while len(data) < 3000:
        key = (rnd.randrange(40), rnd.choice(["a", "b"]))
        event = at(rnd.randrange(200))  # few distinct hours, so many ties on the event time
        created = event + timedelta(hours=rnd.choice([0, 0, 1, 2, 30]))  # some corrections come late
        if (*key, event, created) in seen:  # the best row must be unique for the answer to be
            continue
        seen.add((*key, event, created))
        data.append({"driver_id": key[0], "city": key[1], "event_timestamp": event, "created": created})
        data[-1]["x"] = float(len(data))
    rows = [
        {
            "driver_id": rnd.randrange(45),
            "city": rnd.choice(["a", "b"]),
            "event_timestamp": at(rnd.uniform(-5, 240)),
        }
        for _ in range(2000)
    ]
    ttl = rnd.choice([None, timedelta(hours=10), timedelta(hours=50)])
    view = make_view(created="created", ttl=ttl)
    table = pa.Table.from_pylist(data)
    entities = pa.Table.from_pylist(rows)

    for as_known in (True, False):
        out = point_in_time_join(
            entities, [view_input(view, table, keys=("driver_id", "city"))], as_known=as_known
        )
        assert values(out, "x") == reference_join(rows, data, ttl, as_known)
    plain = make_view(ttl=ttl)
    latest_only = [r for r in data if (r["created"] - r["event_timestamp"]) == timedelta(0)]
    dedup = {(r["driver_id"], r["city"], r["event_timestamp"]): r for r in latest_only}
    unique = list(dedup.values())
    out = point_in_time_join(
        entities, [view_input(plain, pa.Table.from_pylist(unique), keys=("driver_id", "city"))]
    )
    assert values(out, "x") == reference_join(rows, unique, ttl, as_known=False)
