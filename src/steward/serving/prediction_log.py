"""The prediction log: every answered request (sampled) appended as Parquet, off the request thread.

:class:`PredictionLog` is the server's :class:`~steward.serving.models.PredictionSink`. ``offer`` costs a
hash (when sampling), a lock and a ``deque.append``; a background writer drains the bounded queue and
writes, every flush interval or ``max_rows`` rows, one Parquet file per project, endpoint and hour (see
:mod:`steward.serving.log_store` for the tree). A full queue drops the record, counts it and warns at
most once per ``warn_interval`` seconds; nothing queued is lost by :meth:`PredictionLog.close`.

Rows: one per input row of a request, with the fixed columns of ``log_store.PREDICTION_SCHEMA``, then
the inputs as typed columns (``in.<column>`` for a DataFrame, a mapping of columns or an Arrow table;
``in.x`` for a tensor, as a list column when each row holds several values) and the outputs
(``out.prediction``; a 2-D output such as class probabilities is kept as the list column ``out.scores``
and ``out.prediction`` is the index of the highest score; a mapping of named outputs gives
``out.<name>``).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from steward.errors import InvalidInput
from steward.serving.log_columns import (
    ColumnBuffer,
    Columns,
    GroupKey,
    as_columns,
    concat_column,
    group_key,
    usable,
)
from steward.serving.log_store import HOUR_MS, LogStore, hour_of
from steward.serving.models import PredictionRecord

if TYPE_CHECKING:
    import fsspec

    from steward.config import Settings

logger = logging.getLogger(__name__)

_WRITE_ATTEMPTS = 3
_RETRY_DELAY = 0.2
_HASH_RANGE = 1 << 32


class PredictionLog:
    """A :class:`~steward.serving.models.PredictionSink` writing Parquet files in a background thread.

    Args:
        store: Where the files go (``LogStore.from_settings(settings)``), or an artifact root URL.
        sample_rate: The share of requests kept, in [0, 1]; decided from the request id, so a request is
            kept or skipped whole (with every version that answered it, shadows included) everywhere.
        queue_size: Records the queue holds; more are dropped and counted.
        flush_interval: Seconds between writes of what has arrived.
        max_rows: Rows gathered before a write even within an interval.
        warn_interval: The least number of seconds between two warnings about dropped records.
        filesystem: An fsspec filesystem to write with (when ``store`` is a URL).

    Raises:
        InvalidInput: For a value out of range.

    Example:
        >>> import tempfile
        >>> log = PredictionLog(tempfile.mkdtemp(), flush_interval=0.1)
        >>> log.stats()["offered"]
        0
        >>> log.close()
    """

    def __init__(
        self,
        store: LogStore | str,
        *,
        sample_rate: float = 1.0,
        queue_size: int = 10_000,
        flush_interval: float = 1.0,
        max_rows: int = 50_000,
        warn_interval: float = 10.0,
        filesystem: fsspec.AbstractFileSystem | None = None,
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
            raise InvalidInput("sample_rate must be a number in [0, 1]", {"field": "sample_rate"})
        if not 0.0 <= sample_rate <= 1.0:
            raise InvalidInput(f"sample_rate must be in [0, 1], not {sample_rate}", {"field": "sample_rate"})
        for name, value in (("queue_size", queue_size), ("max_rows", max_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, not {value!r}", {"field": name})
        for name, seconds in (("flush_interval", flush_interval), ("warn_interval", warn_interval)):
            if not isinstance(seconds, int | float) or not seconds > 0:
                raise InvalidInput(f"{name} must be a positive number of seconds", {"field": name})
        self.store = store if isinstance(store, LogStore) else LogStore(store, filesystem=filesystem)
        self.sample_rate = float(sample_rate)
        self._threshold = int(self.sample_rate * _HASH_RANGE)
        self._capacity = queue_size
        self._wake_at = max(1, queue_size // 2)
        self._interval = float(flush_interval)
        self._max_rows = max_rows
        self._warn_interval = float(warn_interval)
        self._queue: deque[PredictionRecord] = deque()
        # Records of the server's array fast path go straight into column buffers (``log_columns``).
        self._buffers: dict[GroupKey, ColumnBuffer] = {}
        self._buffered = 0  # records in the buffers
        self._buffered_rows = 0
        self._usable: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._closed = False
        self._stopping = False
        self._flush_wanted = 0
        self._flush_done = 0
        self._last_warning = -float("inf")
        self._warned_drops = 0
        self._counts = dict.fromkeys(("offered", "sampled_out", "dropped", "written", "rows", "failed"), 0)
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="steward-prediction-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> PredictionLog:
        """A log on the platform's artifact root (``settings.artifacts_url``).

        Args:
            settings: The platform's settings.
            **options: ``sample_rate``, ``queue_size``, ``flush_interval``, ``max_rows``, ``warn_interval``.
        """
        return cls(LogStore.from_settings(settings), **options)

    # -- the request path ---------------------------------------------------------------------------

    def offer(self, record: PredictionRecord) -> None:
        """Queue ``record`` for writing; return at once. A full queue (or a closed log) drops it.

        The record's inputs and outputs are read later, on the writer thread: do not change them after
        offering them.
        """
        try:
            skip = self._threshold < _HASH_RANGE and zlib.crc32(record.request_id.encode()) >= self._threshold
        except (AttributeError, UnicodeError):  # not a usable request id: kept, and counted failed later
            skip = False
        if skip:
            with self._lock:
                self._counts["offered"] += 1
                self._counts["sampled_out"] += 1
            return
        found = group_key(record)
        if found is not None:
            names = (record.project, record.endpoint)
            ok = self._usable.get(names)
            if ok is None:
                ok = self._usable[names] = usable(*names)
            if not ok:
                found = None  # the writer's general path counts it as failed
        with self._lock:
            counts = self._counts
            counts["offered"] += 1
            held = len(self._queue) + self._buffered
            if self._closed or held >= self._capacity:
                counts["dropped"] += 1
                now = time.monotonic()
                if now - self._last_warning < self._warn_interval:
                    return
                self._last_warning, self._warned_drops = now, counts["dropped"]
            else:
                if found is None:
                    self._queue.append(record)
                else:
                    key, inputs, outputs = found
                    buffer = self._buffers.get(key)
                    if buffer is None:
                        buffer = self._buffers[key] = ColumnBuffer(key)
                    buffer.add(record, inputs, outputs)
                    self._buffered += 1
                    self._buffered_rows += inputs.shape[0]
                if (
                    held + 1 >= self._wake_at or self._buffered_rows >= self._max_rows
                ) and not self._wake.is_set():
                    self._wake.set()
                return
        logger.warning(
            "prediction log: queue full (%d records), %d records dropped so far",
            self._capacity, self._warned_drops,
        )  # fmt: skip

    @property
    def dropped(self) -> int:
        """Records dropped so far because the queue was full (or the log closed)."""
        return self._counts["dropped"]

    def stats(self) -> dict[str, int]:
        """Counts since the log opened.

        Returns:
            ``offered`` (every call of ``offer``), ``sampled_out``, ``dropped`` (queue full or closed),
            ``written`` (records) and ``rows`` written, ``failed`` (records that could not be written:
            unusable names, or a storage failure after retries), ``queued`` (the queue's depth now) and
            ``files`` written. After ``close``: offered = sampled_out + dropped + written + failed.
        """
        with self._lock:
            return {**self._counts, "queued": len(self._queue) + self._buffered, "files": self._files}

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything offered so far now, waiting until it is written.

        Returns:
            Whether it was written within ``timeout`` seconds (always True without a timeout, unless the
            log is closed).
        """
        with self._done:
            self._flush_wanted += 1
            ticket = self._flush_wanted
        self._wake.set()
        with self._done:
            return (
                self._done.wait_for(
                    lambda: self._flush_done >= ticket or not self._thread.is_alive(), timeout
                )
                and self._flush_done >= ticket
            )

    def close(self) -> None:
        """Write everything queued, stop the writer and refuse (count as dropped) later offers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join()
        dropped = self._counts["dropped"]
        if dropped > self._warned_drops:
            logger.warning("prediction log closed: %d records were dropped in all", dropped)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionLog({self.store.url!r}, sample_rate={self.sample_rate})"

    # -- the writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        pending: list[PredictionRecord] = []
        rows = 0
        deadline = time.monotonic() + self._interval
        while True:
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            wanted, stopping = self._flush_wanted, self._stopping
            try:
                while self._queue:
                    record = self._queue.popleft()
                    pending.append(record)
                    rows += _row_count(record)
                    if rows >= self._max_rows:
                        self._write(pending)
                        pending, rows = [], 0
                now = time.monotonic()
                buffered = self._buffered_rows
                if (pending or buffered) and (
                    now >= deadline
                    or stopping
                    or wanted > self._flush_done
                    or rows + buffered >= self._max_rows
                ):
                    self._write(pending)
                    pending, rows = [], 0
            except Exception:  # a bug here must not silence the log: count what is lost, carry on
                logger.exception("prediction log: the writer failed; %d records lost", len(pending))
                self._count(failed=len(pending))
                pending, rows = [], 0
                now = time.monotonic()
            if now >= deadline:
                deadline = now + self._interval
            if stopping and not self._queue and not self._buffered:
                wanted = self._flush_wanted
            if wanted > self._flush_done:
                with self._done:
                    self._flush_done = wanted
                    self._done.notify_all()
            if stopping and not self._queue and not self._buffered:
                return

    def _write(self, records: list[PredictionRecord]) -> None:
        with self._lock:
            buffers, self._buffers = self._buffers, {}
            self._buffered = self._buffered_rows = 0
        try:
            partitions = _partition(records)
        except Exception:  # never let one bad batch stop the writer
            logger.exception("prediction log: could not convert %d records", len(records))
            self._count(failed=len(records))
            partitions = {}
        for buffer in buffers.values():
            project, endpoint, hour = buffer.key[:3]
            place = (project, endpoint, hour_of(hour * HOUR_MS))
            try:
                table = buffer.table()
            except Exception:
                logger.exception("prediction log: could not convert %d records", buffer.records)
                self._count(failed=buffer.records)
                continue
            partitions.setdefault(place, ([], 0))[0].append((table, buffer.records))
        for (project, endpoint, hour), (tables, failed) in partitions.items():
            if failed:
                self._count(failed=failed)
            folder = f"{self.store.predictions_dir(project, endpoint)}/hour={hour}"
            for table, count in _combined(tables):
                self._write_file(folder, table, count)

    def _write_file(self, folder: str, table: pa.Table, records: int) -> None:
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                self.store.write(folder, table)
            except Exception as exc:  # storage failures: OSError, botocore's, Arrow's
                if attempt + 1 == _WRITE_ATTEMPTS:
                    logger.error(
                        "prediction log: %d rows lost, cannot write %s: %s", table.num_rows, folder, exc
                    )
                    self._count(failed=records)
                    return
                time.sleep(_RETRY_DELAY * (attempt + 1))
            else:
                with self._lock:
                    self._counts["written"] += records
                    self._counts["rows"] += table.num_rows
                    self._files += 1
                return

    def _count(self, **increments: int) -> None:
        with self._lock:
            for key, value in increments.items():
                self._counts[key] += value


# -- records to Arrow ---------------------------------------------------------------------------------


def _row_count(record: PredictionRecord) -> int:
    for value in (record.inputs, record.outputs):
        if value is not None:
            try:
                return max(1, len(value))  # type: ignore[arg-type]
            except TypeError:
                continue
    return 1


_Tables = list[tuple[pa.Table, int]]  # each table with the number of records in it
_Member = tuple[PredictionRecord, int, "Columns", "Columns"]  # a record, its rows, inputs and outputs


def _partition(records: list[PredictionRecord]) -> dict[tuple[str, str, str], tuple[_Tables, int]]:
    """Group records by project, endpoint, hour and column layout: one table per group, and the number
    of records that could not be converted, per partition."""
    groups: dict[tuple[tuple[str, str, str], tuple[Any, ...]], list[_Member]] = {}
    result: dict[tuple[str, str, str], tuple[_Tables, int]] = {}
    known: dict[tuple[str, str], bool] = {}
    for record in records:
        place = (record.project, record.endpoint, hour_of(record.at_ms))
        names_key = (record.project, record.endpoint)
        if names_key not in known:
            known[names_key] = usable(*names_key)
        try:
            if not known[names_key]:
                raise InvalidInput(f"unusable project or endpoint name {record.endpoint!r}")
            inputs = as_columns(record.inputs, "in.", "x")
            outputs = as_columns(record.outputs, "out.", None)
            n = _rows_of(inputs) or _rows_of(outputs) or 1
            if _rows_of(outputs) not in (0, n):
                outputs = {}  # an answer that does not match the input rows cannot be paired with them
            if _rows_of(inputs) not in (0, n):
                inputs = {}
        except Exception as exc:
            logger.warning("prediction log: skipping request %s: %s", record.request_id, exc)
            tables, failed = result.get(place, ([], 0))
            result[place] = (tables, failed + 1)
            continue
        layout = (*_layout(inputs), "|", *_layout(outputs))
        groups.setdefault((place, layout), []).append((record, n, inputs, outputs))
    for (place, _), members in groups.items():
        tables, failed = result.get(place, ([], 0))
        try:
            tables.append((_table(members), len(members)))
        except Exception as exc:  # a group that cannot be concatenated: one table per record
            logger.debug("prediction log: writing a group record by record: %s", exc)
            for member in members:
                try:
                    tables.append((_table([member]), 1))
                except Exception as inner:
                    logger.warning("prediction log: skipping request %s: %s", member[0].request_id, inner)
                    failed += 1
        result[place] = (tables, failed)
    return result


def _layout(columns: Columns) -> list[tuple[str, int]]:
    return [(name, getattr(values, "ndim", 1)) for name, values in columns.items()]


def _combined(tables: _Tables) -> _Tables:
    if len(tables) <= 1:
        return tables
    try:
        combined = pa.concat_tables([t for t, _ in tables], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return tables  # clashing types: one file each; readers union them by name
    return [(combined, sum(n for _, n in tables))]


def _rows_of(columns: Columns) -> int:
    for values in columns.values():
        return len(values)
    return 0


def _table(members: list[_Member]) -> pa.Table:
    records = [m[0] for m in members]
    counts = np.fromiter((m[1] for m in members), np.int64, len(members))
    columns = _fixed_columns(records, counts)
    for name in members[0][2]:
        columns[name] = concat_column([m[2][name] for m in members])
    for name in members[0][3]:
        columns[name] = concat_column([m[3][name] for m in members])
    return pa.table(columns)


def _fixed_columns(records: list[PredictionRecord], counts: np.ndarray[Any, Any]) -> dict[str, Any]:
    """The columns every row has (``log_store.PREDICTION_SCHEMA``), each record's values repeated for
    its rows."""
    total = int(counts.sum())

    def repeated(values: list[Any], kind: pa.DataType) -> pa.Array:
        if total == len(values):
            return pa.array(values, kind)
        return pa.array(np.repeat(np.array(values, dtype=object), counts), kind)

    starts = np.cumsum(counts) - counts
    columns: dict[str, Any] = {
        "request_id": repeated([r.request_id for r in records], pa.string()),
        "row": pa.array((np.arange(total) - np.repeat(starts, counts)).astype(np.int32)),
        "at": pa.array(np.repeat(np.fromiter((r.at_ms for r in records), np.int64, len(records)), counts),
                       pa.timestamp("ms", tz="UTC")),
        "endpoint": repeated([r.endpoint for r in records], pa.string()),
        "model": repeated([r.model for r in records], pa.string()),
        "version": repeated([r.version for r in records], pa.string()),
        "role": repeated([r.role for r in records], pa.string()),
        "latency_ms": pa.array(np.repeat(np.array([r.latency_ms for r in records], np.float64), counts)),
        "status": pa.array(np.repeat(np.array([r.status for r in records], np.int32), counts)),
    }  # fmt: skip
    return columns
