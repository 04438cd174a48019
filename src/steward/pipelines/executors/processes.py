"""The ``processes`` executor: steps in parallel worker processes on this machine.

Workers are forked where the platform allows it (Linux), so they start in milliseconds with the
pipeline's modules already imported; elsewhere they are spawned. A worker that dies (a segfault, an
``os._exit``) fails the step it ran and the pool is rebuilt for the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from steward.errors import InvalidInput
from steward.pipelines.executors.base import Task, TaskResult
from steward.pipelines.worker import run_task


def _context() -> Any:
    method = os.environ.get("STEWARD_START_METHOD") or ("fork" if sys.platform == "linux" else "spawn")
    return multiprocessing.get_context(method)


class ProcessExecutor:
    """A pool of worker processes (``workers`` of them; the CPU count by default)."""

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise InvalidInput("workers must be at least 1", {"field": "workers"})
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._results: queue.SimpleQueue[TaskResult] = queue.SimpleQueue()
        self._pending: dict[Future[TaskResult], Task] = {}

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context())
        return self._pool

    def submit(self, task: Task) -> None:
        """Send ``task`` to a worker.

        Raises:
            InvalidInput: If the step or one of its constant inputs cannot be sent to another process.
        """
        try:
            future = self._ensure_pool().submit(run_task, task)
        except BrokenProcessPool:
            self._pool = None
            future = self._ensure_pool().submit(run_task, task)
        self._pending[future] = task
        future.add_done_callback(self._collect)

    def _collect(self, future: Future[TaskResult]) -> None:
        task = self._pending.pop(future, None)
        if task is None:
            return
        try:
            self._results.put(future.result())
        except BrokenProcessPool as exc:
            self._results.put(
                TaskResult(
                    task.key, task.attempt, ok=False, error=f"the worker process running it died: {exc}"
                )
            )
            self._pool = None
        except BaseException as exc:  # e.g. a value that could not be pickled to or from the worker
            self._results.put(
                TaskResult(
                    task.key,
                    task.attempt,
                    ok=False,
                    error=f"step {task.step.name!r} could not run in a worker process: "
                    f"{type(exc).__name__}: {exc} (define steps at module level and pass picklable values)",
                )
            )

    def wait(self, timeout: float | None) -> list[TaskResult]:
        """Return finished results, waiting up to ``timeout`` seconds for the first."""
        out: list[TaskResult] = []
        try:
            out.append(self._results.get(timeout=timeout) if timeout != 0 else self._results.get_nowait())
        except queue.Empty:
            return out
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def shutdown(self) -> None:
        """Stop the workers; tasks not yet started are cancelled."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
