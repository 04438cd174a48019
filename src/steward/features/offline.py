"""The feature store's offline store: point-in-time correct training sets, the latest values per entity
for materialisation, and entity samples for skew checks, all in DuckDB over Parquet (streamed and
spilled to disk, so a view may be larger than memory) or Arrow tables.

A point-in-time join takes, for each entity row and view, the view's latest row with the same join keys
whose event time is at or before the entity row's timestamp: never a value from the future, null past
the view's TTL, and, when the view has a created timestamp, only rows already known then. Every entity
row comes back, in order, with its own columns untouched and the features appended::

    training = point_in_time_join(entity_rows, [ViewInput(view, ("driver_id",), ("trips",), parquet=paths)])
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from steward.core.time import to_us
from steward.errors import InvalidInput
from steward.features.models import ViewInput
from steward.features.offline_data import (
    ARROW_TYPES,
    ViewData,
    cast_sql,
    connect,
    engine_error,
    epoch_sql,
    key_kind,
    open_view,
    quote,
)

__all__ = ["check_view_data", "latest_per_entity", "point_in_time_join", "sample_entities"]

_MICROSECOND = timedelta(microseconds=1)


def point_in_time_join(
    entity_rows: pa.Table,
    inputs: Sequence[ViewInput],
    *,
    timestamp: str = "event_timestamp",
    full_feature_names: bool = False,
    as_known: bool = True,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> pa.Table:
    """Append to each entity row the features of each view as they were at the row's timestamp.

    For a row and a view, the value is the view's row with the same join keys and the latest event time
    at or before the row's timestamp; null if there is none, or if it is older than the view's TTL. When
    the view has a created timestamp and ``as_known`` is true, only rows created by then are seen, so a
    late correction does not leak into earlier rows; among those, the latest event time wins and then
    the latest created time. With ``as_known`` false the created time only breaks ties. A row without a
    created timestamp counts as known at its event time; of rows alike in keys, event and created time,
    any one may be taken. Times compare in UTC, to the microsecond: naive timestamps are UTC, dates
    midnight UTC.

    Args:
        entity_rows: The rows to complete: the join keys of every view and ``timestamp``.
        inputs: Each view, its join keys, the features wanted and where its rows are.
        timestamp: The entity rows' timestamp column (returned as it was).
        full_feature_names: Name the features ``view__feature`` rather than ``feature``.
        as_known: Honour the views' created timestamps (see above).
        memory_limit: DuckDB's memory cap (``"3GB"``); by default 3 GiB or half the RAM if less.
        temp_directory: Where DuckDB spills beyond it; by default a fresh directory, removed after.

    Returns:
        ``entity_rows`` (same rows, order and columns) with one column per feature, of its declared type.

    Raises:
        InvalidInput: The entity rows lack a join key or the timestamp, or their timestamp is null or
            not a time; a view's data lacks a column or has a type that does not cast to the declared
            one without loss; two features get the same name, or a feature the name of an entity column.
        ServiceUnavailable: DuckDB ran out of memory or could not read or spill a file.
    """
    _check_entity_rows(entity_rows, inputs, timestamp)
    names = _output_names(entity_rows.column_names, inputs, full_feature_names)
    aliases = {k: f"k{i}" for i, k in enumerate(dict.fromkeys(k for vi in inputs for k in vi.join_keys))}
    entities = pa.table(
        [pa.array(np.arange(entity_rows.num_rows, dtype=np.int64))]
        + [entity_rows.column(k) for k in aliases]
        + [entity_rows.column(timestamp)],
        names=["__row", *aliases.values(), "__time"],
    )
    result = entity_rows
    with connect(memory_limit, temp_directory) as con:
        try:
            con.register("entities", entities)
            scanned = [str(t) for t in con.sql("FROM entities LIMIT 0").types]
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot read the entity rows' keys and timestamp: {exc}") from exc
        entity_types = dict(zip(entities.column_names, scanned, strict=True))
        views = [open_view(con, vi, f"view{i}") for i, vi in enumerate(inputs)]  # every check before any join
        for data in views:
            _check_key_types(data, aliases, entity_types)
        entity_sql = f"SELECT __row, {''.join(a + ', ' for a in aliases.values())}"
        entity_sql += f"{epoch_sql('__time', entity_types['__time'])} AS __t FROM entities"
        low, high = con.sql(f"SELECT min(__t), max(__t) FROM ({entity_sql})").fetchall()[0]
        for data, out in zip(views, names, strict=True):
            if not out:
                continue
            if low is None:  # no entity rows
                columns = [pa.chunked_array([], ARROW_TYPES[_dtype(data, f)]) for f in data.input.features]
            else:
                sql = _join_sql(data, aliases, entity_sql, (low, high), as_known=as_known)
                try:
                    joined = con.sql(sql).to_arrow_table()
                except duckdb.Error as exc:
                    raise engine_error(
                        exc, f"the point-in-time join of view {data.input.view.name!r} failed"
                    ) from exc
                columns = _in_entity_order(joined, entity_rows.num_rows)
            for name, feature, column in zip(out, data.input.features, columns, strict=True):
                arrow_type = ARROW_TYPES[_dtype(data, feature)]
                result = result.append_column(pa.field(name, arrow_type), column.cast(arrow_type))
    return result


def _join_sql(
    data: ViewData, aliases: dict[str, str], entity_sql: str, bounds: tuple[int, int], *, as_known: bool
) -> str:
    """One view's ASOF LEFT JOIN: one row per entity row, its row number then the features.

    Without a created timestamp this is a plain ASOF join on the event time (DuckDB sorts both sides by
    keys and time and merges them). With one, the rows visible at time t are those whose *visibility*
    time, max(event, created) (event alone when not ``as_known``), is <= t, and the answer is the best of
    them by (event, created). A window over the view in visibility order keeps only the rows that beat
    every row visible no later than they are; along what is left the rank only grows, so the kept row
    with the latest visibility <= t is the best visible row, and an ASOF join on visibility finds it.
    That is two sorts of the view (the window's and the join's) and no pairwise blow-up, whatever the
    number of rows per entity; a range join would be quadratic in it without a TTL.
    """
    vi, view = data.input, data.input.view
    keys = [aliases[k] for k in vi.join_keys]
    ttl = None if view.ttl is None else view.ttl // _MICROSECOND
    low, high = bounds
    event = data.epoch(view.timestamp)
    columns = [f"{quote(k)} AS {aliases[k]}" for k in vi.join_keys] + [f"{event} AS __ts"]
    columns += [f"{quote(f)} AS f{j}" for j, f in enumerate(vi.features)]
    if view.created_timestamp is not None:
        columns.append(f"coalesce({data.epoch(view.created_timestamp)}, {event}) AS __c")
    # Rows that no entity row can see, or only past the TTL, are dropped before any sorting.
    where = [f"{quote(view.timestamp)} IS NOT NULL", f"{event} <= {high}"]
    where += [f"{quote(k)} IS NOT NULL" for k in vi.join_keys]
    where += [] if ttl is None else [f"{event} >= {low - ttl}"]
    rows = f"SELECT {', '.join(columns)} FROM {data.relation} WHERE {' AND '.join(where)}"
    time = "__ts"
    if view.created_timestamp is not None:
        time = "__vis"
        visible = "greatest(__ts, __c)" if as_known else "__ts"
        rows = f"SELECT *, {visible} AS __vis, {_rank('__ts', '__c')} AS __rank FROM ({rows})"
        frame = f"PARTITION BY {', '.join(keys)} " if keys else ""
        frame += "ORDER BY __vis RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
        rows = f"SELECT * FROM ({rows}) WHERE __vis <= {high} QUALIFY __rank = max(__rank) OVER ({frame})"
    features = []
    for j, name in enumerate(vi.features):
        value = cast_sql(f"v.f{j}", data.types[name], _dtype(data, name))
        features.append(value if ttl is None else f"CASE WHEN v.__ts >= e.__t - {ttl} THEN {value} END")
    on = [f"e.{k} = v.{k}" for k in keys] + [f"e.__t >= v.{time}"]
    return (
        f"SELECT e.__row, {', '.join(features)} FROM ({entity_sql}) e "
        f"ASOF LEFT JOIN ({rows}) v ON {' AND '.join(on)}"
    )


def _in_entity_order(joined: pa.Table, rows: int) -> list[pa.ChunkedArray]:
    """The feature columns of a join result, put back in entity-row order by its row numbers."""
    if joined.num_rows != rows:  # an ASOF LEFT JOIN gives exactly one row per left row
        raise AssertionError(f"the join returned {joined.num_rows} rows for {rows} entity rows")
    order = np.empty(rows, dtype=np.int64)
    order[joined.column(0).to_numpy()] = np.arange(rows, dtype=np.int64)
    columns: list[pa.ChunkedArray] = joined.take(pa.array(order)).columns[1:]
    return columns


def _dtype(data: ViewData, name: str) -> str:
    feature = data.input.view.feature(name)
    assert feature is not None  # open_view checked it
    return feature.dtype


def _check_entity_rows(entity_rows: pa.Table, inputs: Sequence[ViewInput], timestamp: str) -> None:
    if not isinstance(entity_rows, pa.Table):
        raise InvalidInput(f"entity rows must be an Arrow table, not {type(entity_rows).__name__}")
    columns = set(entity_rows.column_names)
    if timestamp not in columns:
        raise InvalidInput(f"the entity rows have no timestamp column {timestamp!r}", {"field": timestamp})
    kind = entity_rows.schema.field(timestamp).type
    if not (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        raise InvalidInput(
            f"the entity rows' timestamp column {timestamp!r} is {kind}, not a timestamp or date",
            {"field": timestamp},
        )
    nulls = entity_rows.column(timestamp).null_count
    if nulls:
        raise InvalidInput(
            f"the entity rows' timestamp column {timestamp!r} has {nulls} null value(s)", {"field": timestamp}
        )
    for vi in inputs:
        for key in vi.join_keys:
            if key not in columns:
                raise InvalidInput(
                    f"the entity rows have no column {key!r}, a join key of view {vi.view.name!r}",
                    {"field": key, "view": vi.view.name},
                )


def _output_names(entity_columns: Sequence[str], inputs: Sequence[ViewInput], full: bool) -> list[list[str]]:
    """Each view's output column names, checked against each other and the entity columns."""
    owners: dict[str, str] = {}
    names = []
    for vi in inputs:
        view = vi.view.name
        out = [f"{view}__{f}" if full else f for f in vi.features]
        for feature, name in zip(vi.features, out, strict=True):
            details = {"feature": f"{view}:{feature}", "field": name}
            if name in entity_columns:
                raise InvalidInput(
                    f"feature {feature!r} of view {view!r} would be named {name!r}, "
                    "which is a column of the entity rows",
                    details,
                )
            if name in owners:
                raise InvalidInput(
                    f"feature name {name!r} is given by view {owners[name]!r} and by view {view!r}: use full "
                    "feature names (view__feature) or ask for it once",
                    details | {"views": [owners[name], view]},
                )
            owners[name] = view
        names.append(out)
    return names


