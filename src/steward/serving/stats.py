"""Window statistics: what each worker saw per endpoint, version and time window, in ``serving_windows``.

On the request path :meth:`WindowRecorder.observe` only adds to an in-memory
:class:`~steward.serving.models.WindowStats` (one lock, no I/O). A background thread writes the
worker's rows every ``flush_seconds`` and once more at shutdown: each row holds the worker's running
totals for one window, so writing it again is harmless and a failed write is simply retried. The
worker is ``host:pid``. Rollout analysis and monitoring read the rows back with :func:`read_windows`,
summed over workers and windows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from steward.errors import StewardError
from steward.serving.models import WindowStats
from steward.store.metadata import MetadataStore
from steward.store.tables import serving_windows

log = logging.getLogger("steward.serving")

DEFAULT_WINDOW_SECONDS: Final = 10
DEFAULT_FLUSH_SECONDS: Final = 2.0
_KEY_COLUMNS: Final = ("project", "endpoint", "version", "window_start", "worker")
_VALUE_COLUMNS: Final = (
    "role", "requests", "errors", "latency_sum_ms", "latency_buckets", "shadow_compared", "shadow_agreed",
    "updated_at",
)  # fmt: skip


def worker_id() -> str:
    """This process's worker name, ``host:pid`` (cut to the column's 64 characters)."""
    return f"{socket.gethostname()[:50]}:{os.getpid()}"


@dataclass
class _Window:
    role: str
    stats: WindowStats
    dirty: bool = True


WindowKey = tuple[str, str, str, int]
"""(project, endpoint, version, window start in Unix ms)."""


class WindowRecorder:
    """Sums requests per (project, endpoint, version, window) and writes them from a background thread.

    Args:
        metadata: The database holding ``serving_windows`` (None: count in memory only).
        window_seconds: The windows' length; windows start at multiples of it (Unix time).
        flush_seconds: How often the background thread writes.
        worker: This worker's name (:func:`worker_id` by default).
    """

    def __init__(
        self,
        metadata: MetadataStore | None,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        worker: str | None = None,
    ) -> None:
        if window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        self._metadata = metadata
        self._window_ms = int(window_seconds * 1000)
        self._flush_seconds = flush_seconds
        self.worker = worker or worker_id()
        self._windows: dict[WindowKey, _Window] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(
        self, project: str, endpoint: str, version: str, role: str, latency_ms: float, error: bool = False
    ) -> None:
        """Count one answered request (in the window of now).

        Args:
            project: The endpoint's project.
            endpoint: The endpoint.
            version: The version that answered.
            role: Its arm's role.
            latency_ms: Arrival to answer.
            error: Whether the model failed (a 5xx).
        """
        now = time.time_ns() // 1_000_000
        key = (project, endpoint, version, now - now % self._window_ms)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(role, WindowStats())
            window.stats.observe(latency_ms, error)
            window.dirty = True

    def compared(self, project: str, endpoint: str, version: str, agreed: bool) -> None:
        """Count one shadow answer compared with the answer returned.

        Args:
            project: The endpoint's project.
            endpoint: The endpoint.
            version: The shadow version.
            agreed: Whether the two answers agreed.
        """
        now = time.time_ns() // 1_000_000
        key = (project, endpoint, version, now - now % self._window_ms)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window("shadow", WindowStats())
            window.stats.shadow_compared += 1
            window.stats.shadow_agreed += int(agreed)
            window.dirty = True

    def snapshot(self) -> dict[WindowKey, WindowStats]:
        """A copy of the windows held in memory (the current one and any not written yet)."""
        with self._lock:
            return {key: WindowStats().merge(window.stats) for key, window in self._windows.items()}

    def start(self) -> None:
        """Start the background thread that writes every ``flush_seconds``."""
        if self._metadata is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="steward-serving-stats", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write every window that changed since the last write; return how many rows were written.

        A failed write is logged and retried at the next flush. A window is forgotten once it is written
        and a whole window has passed since it ended (a request timed just before a window's end may
        still be counted a moment after it).
        """
        if self._metadata is None:
            return 0
        now = time.time_ns() // 1_000_000
        stale = now - now % self._window_ms - self._window_ms
        with self._lock:
            rows = [_row(key, w, self.worker, now) for key, w in self._windows.items() if w.dirty]
            for window in self._windows.values():
                window.dirty = False
            for key in [key for key in self._windows if key[3] < stale]:
                del self._windows[key]
        if not rows:
            return 0
        try:
            with self._metadata.transaction() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                statement = dialect.insert(serving_windows)
                statement = statement.on_conflict_do_update(
                    index_elements=list(_KEY_COLUMNS),
                    set_={name: statement.excluded[name] for name in _VALUE_COLUMNS},
                )
                conn.execute(statement, rows)
        except Exception as exc:  # the database is away: keep the counts and write them next time
            message = exc.message if isinstance(exc, StewardError) else str(exc)
            log.warning("could not write %d serving window rows (will retry): %s", len(rows), message)
            with self._lock:
                for row in rows:
                    key = (row["project"], row["endpoint"], row["version"], row["window_start"])
                    found = self._windows.get(key)
                    if found is None:
                        found = self._windows[key] = _Window(row["role"], _stats_of(row))
                    found.dirty = True
            return 0
        return len(rows)


def _row(key: WindowKey, window: _Window, worker: str, now: int) -> dict[str, Any]:
    stats = window.stats
    project, endpoint, version, start = key
    return {
        "project": project, "endpoint": endpoint, "version": version, "window_start": start,
        "worker": worker, "role": window.role, "requests": stats.requests, "errors": stats.errors,
        "latency_sum_ms": stats.latency_sum_ms, "latency_buckets": stats.buckets_json(),
        "shadow_compared": stats.shadow_compared, "shadow_agreed": stats.shadow_agreed, "updated_at": now,
    }  # fmt: skip


def _stats_of(row: Any) -> WindowStats:
    return WindowStats(
        requests=int(row["requests"]),
        errors=int(row["errors"]),
        latency_sum_ms=float(row["latency_sum_ms"]),
        buckets=WindowStats.parse_buckets(row["latency_buckets"]),
        shadow_compared=int(row["shadow_compared"]),
        shadow_agreed=int(row["shadow_agreed"]),
    )


def read_windows(
    metadata: MetadataStore, project: str, endpoint: str, since_ms: int, until_ms: int | None = None
) -> dict[str, WindowStats]:
    """Sum what every worker recorded for one endpoint, per version, over the windows that start in
    ``[since_ms, until_ms)``.

    Args:
        metadata: The database.
        project: The endpoint's project (rows of other projects are never read).
        endpoint: The endpoint.
        since_ms: The first window start included (Unix ms).
        until_ms: Windows starting at or after this are left out (None: up to now).

    Returns:
        Version → its summed :class:`WindowStats` (versions with no rows are absent).

    Raises:
        ServiceUnavailable: If the database cannot be reached.
    """
    table = serving_windows
    query = select(table).where(
        table.c.project == project, table.c.endpoint == endpoint, table.c.window_start >= since_ms
    )
    if until_ms is not None:
        query = query.where(table.c.window_start < until_ms)
    totals: dict[str, WindowStats] = {}
    with metadata.read() as conn:
        for row in conn.execute(query).mappings():
            totals.setdefault(row["version"], WindowStats()).merge(_stats_of(row))
    return totals
