"""The ``processes`` executor: steps in parallel worker processes on this machine.

Workers are forked where the platform allows it (Linux), so they start in milliseconds with the
pipeline's modules already imported; elsewhere they are spawned. A worker that dies (a segfault, an
``os._exit``) breaks the whole pool, and with it every task in flight: those tasks are run again one
at a time in a pool of their own, so only the step that kills its worker fails.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from steward.errors import InvalidInput
from steward.pipelines.dsl import Step, load_step
from steward.pipelines.executors.base import Task, TaskResult
from steward.pipelines.worker import run_task

_importable: set[int] = set()


def check_importable(step: Step) -> None:
    """Make sure a worker process can find ``step`` by its reference (it is sent by name, not by value).

    Raises:
        InvalidInput: If the step is local to a function or not reachable under its module's name.
    """
    if id(step) in _importable:
        return
    if "<locals>" in step.fn.__qualname__:
        raise InvalidInput(
            f"step {step.name!r} cannot run in a worker process: it is defined inside a function; "
            "define it at module level (or use executor='local')",
            {"field": "step", "step": step.name},
        )
    try:
        found = load_step(step.fn.__module__, step.fn.__qualname__)
    except InvalidInput as exc:
        raise InvalidInput(
            f"step {step.name!r} cannot run in a worker process: {exc.message}", {"field": "step"}
        ) from None
    if found is not step:
        raise InvalidInput(
            f"step {step.name!r} cannot run in a worker process: {step.reference} names another object",
            {"field": "step", "step": step.name},
        )
    _importable.add(id(step))


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
        self._suspects: deque[Task] = deque()
        self._isolated: Task | None = None
        self._isolation_pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context())
        return self._pool

    def submit(self, task: Task) -> None:
        """Send ``task`` to a worker.

        Raises:
            InvalidInput: If the step or one of its constant inputs cannot be sent to another process.
        """
        check_importable(task.step)
        try:
            future = self._ensure_pool().submit(run_task, task)
        except BrokenProcessPool:
            self._pool = None
            future = self._ensure_pool().submit(run_task, task)
        with self._lock:
            self._pending[future] = task
        future.add_done_callback(self._collect)

    def _collect(self, future: Future[TaskResult]) -> None:
        with self._lock:
            task = self._pending.pop(future, None)
        if task is None:
            return
        isolated = task is self._isolated
        try:
            self._results.put(future.result())
        except BrokenProcessPool as exc:
            if isolated:  # alone in its pool: this task is what kills its worker
                self._isolation_pool = None
                self._results.put(
                    TaskResult(
                        task.key, task.attempt, ok=False, error=f"the worker process running it died: {exc}"
                    )
                )
            else:
                self._pool = None
                self._suspects.append(task)
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

    def _isolate_next(self) -> None:
        """Run the next task that was in flight when a worker died, alone in a one-worker pool."""
        if self._isolated is not None:
            with self._lock:
                if any(t is self._isolated for t in self._pending.values()):
                    return
        self._isolated = None
        if not self._suspects:
            return
        task = self._suspects.popleft()
        if self._isolation_pool is None:
            self._isolation_pool = ProcessPoolExecutor(max_workers=1, mp_context=_context())
        self._isolated = task
        future = self._isolation_pool.submit(run_task, task)
        with self._lock:
            self._pending[future] = task
        future.add_done_callback(self._collect)

    def wait(self, timeout: float | None) -> list[TaskResult]:
        """Return finished results, waiting up to ``timeout`` seconds for the first."""
        self._isolate_next()
        if self._suspects or self._isolated is not None:
            timeout = 0.05 if timeout is None else min(timeout, 0.05)
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
        for pool in (self._pool, self._isolation_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._isolation_pool = None
