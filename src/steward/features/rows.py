"""Rows at the feature store's edge: entity rows in any of their forms, rows pushed to a view (checked
and cast to its declared types), stream entries (text fields cast), and the offline/online comparison
of ``skew``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steward.errors import InvalidInput
from steward.features.models import STATUS_NOT_FOUND, OnlineFeatures
from steward.features.resolve import Selection

if TYPE_CHECKING:
    import pyarrow as pa

_ARROW_TYPES = {
    "float64": "float64",
    "float32": "float32",
    "int64": "int64",
    "int32": "int32",
    "bool": "bool_",
    "string": "string",
}


def entity_table(rows: Any) -> pa.Table:
    """Entity rows as an Arrow table: from a table, a pandas or polars DataFrame, ``{column: [values]}``
    or a list of ``{column: value}`` dicts.

    Raises:
        InvalidInput: For anything else.
    """
    import pyarrow as pa

    from steward.data.inputs import as_table

    if isinstance(rows, pa.Table):
        return rows
    try:
        if isinstance(rows, Mapping):
            return pa.table({str(k): list(v) if not isinstance(v, pa.Array) else v for k, v in rows.items()})
        if isinstance(rows, list):
            return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise InvalidInput(f"cannot read the entity rows: {exc}", {"field": "entity_rows"}) from exc
    return as_table(rows)


def entity_columns(rows: Any) -> dict[str, list[Any]]:
    """Entity rows as ``{column: [values]}`` (a dict of lists passes through, the online fast path).

    Raises:
        InvalidInput: For columns of different lengths or rows of another form.
    """
    if isinstance(rows, Mapping):
        columns = {str(k): v if isinstance(v, list) else list(v) for k, v in rows.items()}
    elif isinstance(rows, list):
        names = list(dict.fromkeys(k for row in rows for k in row))
        columns = {n: [row.get(n) for row in rows] for n in names}
    else:
        table = entity_table(rows)
        columns = {n: table.column(n).to_pylist() for n in table.column_names}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput("the entity rows' columns have different lengths", {"field": "entity_rows"})
    return columns


def view_rows(selection: Selection, table: pa.Table) -> pa.Table:
    """The columns of ``table`` a view stores, cast to their declared types.

    Raises:
        InvalidInput: Naming a missing column or a value its feature's type cannot hold.
    """
    import pyarrow as pa

    view = selection.view
    for column in [*selection.join_keys, view.timestamp]:
        if column not in table.column_names:
            raise InvalidInput(f"rows for {view.name!r} lack the column {column!r}", {"field": column})
    out = {k: table.column(k) for k in selection.join_keys}
    out[view.timestamp] = _cast(table.column(view.timestamp), pa.timestamp("us", tz="UTC"), view.timestamp)
    for feature in view.features:
        if feature.name not in table.column_names:
            message = f"rows for {view.name!r} lack feature {feature.name!r}"
            raise InvalidInput(message, {"field": "features", "feature": feature.name})
        out[feature.name] = _cast(table.column(feature.name), _arrow_type(feature.dtype), feature.name)
    return pa.table(out)


def stream_rows(selection: Selection, table: pa.Table) -> pa.Table:
    """A stream batch with its timestamp read: epoch seconds (numbers, or text holding one) become
    timestamps; ISO text is left to ``view_rows``' cast. Features are cast there too."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = selection.view.timestamp
    if name not in table.column_names:
        return table
    column = table.column(name)
    seconds: pa.ChunkedArray | None = None
    if (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or (
            pa.types.is_string(column.type)
            and pc.all(pc.match_substring_regex(column, r"^\d+(\.\d+)?$")).as_py()
        )
    ):
        seconds = column.cast(pa.float64())
    if seconds is None:
        return table
    micros = pc.cast(pc.round(pc.multiply(seconds, 1e6)), pa.int64())
    parsed = pc.cast(micros, pa.timestamp("us", tz="UTC"))
    return table.set_column(table.column_names.index(name), name, parsed)


def _arrow_type(dtype: str) -> pa.DataType:
    import pyarrow as pa

    if dtype == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return getattr(pa, _ARROW_TYPES[dtype])()


def _cast(column: pa.ChunkedArray, target: pa.DataType, name: str) -> pa.ChunkedArray:
    import pyarrow as pa

    if column.type == target:
        return column
    try:
        if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is None:
            return column.cast(pa.timestamp("us")).cast(target)
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        message = f"{name!r} holds {column.type}, which does not fit {target}: {exc}"
        raise InvalidInput(message, {"field": name, "feature": name}) from None


def skew_mismatches(
    selection: Selection, offline: pa.Table, online: OnlineFeatures, tolerance: float
) -> tuple[list[dict[str, Any]], int, int]:
    """Compare a training set's values with the online ones, entity by entity.

    Returns:
        The mismatches, how many values were compared, and how many entities with offline values
        the online store lacks.
    """
    statuses = online.statuses[selection.view.name]
    keys = [offline.column(k).to_pylist() for k in selection.join_keys]
    mismatches: list[dict[str, Any]] = []
    compared = missing = 0
    offline_values = {f: offline.column(f).to_pylist() for f in selection.features}
    for i, status in enumerate(statuses):
        entity = keys[0][i] if len(keys) == 1 else [k[i] for k in keys]
        if status == STATUS_NOT_FOUND:
            if any(offline_values[f][i] is not None for f in selection.features):
                missing += 1
            continue
        for f in selection.features:
            compared += 1
            left, right = offline_values[f][i], online.columns[f][i]
            if not same(left, right, tolerance):
                mismatches.append({"entity": entity, "feature": f, "offline": left, "online": right})
    return mismatches, compared, missing


def same(left: Any, right: Any, tolerance: float) -> bool:
    """Whether two feature values agree (floats within a relative ``tolerance``; NaN equals NaN)."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, float) or isinstance(right, float):
        try:
            a, b = float(left), float(right)
        except (TypeError, ValueError):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    return bool(left == right)
