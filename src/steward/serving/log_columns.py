"""The prediction log's fast path: records of the server's array fast path copied into column buffers
as they are offered, so the writer thread has almost nothing left to do.

At 10,000 requests a second, sorting that many record objects into groups and tables took the writer
~50 ms of every second, all of it holding the GIL; the event loop, which hands the GIL over at every
socket call, then waited at each one, and the requests of those 50 ms made the p99 latency. Here the
request path files each record under its group as it is offered (a key and a few list appends, about a
microsecond, under the log's lock), and a flush turns each group into a table with a handful of NumPy
and Arrow calls, no Python step per record.

A group (:class:`ColumnBuffer`) is one project, endpoint, hour, model, version and role, with one input
layout (column names, dtype, shape of a row) and one output layout: what the writer's general path
would also have put in one table, and the same table it would have built (``PREDICTION_SCHEMA`` and the
``in.*``/``out.*`` columns of ``as_columns``, below, which the writer uses too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from steward.core.names import NAME_PATTERN
from steward.serving.log_store import HOUR_MS
from steward.serving.models import NamedColumns, PredictionRecord

Columns = dict[str, Any]
"""A record's inputs or outputs as named columns: 1-D arrays, or 2-D arrays for list columns."""

GroupKey = tuple[Any, ...]
"""``(project, endpoint, hour, model, version, role, names, input dtype, input row shape, output
dtype, output row shape)``."""


