"""Late labels: ground truth recorded after the answer, joined to the prediction log by request id.

Labels are appended as Parquet under ``labels/project=<p>/endpoint=<e or _any>/day=<YYYY-MM-DD>/`` (see
:mod:`steward.serving.log_store`); nothing is ever rewritten. A label may arrive before its prediction
is flushed, or name a request that was sampled out: it is kept, and counted as *unmatched* by the join
until a prediction matches it. Labelling the same request (and row) again replaces the label: the join
takes the latest. Labels logged without an endpoint join the predictions of any endpoint of the project.

:func:`labelled_predictions` returns the joined rows; :func:`outcomes_by_version` sums them per model
version, which canary analysis and A/B results read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from steward.core.names import validate_name
from steward.core.time import now_ms
from steward.errors import InvalidInput, ServiceUnavailable
from steward.serving.log_store import (
    ANY_ENDPOINT,
    DAY_MS,
    PREDICTION_SCHEMA,
    LogStore,
    day_of,
    prediction_view,
    read_files,
    window_ms,
    with_ms_times,
)

if TYPE_CHECKING:
    import duckdb

    from steward.config import Settings
    from steward.store.platform import Platform

MAX_LABELS: Final = 1_000_000
"""The most labels one call records."""
MAX_REQUEST_ID: Final = 256
"""The longest request id accepted (characters)."""
LABEL_SKEW_MS: Final = DAY_MS
"""How much earlier than a prediction its label may be stamped (clocks of different machines) and still
be found: a window's labels are read from the day partitions from ``since`` minus this."""
UNMATCHED_KEY: Final = b"steward.unmatched_labels"
"""The schema metadata key of :func:`labelled_predictions`' result holding the unmatched label count."""

_NUMERIC_TYPES = frozenset(
    {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
)

Outcome = dict[str, float | int | None]
"""One version's outcomes: see :func:`outcomes_by_version`."""


def label_table(
    request_ids: Sequence[str], labels: Sequence[Any], rows: Sequence[int] | None = None
) -> pa.Table:
    """Check labels and return them as a table (``request_id``, ``row``, ``label``); the last label given
    for a request and row wins.

    Args:
        request_ids: The ids of the labelled requests (``X-Request-Id`` of each answer).
        labels: The ground truth, one scalar per request id: numbers, booleans, or strings (not mixed
            with numbers).
        rows: Which input row of each request the label is for (0 for all by default: single-row
            requests).

    Raises:
        InvalidInput: Naming the field: lengths that differ, no or empty ids, labels that are not finite
            scalars of one kind, or negative rows.
    """
    ids = _sequence(request_ids, "request_ids")
    values = _sequence(labels, "labels")
    if not ids:
        raise InvalidInput("request_ids is empty: give at least one request id", {"field": "request_ids"})
    if len(ids) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} labels per call, not {len(ids)}", {"field": "request_ids"})
    if len(values) != len(ids):
        raise InvalidInput(f"labels has {len(values)} values for {len(ids)} request ids", {"field": "labels"})
    for i, rid in enumerate(ids):
        if not isinstance(rid, str) or not rid or len(rid) > MAX_REQUEST_ID:
            raise InvalidInput(
                f"request_ids[{i}] must be a non-empty string of at most {MAX_REQUEST_ID} characters, "
                f"not {rid!r:.80}",
                {"field": "request_ids", "index": i},
            )
    row_numbers = [0] * len(ids) if rows is None else _rows(rows, len(ids))
    latest: dict[tuple[str, int], Any] = {}
    for rid, row, value in zip(ids, row_numbers, (_scalar(v, i) for i, v in enumerate(values)), strict=True):
        latest.pop((rid, row), None)  # re-inserted last: the last label given wins
        latest[(rid, row)] = value
    kept = list(latest.values())
    kinds = {type(v) for v in kept}
    if str in kinds and len(kinds) > 1:
        raise InvalidInput("labels mixes strings with numbers or booleans", {"field": "labels"})
    kind = pa.string() if str in kinds else pa.bool_() if kinds == {bool} else pa.int64()
    if float in kinds:
        kind, kept = pa.float64(), [float(v) for v in kept]
    elif kind == pa.int64():
        kept = [int(v) for v in kept]
    try:
        label_array = pa.array(kept, kind)
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise InvalidInput(f"labels cannot be stored: {exc}", {"field": "labels"}) from None
    return pa.table(
        {
            "request_id": pa.array([k[0] for k in latest], pa.string()),
            "row": pa.array([k[1] for k in latest], pa.int32()),
            "label": label_array,
        }
    )


