"""The online store's logic, whatever the backend: entity keys, value encoding, records from a table,
the online read with its statuses, and opening the store ``Settings.online_store`` names.

Entity keys are strings. One join key gives the value's text form; several give the parts joined by
``|``, each part's ``\\`` and ``|`` escaped with a ``\\`` (so ``("a|b", "c")`` and ``("a", "b|c")`` stay
apart). A part's text form is chosen so that a request finds the entity whatever type it carries:

- strings as they are; integers in decimal (``42`` and ``"42"`` are the same entity);
- floats with an integral value as that integer (``42.0`` is ``"42"``: pandas turns an integer
  column with nulls into floats), other floats as Python's ``repr`` (``0.5``);
- booleans ``true``/``false``; dates and datetimes in ISO 8601 (``2024-05-01T12:00:00+00:00``);
- anything else ``str(value)``. A missing value (None, NaN) is no key at all.

Values are a JSON object of ``{feature: value}`` (orjson). Floats round-trip exactly; None stays None;
NaN and ±infinity, which JSON cannot hold, are stored as null (a model sees a missing value either
way); timestamps become ISO 8601 strings with their UTC offset (naive ones are taken as UTC:
``2024-05-01T12:00:00+00:00``) and are read back as those strings, ready for a JSON response.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson

from steward.core.time import to_us
from steward.core.urls import masked_url
from steward.errors import InvalidInput
from steward.features.models import (
    STATUS_NOT_FOUND,
    STATUS_OUTSIDE_TTL,
    STATUS_PRESENT,
    FeatureView,
    OnlineFeatures,
    OnlineRecord,
    OnlineStore,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from steward.config import Settings

KEY_SEPARATOR = "|"
"""Between the parts of a composite entity key (escaped with ``\\`` inside a part)."""

_MICROSECOND = timedelta(microseconds=1)
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC
_loads = orjson.loads
_NOTHING: Mapping[str, Any] = {}
"""The values of an entity a read did not find (never mutated)."""


# -- entity keys ---------------------------------------------------------------------------------


def _key_part(value: Any) -> str | None:
    """The text form of one key value (the module docstring's rule), or None for a missing one."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    return str(value)


def _escape(part: str) -> str:
    if "\\" in part or KEY_SEPARATOR in part:
        return part.replace("\\", "\\\\").replace(KEY_SEPARATOR, "\\" + KEY_SEPARATOR)
    return part


def entity_key(values: Sequence[Any]) -> str:
    """The online store's key of one entity, from its join-key values in the view's order.

    ``entity_key([42]) == entity_key(["42"]) == "42"``; ``entity_key(["a", 7]) == "a|7"``. A bare
    string (or other scalar) counts as the single value.

    Raises:
        InvalidInput: If a value is missing (None or NaN).
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        values = (values,)
    given = [_key_part(v) for v in values]
    parts = [p for p in given if p is not None]
    if not parts or len(parts) < len(given):
        raise InvalidInput("an entity key has no value", {"field": "entity_key"})
    if len(parts) == 1:
        return parts[0]
    return KEY_SEPARATOR.join(map(_escape, parts))


def _column_parts(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """The text form of each value of a key column, computed column-wise where Arrow can."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_integer(kind):
        return pc.cast(column, pa.string()).to_pylist()  # type: ignore[no-any-return]
    return [_key_part(v) for v in column.to_pylist()]


def entity_keys(table: pa.Table, join_keys: Sequence[str]) -> list[str]:
    """The key of each row of ``table`` (the strings ``entity_key`` gives for the same values).

    Raises:
        InvalidInput: Naming a join-key column that is missing or has a missing value.
    """
    _require_columns(table, join_keys)
    columns = [_column_parts(table.column(k)) for k in join_keys]
    for name, parts in zip(join_keys, columns, strict=True):
        if None in parts:
            row = parts.index(None)
            raise InvalidInput(f"join key {name!r} has no value in row {row}", {"field": name, "row": row})
    complete = cast(list[list[str]], columns)  # no None, as just checked
    if len(complete) == 1:
        return complete[0]
    escaped = [[_escape(p) for p in parts] for parts in complete]
    return [KEY_SEPARATOR.join(parts) for parts in zip(*escaped, strict=True)]


def _require_columns(table: pa.Table, names: Sequence[str]) -> None:
    present = set(table.column_names)
    for name in names:
        if name not in present:
            raise InvalidInput(
                f"the rows have no column {name!r} (they have {', '.join(table.column_names)})",
                {"field": name},
            )


# -- values ---------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """What orjson cannot serialise itself: pandas timestamps, decimals, sets."""
    if isinstance(value, datetime):  # pandas.Timestamp
        return value.isoformat() if value.tzinfo is not None else value.isoformat() + "+00:00"
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError


def encode_values(values: Mapping[str, Any]) -> bytes:
    """Encode one entity's feature values for the online store (the module docstring's rules).

    Raises:
        InvalidInput: Naming a feature whose value JSON cannot hold.
    """
    try:
        return orjson.dumps(values, default=_json_default, option=_JSON_OPTIONS)
    except TypeError:
        for name, value in values.items():
            try:
                orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
            except TypeError:
                raise InvalidInput(
                    f"feature {name!r}: a {type(value).__name__} cannot be stored online",
                    {"field": str(name)},
                ) from None
        raise


def decode_values(data: bytes) -> dict[str, Any]:
    """The feature values ``encode_values`` encoded."""
    decoded: dict[str, Any] = _loads(data)
    return decoded


def _encoded_column(column: pa.ChunkedArray, name: str) -> list[bytes]:
    """Each value of a feature column as JSON text, without touching Arrow scalars."""
    import pyarrow as pa

    kind = column.type
    values = column.to_pylist()
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        # Numbers, true, false and null hold no comma: one dumps of the column, split.
        return orjson.dumps(values, option=_JSON_OPTIONS)[1:-1].split(b",")
    dumps = orjson.dumps
    try:
        return [dumps(v, default=_json_default, option=_JSON_OPTIONS) for v in values]
    except TypeError:
        raise InvalidInput(
            f"feature {name!r}: values of type {kind} cannot be stored online", {"field": name}
        ) from None


def _event_times(column: pa.ChunkedArray, name: str) -> list[int]:
    """Microseconds since the epoch (UTC; naive times taken as UTC) of each value of a time column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_date(kind):
        column = column.cast(pa.timestamp("us"))
    elif not pa.types.is_timestamp(kind):
        raise InvalidInput(f"the event timestamp column {name!r} is {kind}, not a timestamp", {"field": name})
    if column.null_count:
        raise InvalidInput(f"the event timestamp column {name!r} has missing values", {"field": name})
    micros = pc.cast(column, pa.timestamp("us", getattr(column.type, "tz", None)), safe=False)
    return pc.cast(micros, pa.int64()).to_pylist()  # type: ignore[no-any-return]


def records_from_table(
    table: pa.Table, join_keys: Sequence[str], timestamp: str, features: Sequence[str]
) -> list[OnlineRecord]:
    """One online record per row of ``table``: its entity key, event time and encoded features.

    Works column by column (100,000 rows of five floats take a fraction of a second). Rows of the
    same entity are all returned; the store keeps the one with the latest event time.

    Args:
        table: Rows holding the join keys, the event timestamp and the features.
        join_keys: The view's key columns, in order.
        timestamp: The event-timestamp column (a timestamp or date).
        features: The feature columns to store, in order.

    Raises:
        InvalidInput: Naming a missing column, a key or timestamp without a value, or a feature
            whose values cannot be stored.
    """
    _require_columns(table, [*join_keys, timestamp, *features])
    if table.num_rows == 0:
        return []
    keys = entity_keys(table, join_keys)
    times = _event_times(table.column(timestamp), timestamp)
    if not features:
        return [(k, t, b"{}") for k, t in zip(keys, times, strict=True)]
    tokens = [_encoded_column(table.column(f), f) for f in features]
    names = [orjson.dumps(f).replace(b"%", b"%%") for f in features]
    template = b"{" + b",".join(n + b":%b" for n in names) + b"}"
    values = [template % row for row in zip(*tokens, strict=True)]
    return list(zip(keys, times, values, strict=True))


# -- reading --------------------------------------------------------------------------------------


def _row_keys(columns: Mapping[str, list[Any]], join_keys: Sequence[str], view: str) -> list[str | None]:
    """Each entity row's key for a view (None for a row missing a key value)."""
    for name in join_keys:
        if name not in columns:
            raise InvalidInput(
                f"the entity rows have no column {name!r}, a join key of feature view {view!r}",
                {"field": name, "view": view},
            )
    if len(join_keys) == 1:
        column = columns[join_keys[0]]
        kinds = set(map(type, column))
        if kinds == {int}:  # the common cases, without a call per value
            return list(map(str, column))
        if kinds == {str}:
            return list(column)
        return [_key_part(v) for v in column]
    keys: list[str | None] = []
    for values in zip(*(columns[k] for k in join_keys), strict=True):
        parts = [p for p in map(_key_part, values) if p is not None]
        keys.append(KEY_SEPARATOR.join(map(_escape, parts)) if len(parts) == len(values) else None)
    return keys


def _output_names(
    columns: Mapping[str, Any],
    views: Sequence[tuple[FeatureView, tuple[str, ...], tuple[str, ...]]],
    full_feature_names: bool,
) -> list[Sequence[str]]:
    """Each view's output column names, checked not to clash with each other or the entity rows."""
    names: list[Sequence[str]] = [
        [f"{view.name}__{f}" for f in features] if full_feature_names else features
        for view, _keys, features in views
    ]
    flat = [name for own in names for name in own]
    if len(set(flat).union(columns)) == len(flat) + len(columns):
        return names
    taken = set(columns)
    for name in flat:
        if name in taken:
            hint = "" if full_feature_names else " (full_feature_names=True tells them apart)"
            raise InvalidInput(
                f"two columns of the online features would be called {name!r}{hint}",
                {"field": "features", "feature": name},
            )
        taken.add(name)
    return names


def read_online(
    store: OnlineStore,
    project: str,
    views: Sequence[tuple[FeatureView, tuple[str, ...], tuple[str, ...]]],
    entity_rows: Mapping[str, Sequence[Any]],
    *,
    full_feature_names: bool = False,
    now: datetime | None = None,
) -> OnlineFeatures:
    """Read features of every entity row from the online store: one ``store.read_views`` for the views
    that share their join keys.

    Args:
        store: The online store.
        project: The project whose values are read.
        views: Per view, its definition, its join keys and the features wanted from it, in order.
        entity_rows: ``{column: [values]}``: the join keys of the views, and any other columns, which
            the answer carries through unchanged.
        full_feature_names: Name the features ``view__feature`` instead of ``feature``.
        now: The time a value's age is measured against (for the views' TTLs); now by default.

    Returns:
        The entity rows' columns then each feature's, in the requested order, with a status per view
        and row: ``PRESENT``, ``NOT_FOUND`` (nulls) or ``OUTSIDE_TTL`` (nulls: older than the TTL).

    Raises:
        InvalidInput: Entity rows without a view's join key, columns of different lengths, or two
            features that would share a name.
        ServiceUnavailable: The store cannot be read.
    """
    columns: dict[str, list[Any]] = {
        name: values if isinstance(values, list) else list(values) for name, values in entity_rows.items()
    }
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput("the entity rows' columns have different lengths", {"field": "entity_rows"})
    rows = lengths.pop() if lengths else 0
    names = _output_names(columns, views, full_feature_names)
    now_us = to_us(now) if now is not None else time.time_ns() // 1000
    # Views with the same join keys are read together: one store call for all of them.
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, (_view, join_keys, _features) in enumerate(views):
        groups.setdefault(join_keys, []).append(i)
    answers: list[tuple[list[str], list[list[Any]]]] = [([], [])] * len(views)
    for join_keys, members in groups.items():
        keys = _row_keys(columns, join_keys, views[members[0]][0].name)
        wanted = [k for k in (keys if rows == 1 else dict.fromkeys(keys)) if k is not None]
        names_read = [views[i][0].name for i in members]
        found = store.read_views(project, names_read, wanted) if wanted else [[] for _ in members]
        for i, view_found in zip(members, found, strict=True):
            view, _keys, features = views[i]
            cutoff = now_us - view.ttl // _MICROSECOND if view.ttl is not None else None
            if rows == 1:
                answers[i] = _answer_one(view_found[0] if view_found else None, features, cutoff)
            else:
                answers[i] = _answer_many(keys, wanted, view_found, features, cutoff)
    output: dict[str, list[Any]] = dict(columns)
    statuses: dict[str, list[str]] = {}
    for (view, _keys, _features), own_names, (view_statuses, view_values) in zip(
        views, names, answers, strict=True
    ):
        statuses[view.name] = view_statuses
        output.update(zip(own_names, view_values, strict=True))
    return OnlineFeatures(output, statuses)


def _answer_one(
    found: tuple[int, bytes] | None, features: Sequence[str], cutoff: int | None
) -> tuple[list[str], list[list[Any]]]:
    """The fast path of a single entity row: no dedup, no per-row bookkeeping."""
    if found is None:
        return [STATUS_NOT_FOUND], [[None] for _ in features]
    if cutoff is not None and found[0] < cutoff:
        return [STATUS_OUTSIDE_TTL], [[None] for _ in features]
    get = _loads(found[1]).get
    return [STATUS_PRESENT], [[get(f)] for f in features]


def _answer_many(
    keys: list[str | None],
    wanted: list[str],
    found: list[tuple[int, bytes] | None],
    features: Sequence[str],
    cutoff: int | None,
) -> tuple[list[str], list[list[Any]]]:
    """Statuses and per-feature value lists of many rows from what the store found for the distinct
    keys ``wanted`` (each decoded once)."""
    if len(features) > 1 and wanted and len(wanted) == len(keys) and None not in found:
        records = cast(list[tuple[int, bytes]], found)
        if cutoff is None or min(r[0] for r in records) >= cutoff:
            # Every row a distinct entity, found and fresh: its values in row order, transposed.
            rows = _loads(b"[" + b",".join([r[1] for r in records]) + b"]")
            try:
                values = [list(c) for c in zip(*map(itemgetter(*features), rows), strict=True)]
            except KeyError:  # a value lacks a feature: the general path gives it None
                pass
            else:
                return [STATUS_PRESENT] * len(keys), values
    states: dict[str | None, str] = {}
    present: list[str] = []
    encoded: list[bytes] = []
    for key, record in zip(wanted, found, strict=True):
        if record is None:
            continue
        if cutoff is not None and record[0] < cutoff:
            states[key] = STATUS_OUTSIDE_TTL
        else:
            states[key] = STATUS_PRESENT
            present.append(key)
            encoded.append(record[1])
    # One parse of all the values (a JSON array of them) costs less than one parse each.
    decoded: dict[str | None, Mapping[str, Any]] = (
        dict(zip(present, _loads(b"[" + b",".join(encoded) + b"]"), strict=True)) if encoded else {}
    )
    statuses = [states.get(k, STATUS_NOT_FOUND) for k in keys]
    rows = [decoded.get(k, _NOTHING) for k in keys]
    if len(features) > 1 and decoded and len(decoded) == len(wanted):
        try:  # every row found with every feature: itemgetter and a transpose beat a get per value
            return statuses, [list(c) for c in zip(*map(itemgetter(*features), rows), strict=True)]
        except KeyError:
            pass
    return statuses, [[row.get(f) for row in rows] for f in features]


# -- opening --------------------------------------------------------------------------------------


def _sqlite_path(url: str, home: Path) -> Path:
    """The file of ``sqlite`` (``<home>/online.db``) or ``sqlite:///path`` (SQLAlchemy's form: three
    slashes then the path, so ``sqlite:////abs/online.db`` is absolute and ``sqlite:///online.db``
    relative to the working directory)."""
    if url == "sqlite":
        return home / "online.db"
    path = url.removeprefix("sqlite:///")
    return Path(path)


def open_online_store(settings: Settings) -> OnlineStore:
    """Open the online store ``settings.online_store`` (``STEWARD_ONLINE_STORE``) names.

    ``sqlite`` is a SQLite file ``<home>/online.db``; ``sqlite:///path.db`` another file (SQLAlchemy's
    form: ``sqlite:////abs/online.db`` for an absolute path); ``redis://host:port/db`` or
    ``rediss://…`` a Redis server (needs ``pip install 'steward-ml[redis]'``).

    Raises:
        InvalidInput: For another value, naming ``STEWARD_ONLINE_STORE``.
    """
    url = settings.online_store.strip()
    if url == "sqlite" or (url.startswith("sqlite:///") and len(url) > len("sqlite:///")):
        from steward.features.online_sqlite import SqliteOnlineStore

        return SqliteOnlineStore(_sqlite_path(url, settings.home))
    if url.startswith(("redis://", "rediss://")):
        from steward.features.online_redis import RedisOnlineStore

        return RedisOnlineStore(url)
    raise InvalidInput(
        f"STEWARD_ONLINE_STORE {masked_url(url)!r} is not an online store: use sqlite, "
        "sqlite:///path/online.db or redis://host:port/db",
        {"field": "online_store"},
    )