def _check_key_types(data: ViewData, aliases: dict[str, str], entity_types: dict[str, str]) -> None:
    for key in data.input.join_keys:
        mine, theirs, view = entity_types[aliases[key]], data.types[key], data.input.view.name
        if '"NULL"' not in (mine, theirs) and key_kind(mine) != key_kind(theirs):
            raise InvalidInput(
                f"join key {key!r} is {mine} in the entity rows but {theirs} in view {view!r}",
                {"field": key, "view": view},
            )


def latest_per_entity(
    view_input: ViewInput,
    start: datetime | None,
    end: datetime,
    *,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> pa.Table:
    """The latest row of each entity with an event time in ``[start, end)``, for materialisation.

    Ties between rows of one event time go to the latest created timestamp when the view has one.
    Naive datetimes are UTC.

    Args:
        view_input: The view, its join keys, the features wanted and where its rows are.
        start: The first event time included; None for no lower bound.
        end: The first event time excluded.
        memory_limit: As for :func:`point_in_time_join`.
        temp_directory: As for :func:`point_in_time_join`.

    Returns:
        One row per entity (rows with a null key are skipped): the join keys, the view's timestamp
        column as a UTC timestamp, then the features cast to their declared types. In no set order.

    Raises:
        InvalidInput: As :func:`check_view_data`; or the output would have two columns of one name.
        ServiceUnavailable: DuckDB ran out of memory or could not read or spill a file.
    """
    view = view_input.view
    out = [*view_input.join_keys, view.timestamp, *view_input.features]
    if len(set(out)) != len(out):
        raise InvalidInput(
            f"view {view.name!r}: a feature has the name of a join key or of the timestamp column",
            {"view": view.name},
        )
    with connect(memory_limit, temp_directory) as con:
        data = open_view(con, view_input, "view")
        event = data.epoch(view.timestamp)
        where = [f"{event} < {to_us(end)}"] + ([] if start is None else [f"{event} >= {to_us(start)}"])
        where += [f"{quote(k)} IS NOT NULL" for k in view_input.join_keys]
        rank = event
        if view.created_timestamp is not None:
            rank = _rank(event, f"coalesce({data.epoch(view.created_timestamp)}, {event})")
        fields = [f"__ts := {event}"] + [f"f{j} := {quote(f)}" for j, f in enumerate(view_input.features)]
        keys = [f"{quote(k)} AS k{i}" for i, k in enumerate(view_input.join_keys)]
        group = f"GROUP BY {', '.join(f'k{i}' for i in range(len(keys)))}" if keys else ""
        latest = (
            f"SELECT {''.join(k + ', ' for k in keys)}arg_max(struct_pack({', '.join(fields)}), {rank}) AS b "
            f"FROM {data.relation} WHERE {' AND '.join(where)} {group}"
        )
        select = [f"k{i}" for i in range(len(keys))] + ["make_timestamp(b.__ts)"]
        select += [
            cast_sql(f"b.f{j}", data.types[f], _dtype(data, f)) for j, f in enumerate(view_input.features)
        ]
        sql = f"SELECT {', '.join(select)} FROM ({latest}) WHERE b IS NOT NULL"
        try:
            table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise engine_error(exc, f"reading the latest rows of view {view.name!r} failed") from exc
    types = [table.schema.field(i).type for i in range(len(keys))] + [ARROW_TYPES["timestamp"]]
    types += [ARROW_TYPES[_dtype(data, f)] for f in view_input.features]
    columns = [c.cast(t) for c, t in zip(table.columns, types, strict=True)]
    return pa.table(columns, schema=pa.schema([pa.field(n, t) for n, t in zip(out, types, strict=True)]))


def sample_entities(
    view_input: ViewInput,
    n: int,
    seed: int = 0,
    *,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> pa.Table:
    """Up to ``n`` distinct entities (their join keys) of a view's data, the same ones for the same seed
    and data: those whose keys hash lowest with the seed.

    Args:
        view_input: The view, its join keys and where its rows are.
        n: How many entities at most.
        seed: Picks another sample.
        memory_limit: As for :func:`point_in_time_join`.
        temp_directory: As for :func:`point_in_time_join`.

    Returns:
        A table of the join-key columns, one row per entity (none with a null key).

    Raises:
        InvalidInput: ``n`` is negative, the view has no join keys, or as :func:`check_view_data`.
    """
    view = view_input.view
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInput(f"the sample size must be a whole number >= 0, not {n!r}", {"field": "n"})
    if not view_input.join_keys:
        raise InvalidInput(f"view {view.name!r} has no join keys to sample entities by", {"view": view.name})
    with connect(memory_limit, temp_directory) as con:
        data = open_view(con, view_input, "view")
        keys = ", ".join(quote(k) for k in view_input.join_keys)
        not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in view_input.join_keys)
        sql = (
            f"SELECT {keys} FROM (SELECT DISTINCT {keys} FROM {data.relation} WHERE {not_null}) "
            f"ORDER BY hash({keys}, {int(seed)}::BIGINT), {keys} LIMIT {n}"
        )
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise engine_error(exc, f"sampling the entities of view {view.name!r} failed") from exc


def check_view_data(view_input: ViewInput) -> None:
    """Check that a view's data has its join keys, timestamp (and created timestamp) and the wanted
    features, each of a type that casts to the declared one without loss. Only the schema is read.

    Raises:
        InvalidInput: What is missing or mistyped, with ``details`` naming the view and the column.
    """
    with connect(None, None) as con:
        open_view(con, view_input, "view")


def _rank(event: str, created: str) -> str:
    """SQL for (event, created) microseconds as one HUGEINT ordered like the pair: the event in the high
    64 bits, the created time made unsigned in the low ones. Window functions and ``arg_max`` over it
    are several times cheaper than over a struct."""
    return f"({event}::HUGEINT * 18446744073709551616 + ({created}::HUGEINT + 9223372036854775808))"
