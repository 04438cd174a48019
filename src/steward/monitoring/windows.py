"""Reference profiles and hourly window summaries of an endpoint's prediction log.

**Which rows.** A window's rows are the answered ones (status below 400) that were returned to a
caller: shadow answers are left out (they repeat another arm's inputs). Inputs are the log's ``in.*``
columns with the prefix dropped (``in.income`` is compared with the reference's ``income``); outputs are
its ``out.*`` columns, kept with the prefix (``out.prediction``). List columns (``out.scores``, a tensor's
``in.x``) are not summarised.

**References** are summarised once and kept in ``monitoring_references`` under a key: the dataset
version's id for a dataset, ``log:<endpoint>:<start ms>:<end ms>`` for a span of the endpoint's own log
(stored once that span has closed), and, for output drift, ``<key>|out:<model>/<version>`` (the served
version's predictions on a seeded sample of :data:`SAMPLE_ROWS` reference rows) or ``<key>|out`` (a log
span's own ``out.*`` columns).

**Windows** ``[now - window, now)`` are counted per hour into ``monitoring_windows`` (one row per
endpoint, reference and hour) and merged. An hour is final, and never read from the log again, once it
was summarised at least :data:`SETTLE_MS` after it ended (the log's writers have flushed it by then);
the still-open hour (stored up to ``now``) and hours summarised too soon are counted again on every run.
The window's first piece, from ``now - window`` to the next full hour, is counted straight from the log
on each run and not stored (it is not a whole hour), so the window is exact and at most one partial and
one open hour are read per run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from steward.core.ids import new_id
from steward.core.time import from_ms, now_ms
from steward.errors import InvalidInput
from steward.monitoring import repository as repo
from steward.monitoring.models import TableSummary
from steward.monitoring.summaries import merge, summarize
from steward.serving.log_store import LogStore, prediction_files, prediction_view, read_predictions

if TYPE_CHECKING:
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform

HOUR_MS: Final = 3_600_000
SETTLE_MS: Final = 120_000
"""How long after an hour ends its summary becomes final."""
SAMPLE_ROWS: Final = 5_000
"""Reference rows the served version predicts on, for output drift."""
INPUT_PREFIX: Final = "in."
OUTPUT_PREFIX: Final = "out."

Pick = Callable[[pa.Table], pa.Table]
"""Selects (and renames) the columns of a log table that a reference summarises."""


@dataclass(frozen=True)
class Reference:
    """A reference profile, as stored.

    Attributes:
        id: Its row id (what window summaries are stored against).
        key: What it summarises (see the module docstring).
        summary: The profile.
        pick: The columns of a log table it is compared with.
        info: What reports show about it (``kind``, ``key``, ``rows``, the dataset's ``ref`` …).

    A reference with an empty ``id`` was not stored (a log span still open): its windows are not either.
    """

    id: str
    key: str
    summary: TableSummary
    pick: Pick
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        """Whether the profile is kept (and so may have window summaries kept against it)."""
        return bool(self.id)


def answered(table: pa.Table) -> pa.Table:
    """The rows of a log table that answered a caller (status below 400, not a shadow)."""
    if table.num_rows == 0:
        return table
    keep = pc.and_kleene(
        pc.fill_null(pc.less(table.column("status"), 400), True),
        pc.fill_null(pc.not_equal(table.column("role"), "shadow"), True),
    )
    return table.filter(keep)


def inputs(table: pa.Table) -> pa.Table:
    """The ``in.*`` columns of a log table, named without the prefix."""
    names = [n for n in table.column_names if n.startswith(INPUT_PREFIX)]
    return table.select(names).rename_columns([n[len(INPUT_PREFIX) :] for n in names])


def outputs_of(version: str | None) -> Pick:
    """The ``out.*`` columns of a log table (only ``version``'s rows, if given)."""

    def pick(table: pa.Table) -> pa.Table:
        if version is not None and table.num_rows:
            table = table.filter(pc.fill_null(pc.equal(table.column("version"), version), False))
        return table.select([n for n in table.column_names if n.startswith(OUTPUT_PREFIX)])

    return pick


def read_window(platform: Platform, endpoint: str, low: int, high: int) -> pa.Table:
    """The endpoint's answered rows in ``[low, high)`` (Unix ms).

    Raises:
        InvalidInput: If the log's files cannot be read together (a column of clashing types).
    """
    return answered(read_predictions(platform, endpoint, from_ms(low), from_ms(high)))


def read_pieces(platform: Platform, endpoint: str, low: int, high: int, notes: list[str]) -> list[pa.Table]:
    """The endpoint's answered rows in ``[low, high)``: one table, or, when the files cannot be read
    together (versions that logged a column with clashing types), one table per file (summaries of
    pieces merge, so the window is still counted whole; a column then of the wrong kind is left out).
    """
    try:
        return [read_window(platform, endpoint, low, high)]
    except InvalidInput as exc:
        store, project = LogStore.of(platform, None)
        files = prediction_files(store, project, endpoint, low, high)
        reason = exc.message.strip().splitlines()[0][:200] if exc.message.strip() else "clashing types"
        notes.append(f"the log's files from {from_ms(low):%Y-%m-%d %H:%M} were read one by one: {reason}")
    kind = pa.timestamp("ms", tz="UTC")
    pieces = []
    for path in files:
        table = pq.read_table(path, filesystem=store.fs)
        at = table.column("at").cast(kind)
        keep = pc.and_(pc.greater_equal(at, pa.scalar(low, kind)), pc.less(at, pa.scalar(high, kind)))
        pieces.append(answered(table.filter(keep)))
    return pieces


def served_versions(platform: Platform, endpoint: str, low: int, high: int) -> list[dict[str, Any]]:
    """``{"model", "version", "rows"}`` of every version that answered in ``[low, high)``, most rows first
    (counted by DuckDB over the log's ``model`` and ``version`` columns only)."""
    store, project = LogStore.of(platform, None)
    with store.connect() as con:
        if not prediction_view(con, store, project, endpoint, low, high):
            return []
        rows = store.query(
            con,
            "SELECT model, version, count(*) AS n FROM predictions WHERE (status IS NULL OR status < 400) "
            "AND role IS DISTINCT FROM 'shadow' GROUP BY model, version ORDER BY n DESC, version DESC",
        ).to_pylist()
    return [{"model": r["model"], "version": r["version"], "rows": int(r["n"])} for r in rows]


def count_rows(platform: Platform, endpoint: str, low: int, high: int) -> int:
    """Answered rows in ``[low, high)``."""
    return sum(v["rows"] for v in served_versions(platform, endpoint, low, high))


# -- references ---------------------------------------------------------------------------------------


def stored_reference(
    platform: Platform, key: str, compute: Callable[[], TableSummary], *, keep: bool = True
) -> tuple[str, TableSummary]:
    """The reference profile called ``key``: read if stored, else computed (and stored if ``keep``).

    Two runs computing the same key at once both succeed; the first one stored is the one kept. A
    profile not kept has the id ``""``.
    """
    project = platform.project
    with platform.metadata.read() as conn:
        found = repo.find_reference(conn, project, key)
    if found is not None:
        return found
    summary = compute()
    if not keep:
        return "", summary
    values = {
        "id": new_id(),
        "project": project,
        "key": key,
        "summary": json.dumps(summary.to_json()),
        "rows": summary.rows,
        "created_at": now_ms(),
    }
    with platform.metadata.transaction() as conn:
        repo.insert_reference(conn, values)
        found = repo.find_reference(conn, project, key)
    assert found is not None
    return found


def predicted_outputs(
    registry: RegistryService, home: Path, model: str, version: str, table: pa.Table
) -> pa.Table:
    """The served version's answers on a seeded sample of ``table``, as the log would hold them
    (``out.prediction``: a 2-D answer's highest column, as the prediction log stores it).

    Raises:
        InvalidInput: If the version has no columns signature (a tensor model's inputs cannot be told
            apart in a table) or the sample lacks one of its columns; whatever loading or predicting
            raises (an unsafe format, a failing model) propagates.
    """
    from steward.registry.loading import load_version

    found = registry.get_version(model, version)
    signature = found.signature
    if signature is None or signature.inputs.kind != "columns":
        raise InvalidInput(f"{found.uri} has no columns signature to feed it reference rows")
    names = [c.name for c in signature.inputs.columns]
    missing = [
        c.name for c in signature.inputs.columns if c.name not in table.column_names and not c.optional
    ]
    if missing:
        raise InvalidInput(f"the reference has no column {missing[0]!r}, an input of {found.uri}")
    if table.num_rows > SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(table.num_rows, SAMPLE_ROWS, replace=False))
        table = table.take(pa.array(rows))
    sample = table.select([n for n in names if n in table.column_names])
    loaded = load_version(registry, found, home / "cache" / "models")
    answer = loaded.predict(sample)
    return pa.table(_output_columns(answer, sample.num_rows))


def _output_columns(answer: Any, rows: int) -> dict[str, Any]:
    if isinstance(answer, dict):
        return {f"{OUTPUT_PREFIX}{k}": np.asarray(v).reshape(rows, -1)[:, 0] for k, v in answer.items()}
    values = np.asarray(answer)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    elif values.ndim == 2 and values.dtype.kind in "fiub":
        values = np.argmax(values, axis=1)
    if values.ndim != 1 or len(values) != rows:
        raise InvalidInput(f"the model's answer has shape {values.shape}, not one value per row")
    return {f"{OUTPUT_PREFIX}prediction": values}


# -- windows ------------------------------------------------------------------------------------------


def safe_summary(table: pa.Table, like: TableSummary, low: int, high: int, notes: list[str]) -> TableSummary:
    """``summarize`` that leaves out (with a note) a column whose type is of another kind than the
    reference's, instead of failing the whole window."""
    while True:
        try:
            return summarize(table, like, start=from_ms(low), end=from_ms(high))
        except InvalidInput as exc:
            column = exc.details.get("column")
            if not isinstance(column, str) or column not in table.column_names:
                raise
            notes.append(f"column {column!r} left out of the window: {exc.message}")
            table = table.drop_columns([column])


def window_summaries(
    platform: Platform,
    endpoint: str,
    references: Sequence[Reference],
    low: int,
    high: int,
    now: int,
    notes: list[str],
) -> list[TableSummary]:
    """The endpoint's rows in ``[low, high)`` counted into each reference's bins (see the module
    docstring for the hourly summaries this reads and writes); each piece of the log is read at most once.

    Args:
        platform: The platform.
        endpoint: The endpoint.
        references: The profiles (each with the columns of the log it is compared with).
        low: The window's start (Unix ms).
        high: Its end (the run's now).
        now: The run's now (what decides which hours are final).
        notes: Where remarks go (a column left out for its type, logged columns the reference lacks).

    Returns:
        One merged summary per reference, in order.
    """

    def count(reference: Reference, table: pa.Table, first: int, last: int) -> TableSummary:
        picked = reference.pick(table)
        extra = sorted(set(picked.column_names) - set(reference.summary.columns))
        if extra and picked.num_rows:
            note = f"logged columns not in the reference (not compared): {', '.join(extra)}"
            if note not in notes:
                notes.append(note)
        return safe_summary(picked, reference.summary, first, last, notes)

    project, first_hour = platform.project, low // HOUR_MS * HOUR_MS
    with platform.metadata.read() as conn:
        stored = [repo.window_rows(conn, project, endpoint, r.id, first_hour, high) for r in references]
    found: list[list[TableSummary]] = [[] for _ in references]
    fresh: list[dict[str, Any]] = []
    for hour in range(first_hour, high, HOUR_MS):
        first, last = max(hour, low), min(hour + HOUR_MS, high)
        whole, aligned = first == hour and last == hour + HOUR_MS, first == hour
        pieces: list[pa.Table] | None = None
        for i, reference in enumerate(references):
            row = stored[i].get(hour)
            if whole and row is not None and row.window_end >= last and row.computed_at >= last + SETTLE_MS:
                found[i].append(TableSummary.from_json(json.loads(row.summary), like=reference.summary))
                continue
            if pieces is None:
                pieces = read_pieces(platform, endpoint, first, last, notes)
            summary = (
                merge([count(reference, p, first, last) for p in pieces]) if pieces else TableSummary(0, {})
            )
            found[i].append(summary)
            if aligned and reference.stored:  # a piece starting mid-hour is not the hour: not kept
                fresh.append({
                    "project": project, "endpoint": endpoint, "reference_id": reference.id,
                    "window_start": hour, "window_end": last, "rows": summary.rows,
                    "summary": json.dumps(summary.to_json(compact=True)), "computed_at": now,
                })  # fmt: skip
    if fresh:
        with platform.metadata.transaction() as conn:
            for values in fresh:
                repo.upsert_window(conn, values)
    return [merge(s) for s in found]