def log_labels(
    source: Settings | Platform | LogStore,
    request_ids: Sequence[str],
    labels: Sequence[Any],
    *,
    rows: Sequence[int] | None = None,
    endpoint: str | None = None,
    project: str | None = None,
) -> int:
    """Append ground truth for logged predictions (see :func:`label_table` for what is accepted).

    Args:
        source: The platform (its acting project by default), its settings, or a ``LogStore``.
        request_ids: The labelled requests.
        labels: One label per request id.
        rows: The input row of each request each label is for (0 by default).
        endpoint: The endpoint the requests went to; None: they join predictions of any endpoint.
        project: The project (default: the platform's acting project, or the settings' project).

    Returns:
        How many labels were recorded (a request and row given twice counts once).

    Raises:
        InvalidInput: For bad input, naming the field; nothing is written.
        ServiceUnavailable: If the storage fails; nothing is written.
    """
    store, project = LogStore.of(source, project)
    folder = ANY_ENDPOINT if endpoint is None else validate_name(endpoint, "endpoint")
    table = label_table(request_ids, labels, rows)
    stamp = now_ms()
    table = table.append_column(
        "labelled_at", pa.array(np.full(table.num_rows, stamp, np.int64), pa.timestamp("ms", tz="UTC"))
    )
    try:
        store.write(f"{store.labels_dir(project, folder)}/day={day_of(stamp)}", table)
    except OSError as exc:
        raise ServiceUnavailable(f"cannot record labels in {store.url}: {exc}", {"url": store.url}) from exc
    return int(table.num_rows)


def labelled_predictions(
    source: Settings | Platform | LogStore,
    endpoint: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    project: str | None = None,
) -> pa.Table:
    """The endpoint's logged predictions in the window that have a label, each with its latest label.

    Args:
        source: The platform (its acting project by default), its settings, or a ``LogStore``.
        endpoint: The endpoint.
        since: Predictions from this time (inclusive; naive times are UTC).
        until: Predictions before this time.
        project: The project (default: the platform's acting project, or the settings' project).

    Returns:
        The prediction columns (as ``read_predictions``) plus ``label`` and ``labelled_at``, oldest
        first. Its schema metadata :data:`UNMATCHED_KEY` holds the number of unmatched labels: this
        endpoint's own labels (not those logged without an endpoint) recorded in the window whose
        request and row match no prediction in it — not yet flushed, sampled out, or for a prediction
        outside the window (a wider window gives the exact count).

    Raises:
        InvalidInput: For a bad name or window, or label files whose types cannot be read together.
        ServiceUnavailable: If the storage cannot be read.
    """
    with _joined(source, endpoint, since, until, project) as (con, store, low, high):
        table = store.query(
            con,
            "SELECT p.*, l.label, l.labelled_at FROM predictions p JOIN latest l "
            'ON p.request_id = l.request_id AND p."row" = l."row" ORDER BY p."at", p.request_id, p."row"',
        )
        unmatched = _unmatched(con, store, low, high)
    table = with_ms_times(table)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), UNMATCHED_KEY: str(unmatched)})


def unmatched_labels(table: pa.Table) -> int:
    """The unmatched label count :func:`labelled_predictions` recorded in ``table``'s metadata (0 if none)."""
    metadata: dict[bytes, bytes] = table.schema.metadata or {}
    return int(metadata.get(UNMATCHED_KEY, b"0").decode())


def outcomes_by_version(
    source: Settings | Platform | LogStore,
    endpoint: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    project: str | None = None,
) -> dict[str, Outcome]:
    """Per model version, how its answered rows in the window compare with their latest labels.

    Rows answered with an error status (400 and above) are left out.

    Args:
        source: The platform (its acting project by default), its settings, or a ``LogStore``.
        endpoint: The endpoint.
        since: Predictions from this time (inclusive; naive times are UTC).
        until: Predictions before this time.
        project: The project (default: the platform's acting project, or the settings' project).

    Returns:
        ``{version: {...}}`` for every version that answered in the window: ``predictions`` (rows
        answered), ``n`` (of those, labelled), ``correct`` (labelled rows whose ``out.prediction`` equals
        the label: compared as numbers when both are numbers or booleans, else as text), ``accuracy``
        (correct / n), ``label_mean`` and ``label_var`` (sample variance) of numeric or boolean labels
        (for rates and Welch's t-test). Each is None where it cannot be computed: no labelled rows, no
        ``out.prediction`` column, text labels, or a single label for the variance.

    Raises:
        InvalidInput: For a bad name or window, or files whose types cannot be read together.
        ServiceUnavailable: If the storage cannot be read.
    """
    with _joined(source, endpoint, since, until, project) as (con, store, _, _):
        types = _types(con, "predictions") | {f"label:{k}": v for k, v in _types(con, "latest").items()}
        label_numeric = types.get("label:label", "VARCHAR") in _NUMERIC_TYPES
        prediction = types.get("out.prediction")
        as_type = "DOUBLE" if label_numeric and prediction in _NUMERIC_TYPES else "VARCHAR"
        same = f'CAST(p."out.prediction" AS {as_type}) = CAST(l.label AS {as_type})'
        correct = f"sum(CASE WHEN {same} THEN 1 ELSE 0 END)" if prediction is not None else "NULL"
        mean = "avg(CAST(l.label AS DOUBLE))" if label_numeric else "NULL"
        var = "var_samp(CAST(l.label AS DOUBLE))" if label_numeric else "NULL"
        rows = store.query(
            con,
            f"SELECT p.version, count(*) AS predictions, count(l.label) AS n, {correct} AS correct, "
            f"{mean} AS label_mean, {var} AS label_var FROM predictions p LEFT JOIN latest l "
            'ON p.request_id = l.request_id AND p."row" = l."row" WHERE p.status < 400 '
            "GROUP BY p.version ORDER BY p.version",
        ).to_pylist()
    found: dict[str, Outcome] = {}
    for row in rows:
        n = int(row["n"])
        correct_count = None if prediction is None else int(row["correct"] or 0)
        found[str(row["version"])] = {
            "predictions": int(row["predictions"]),
            "n": n,
            "correct": correct_count,
            "accuracy": correct_count / n if n and correct_count is not None else None,
            "label_mean": _finite(row["label_mean"]) if n else None,
            "label_var": _finite(row["label_var"]) if n > 1 else None,
        }
    return found