def group_key(record: PredictionRecord) -> tuple[GroupKey, np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """The group of a record the buffers take, with its input and output arrays; None for any other
    record (a DataFrame, objects, float16, rows that do not pair up, an unusable name), which the
    writer converts itself."""
    inputs, outputs = record.inputs, record.outputs
    array, names = (inputs.values, inputs.names) if type(inputs) is NamedColumns else (inputs, None)
    if type(array) is not np.ndarray or type(outputs) is not np.ndarray:
        return None
    shape, answered = array.shape, outputs.shape
    if not (shape and answered and shape[0] == answered[0] and shape[0] and len(shape) <= 2 >= len(answered)):
        return None
    if (
        array.dtype.kind not in "biuf"
        or outputs.dtype.kind not in "biuf"
        or np.float16
        in (
            array.dtype,
            outputs.dtype,
        )
    ):
        return None
    key = (
        record.project, record.endpoint, record.at_ms // HOUR_MS, record.model, record.version, record.role,
        names, array.dtype, shape[1:], outputs.dtype, answered[1:],
    )  # fmt: skip
    return key, array, outputs


def usable(project: str, endpoint: str) -> bool:
    """Whether a project and endpoint name can name a folder of the log (Steward names)."""
    return bool(NAME_PATTERN.match(project) and NAME_PATTERN.match(endpoint))


class ColumnBuffer:
    """The records of one group, kept as lists of their arrays and values until a flush.

    Args:
        key: The group (:data:`GroupKey`).
    """

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.inputs: list[np.ndarray[Any, Any]] = []
        self.outputs: list[np.ndarray[Any, Any]] = []
        self.request_ids: list[str] = []
        self.at_ms: list[int] = []
        self.latency_ms: list[float] = []
        self.status: list[int] = []
        self.rows = 0

    @property
    def records(self) -> int:
        """Records added."""
        return len(self.request_ids)

    def add(
        self, record: PredictionRecord, inputs: np.ndarray[Any, Any], outputs: np.ndarray[Any, Any]
    ) -> None:
        """Keep one record (``inputs`` and ``outputs`` as ``group_key`` returned them): list appends only,
        on the request path."""
        self.inputs.append(inputs)
        self.outputs.append(outputs)
        self.request_ids.append(record.request_id)
        self.at_ms.append(record.at_ms)
        self.latency_ms.append(record.latency_ms)
        self.status.append(record.status)
        self.rows += inputs.shape[0]

    def table(self) -> pa.Table:
        """The group's rows as the table the writer's general path makes of the same records."""
        _project, endpoint, _hour, model, version, role, names, *_layout = self.key
        n, records = self.rows, self.records
        inputs, outputs = np.concatenate(self.inputs), np.concatenate(self.outputs)
        at_ms: np.ndarray[Any, Any] = np.array(self.at_ms, np.int64)
        latency_ms: np.ndarray[Any, Any] = np.array(self.latency_ms, np.float64)
        status: np.ndarray[Any, Any] = np.array(self.status, np.int32)
        if n == records:  # one row per request, the usual case
            request_ids = pa.array(self.request_ids, pa.string())
            row = pa.array(np.zeros(n, np.int32))
        else:
            counts = np.fromiter((a.shape[0] for a in self.inputs), np.int64, records)
            request_ids = pa.array(np.repeat(np.array(self.request_ids, dtype=object), counts), pa.string())
            starts = np.cumsum(counts) - counts
            row = pa.array((np.arange(n) - np.repeat(starts, counts)).astype(np.int32))
            at_ms = np.repeat(at_ms, counts)
            latency_ms = np.repeat(latency_ms, counts)
            status = np.repeat(status, counts)
        columns: dict[str, Any] = {
            "request_id": request_ids,
            "row": row,
            "at": pa.array(at_ms, pa.timestamp("ms", tz="UTC")),
            "endpoint": pa.repeat(pa.scalar(endpoint, pa.string()), n),
            "model": pa.repeat(pa.scalar(model, pa.string()), n),
            "version": pa.repeat(pa.scalar(version, pa.string()), n),
            "role": pa.repeat(pa.scalar(role, pa.string()), n),
            "latency_ms": pa.array(latency_ms),
            "status": pa.array(status),
        }
        if names is not None and inputs.ndim == 2:
            # One transposing copy, then each column a contiguous row Arrow takes without copying; a
            # strided view per column costs a copy each.
            by_column = np.ascontiguousarray(inputs.T)
            for i, name in enumerate(names):
                columns.setdefault(f"in.{name}", by_column[i])
        else:
            columns.update(as_columns(inputs, "in.", "x"))
        columns.update(as_columns(outputs, "out.", None))
        return pa.table({name: as_arrow(values) for name, values in columns.items()})


# -- values to Arrow columns (both this fast path and the writer's general path) ---------------


def as_columns(value: object, prefix: str, tensor_name: str | None) -> Columns:
    """``value`` as named columns of one length (1-D, or 2-D for list columns)."""
    if value is None:
        return {}
    if isinstance(value, NamedColumns):
        block = as_values(value.values)
        named: Columns = {}
        for i, name in enumerate(value.names):
            named.setdefault(f"{prefix}{name}", block[:, i])
        return named
    if isinstance(value, Mapping):
        return {f"{prefix}{name}": as_values(v) for name, v in value.items()}
    if isinstance(value, pa.Table | pa.RecordBatch):
        return {f"{prefix}{name}": as_values(value.column(i)) for i, name in enumerate(value.schema.names)}
    frame_columns = getattr(value, "columns", None)
    if frame_columns is not None and hasattr(value, "iloc"):  # a pandas DataFrame
        getter = getattr(value, "_get_column_array", None)  # pandas' own, no Series per column
        names = [str(name) for name in frame_columns.tolist()]
        found: Columns = {}
        for i, name in enumerate(names):
            column = getter(i) if getter is not None else value.iloc[:, i].to_numpy()
            found.setdefault(f"{prefix}{name}", as_values(column))
        return found
    array = as_values(value)
    if tensor_name is not None:
        return {f"{prefix}{tensor_name}": array}
    if array.ndim == 2 and array.shape[1] == 1:
        return {f"{prefix}prediction": array[:, 0]}
    if array.ndim == 2 and array.shape[1] > 1 and array.dtype.kind in "fiub":
        return {f"{prefix}prediction": np.argmax(array, axis=1), f"{prefix}scores": array}
    return {f"{prefix}prediction" if array.ndim == 1 else f"{prefix}scores": array}


def as_values(value: object) -> Any:
    """A column's values: a numpy array (1-D, or 2-D with one list per row), or an Arrow/pandas array."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, pa.ChunkedArray | pa.Array) or hasattr(value, "__arrow_array__"):
        return value
    else:
        array = np.asarray(value)
    if array.ndim == 0:
        array = array.reshape(1)
    elif array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    return array


def concat_column(pieces: list[Any]) -> pa.Array | pa.ChunkedArray:
    """One Arrow column from the same column of several records."""
    if all(isinstance(p, np.ndarray) and p.dtype != object for p in pieces):
        if pieces[0].ndim == 1:
            return as_arrow(np.concatenate(pieces) if len(pieces) > 1 else pieces[0])
        flat = np.concatenate([p.reshape(-1) for p in pieces])
        widths = np.repeat([p.shape[1] for p in pieces], [p.shape[0] for p in pieces])
        offsets = np.zeros(len(widths) + 1, np.int32)
        np.cumsum(widths, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), as_arrow(flat))
    arrays = [as_arrow(p) for p in pieces]
    if len({a.type for a in arrays}) == 1:
        return pa.chunked_array(arrays)
    return pa.chunked_array([a.cast(pa.string()) for a in arrays])


def as_arrow(values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    try:
        if isinstance(values, np.ndarray):
            if values.dtype == np.float16:  # DuckDB cannot read float16
                values = values.astype(np.float32)
            if values.ndim == 2:
                if values.dtype != object:
                    return concat_column([values])
                return pa.array([list(row) for row in values], from_pandas=True)
            if values.dtype != object:
                return pa.array(values)
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        text = [None if v is None or v != v else str(v) for v in np.asarray(values, dtype=object).reshape(-1)]
        return pa.array(text, pa.string())
