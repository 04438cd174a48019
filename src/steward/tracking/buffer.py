"""The metric buffer: ``log_metric`` appends in memory; points reach the store in batches.

A flush happens when the buffer holds ``max_points``, every ``interval`` seconds (a daemon thread),
at the end of the run and at interpreter exit. A flush that fails keeps its points for the next try
and the error is raised by the next ``log_metric``/``flush``/end of run, so nothing is lost silently.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from steward.core.names import validate_key
from steward.errors import StewardError
from steward.tracking.models import MetricSeries
from steward.tracking.validation import check_metric_value, check_step, check_timestamp

log = logging.getLogger(__name__)

Writer = Callable[[Sequence[MetricSeries]], int]


class MetricFlushError(StewardError):
    """Buffered metric points could not be written; they are kept and retried on the next flush."""

    code = "metric_flush_failed"


class MetricBuffer:
    """Buffers metric points of one run and writes them in batches.

    Args:
        writer: Writes a batch of series (one per key) in one call, e.g. ``TrackingService.log_metrics``
            bound to the run.
        max_points: Flush when this many points are buffered.
        interval: Flush points older than this many seconds (checked by a background thread).
    """

    def __init__(self, writer: Writer, max_points: int = 10_000, interval: float = 2.0) -> None:
        self._writer = writer
        self.max_points = max_points
        self.interval = interval
        self._points: list[tuple[str, float, int, int]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._keys: set[str] = set()
        self._next_step: dict[str, int] = defaultdict(int)
        self._error: BaseException | None = None
        self._oldest = 0.0
        self.written = 0
        _FLUSHER.register(self)

    def add(self, key: str, value: object, step: object = None, timestamp: object = None) -> None:
        """Buffer one point, checked now so that a bad value fails at the call that logged it.

        Args:
            key: Metric key.
            value: A finite real number.
            step: An integer step; by default one more than this key's last step (starting at 0).
            timestamp: Unix milliseconds; by default now.

        Raises:
            InvalidInput: For a bad key, value, step or timestamp, naming ``metrics.<key>``.
            MetricFlushError: If an earlier flush failed (its points are still buffered).
        """
        if self._error is not None:
            self._raise_pending()
        if key not in self._keys:
            validate_key(key, "metrics")
            self._keys.add(key)
        if type(value) is not float or not math.isfinite(value):
            value = check_metric_value(key, value)
        if step is None:
            step = self._next_step[key]
        elif type(step) is not int:
            step = check_step(key, step)
        self._next_step[key] = step + 1
        stamp = time.time_ns() // 1_000_000 if timestamp is None else check_timestamp(key, timestamp)
        with self._lock:
            if not self._points:
                self._oldest = time.monotonic()
            self._points.append((key, value, step, stamp))
            full = len(self._points) >= self.max_points
        if full:
            self.flush()

    def add_many(self, values: dict[str, object], step: object = None, timestamp: object = None) -> None:
        """Buffer one point for each key of ``values`` at the same step and time."""
        stamp = time.time_ns() // 1_000_000 if timestamp is None else timestamp
        for key, value in values.items():
            self.add(key, value, step, stamp)

    def __len__(self) -> int:
        return len(self._points)

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        raise MetricFlushError(
            f"writing buffered metrics failed: {error}; {len(self._points)} points are kept and retried",
            {"buffered_points": len(self._points)},
        ) from error

    def flush(self, writer: Writer | None = None) -> int:
        """Write every buffered point now; return how many were written.

        Args:
            writer: Write this batch with another function than the buffer's own (the end of a run
                writes its last points and its end in one call). Not called when nothing is buffered.

        Raises:
            MetricFlushError: If writing fails; the points stay buffered for the next flush.
        """
        with self._flush_lock:
            with self._lock:
                points, self._points = self._points, []
            if not points:
                if self._error is not None:
                    self._raise_pending()
                return 0
            try:
                written = (writer or self._writer)(_to_series(points))
            except BaseException as exc:
                with self._lock:
                    self._points = points + self._points
                self._error = None
                raise MetricFlushError(
                    f"writing {len(points)} buffered metric points failed: {exc}; they are kept and retried",
                    {"buffered_points": len(self._points)},
                ) from exc
            self._error = None
            self.written += written
            return written

    def flush_if_due(self) -> None:
        """Flush if the oldest buffered point has waited ``interval`` seconds (used by the flusher thread).

        A failure is logged and kept, to be raised by the next call on the run.
        """
        if self._points and time.monotonic() - self._oldest >= self.interval:
            try:
                self.flush()
            except MetricFlushError as exc:
                log.error("background metric flush failed: %s", exc)
                self._error = exc.__cause__ or exc

    def close(self) -> None:
        """Stop background flushing of this buffer (call after the final ``flush``)."""
        _FLUSHER.unregister(self)


def _to_series(points: list[tuple[str, float, int, int]]) -> list[MetricSeries]:
    grouped: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for key, value, step, stamp in points:
        grouped[key].append((value, step, stamp))
    series = []
    for key, rows in grouped.items():
        values, steps, stamps = zip(*rows, strict=True)
        series.append(
            MetricSeries(
                key,
                np.fromiter(steps, dtype=np.int64, count=len(rows)),
                np.fromiter(values, dtype=np.float64, count=len(rows)),
                np.fromiter(stamps, dtype=np.int64, count=len(rows)),
                checked=True,  # every point passed add()'s checks
            )
        )
    return series


class _Flusher:
    """One daemon thread per process that flushes every live buffer when its interval is due."""

    def __init__(self) -> None:
        self._buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, buffer: MetricBuffer) -> None:
        with self._lock:
            self._buffers.add(buffer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="steward-metric-flusher", daemon=True)
                self._thread.start()

    def unregister(self, buffer: MetricBuffer) -> None:
        with self._lock:
            self._buffers.discard(buffer)

    def _loop(self) -> None:
        while True:
            time.sleep(0.2)
            with self._lock:
                buffers = list(self._buffers)
            for buffer in buffers:
                buffer.flush_if_due()


_FLUSHER = _Flusher()


def _reset_after_fork() -> None:
    # A forked worker inherits the lock in whatever state a parent thread left it, and no thread.
    _FLUSHER._lock = threading.Lock()
    _FLUSHER._thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