# -- helpers ------------------------------------------------------------------------------------------


@contextmanager
def _joined(
    source: Settings | Platform | LogStore,
    endpoint: str,
    since: datetime | None,
    until: datetime | None,
    project: str | None,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, LogStore, int | None, int | None]]:
    """A DuckDB connection with the views of :func:`_views`, and the store and window (Unix ms)."""
    store, project = LogStore.of(source, project)
    validate_name(endpoint, "endpoint")
    low, high = window_ms(since, until)
    with store.connect() as con:
        _views(con, store, project, endpoint, low, high)
        yield con, store, low, high


def _views(
    con: duckdb.DuckDBPyConnection,
    store: LogStore,
    project: str,
    endpoint: str,
    low: int | None,
    high: int | None,
) -> None:
    """Create ``predictions`` (the window's) and ``latest`` (the latest label per request and row)."""
    if not prediction_view(con, store, project, endpoint, low, high):
        con.register("predictions", PREDICTION_SCHEMA.empty_table())
    first_day = day_of(max(low - LABEL_SKEW_MS, 0)) if low is not None else None
    files = [
        f
        for folder in (endpoint, ANY_ENDPOINT)
        for f in store.files(store.labels_dir(project, folder), "day", first_day)
    ]
    if files:
        read_files(con, store, files, "label_files", filename=True)
    else:
        empty = pa.table(
            {
                "request_id": pa.array([], pa.string()),
                "row": pa.array([], pa.int32()),
                "label": pa.array([], pa.string()),
                "labelled_at": pa.array([], pa.timestamp("ms", tz="UTC")),
                "filename": pa.array([], pa.string()),
            }
        )
        con.register("label_files", empty)
    con.execute(
        'CREATE VIEW latest AS SELECT request_id, "row", label, labelled_at, '
        f"contains(filename, '/endpoint={ANY_ENDPOINT}/') AS any_endpoint FROM label_files "
        'QUALIFY row_number() OVER (PARTITION BY request_id, "row" '
        "ORDER BY labelled_at DESC, parse_filename(filename) DESC) = 1"
    )


def _unmatched(con: duckdb.DuckDBPyConnection, store: LogStore, low: int | None, high: int | None) -> int:
    where = ["NOT l.any_endpoint"]
    if low is not None:
        where.append(f"l.labelled_at >= make_timestamp({low * 1000})")
    if high is not None:
        where.append(f"l.labelled_at < make_timestamp({high * 1000})")
    table = store.query(
        con,
        f"SELECT count(*) AS n FROM latest l WHERE {' AND '.join(where)} AND NOT EXISTS "
        '(SELECT 1 FROM predictions p WHERE p.request_id = l.request_id AND p."row" = l."row")',
    )
    return int(table.column("n")[0].as_py())


def _types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {str(name): str(kind) for name, kind, *_ in con.execute(f"DESCRIBE {view}").fetchall()}


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _sequence(value: object, field: str) -> list[Any]:
    if isinstance(value, str | bytes) or value is None:
        raise InvalidInput(f"{field} must be a list, not {type(value).__name__}", {"field": field})
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise InvalidInput(
                f"{field} must be one-dimensional, not of shape {value.shape}", {"field": field}
            )
        return value.tolist()  # type: ignore[no-any-return]
    try:
        return list(value)  # type: ignore[call-overload,no-any-return]
    except TypeError:
        raise InvalidInput(f"{field} must be a list, not {type(value).__name__}", {"field": field}) from None


def _scalar(value: Any, index: int) -> bool | int | float | str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise InvalidInput(
            f"labels[{index}] is {value}: labels must be finite", {"field": "labels", "index": index}
        )
    raise InvalidInput(
        f"labels[{index}] must be a number, a boolean or a string, not {type(value).__name__}",
        {"field": "labels", "index": index},
    )


def _rows(rows: Sequence[int], count: int) -> list[int]:
    found = _sequence(rows, "rows")
    if len(found) != count:
        raise InvalidInput(f"rows has {len(found)} values for {count} request ids", {"field": "rows"})
    for i, row in enumerate(found):
        if isinstance(row, np.integer):
            row = int(row)
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < 2**31:
            raise InvalidInput(
                f"rows[{i}] must be a non-negative integer, not {row!r:.40}", {"field": "rows"}
            )
        found[i] = row
    return found
