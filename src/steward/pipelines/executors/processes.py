"""The ``processes`` executor: steps in parallel worker processes on this machine.

Workers are forked where the platform allows it (Linux), so they start in milliseconds with the
pipeline's modules already imported; elsewhere they are spawned. The pool stays warm between runs in
one process (a tuning study runs many), as long as the environment variables and ``sys.path`` are
unchanged; a worker forked before a step's module was loaded reports that it cannot import the step,
and the task goes to a freshly forked pool instead. (Other state the parent changes after the pool
started is not seen by its workers, as with any process pool.)

A worker that dies (a segfault, an ``os._exit``) breaks the whole pool, and with it every task in
flight: those tasks are run again one at a time in a pool of their own, so only the step that kills
its worker fails.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import queue
import sys
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from steward.errors import InvalidInput
from steward.pipelines.dsl import Step, load_step
from steward.pipelines.executors.base import Task, TaskResult
from steward.pipelines.worker import run_task

_importable: set[int] = set()
_warm: dict[tuple[int, str], tuple[int, ProcessPoolExecutor]] = {}
_warm_lock = threading.Lock()


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


def _method() -> str:
    return os.environ.get("STEWARD_START_METHOD") or ("fork" if sys.platform == "linux" else "spawn")


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(_method()))


def _shared_pool(workers: int, fresh: bool = False) -> ProcessPoolExecutor:
    """The warm pool of ``workers`` processes (a new one when ``fresh`` or when it broke)."""
    key = (workers, _method())
    # Workers see the environment as it was at the fork: a changed one needs new workers.
    fingerprint = hash((tuple(sorted(os.environ.items())), tuple(sys.path)))
    with _warm_lock:
        known, pool = _warm.get(key, (fingerprint, None))
        if pool is not None and (fresh or known != fingerprint or getattr(pool, "_broken", False)):
            pool.shutdown(wait=False, cancel_futures=False)
            pool = None
        if pool is None:
            pool = _new_pool(workers)
            _warm[key] = (fingerprint, pool)
        return pool


def _drop_shared(pool: ProcessPoolExecutor) -> None:
    # Other runs (threads of a tuning study) may have tasks queued on it: let those finish there.
    with _warm_lock:
        for key, (_, existing) in list(_warm.items()):
            if existing is pool:
                del _warm[key]
    pool.shutdown(wait=False, cancel_futures=False)


@atexit.register
def _close_warm_pools() -> None:
    with _warm_lock:
        pools = [pool for _, pool in _warm.values()]
        _warm.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor:
    """Worker processes (``workers`` of them; the CPU count by default), kept warm between runs."""

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise InvalidInput("workers must be at least 1", {"field": "workers"})
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._results: queue.SimpleQueue[TaskResult] = queue.SimpleQueue()
        self._pending: dict[Future[TaskResult], Task] = {}
        self._lock = threading.Lock()
        self._resubmit: deque[Task] = deque()
        self._moved: set[int] = set()
        self._suspects: deque[Task] = deque()
        self._isolated: Task | None = None
        self._isolation_pool: ProcessPoolExecutor | None = None

    def _send(self, pool: ProcessPoolExecutor, task: Task) -> None:
        future = pool.submit(run_task, task)
        with self._lock:
            self._pending[future] = task
        future.add_done_callback(self._collect)

    def submit(self, task: Task) -> None:
        """Send ``task`` to a worker.

        Raises:
            InvalidInput: If the step cannot be sent to another process.
        """
        check_importable(task.step)
        if self._pool is None:
            self._pool = _shared_pool(self.workers)
        try:
            self._send(self._pool, task)
        except BrokenProcessPool:
            self._pool = _shared_pool(self.workers, fresh=True)
            self._send(self._pool, task)

    def _collect(self, future: Future[TaskResult]) -> None:
        with self._lock:
            task = self._pending.pop(future, None)
        if task is None:
            return
        isolated = task is self._isolated
        try:
            result = future.result()
        except BrokenProcessPool as exc:
            if isolated:  # alone in its pool: this task is what kills its worker
                self._isolation_pool = None
                self._results.put(
                    TaskResult(
                        task.key, task.attempt, ok=False, error=f"the worker process running it died: {exc}"
                    )
                )
            else:
                self._suspects.append(task)
            return
        except BaseException as exc:  # e.g. a value that could not be pickled to or from the worker
            self._results.put(
                TaskResult(
                    task.key,
                    task.attempt,
                    ok=False,
                    error=f"step {task.step.name!r} could not run in a worker process: "
                    f"{type(exc).__name__}: {exc} (pass values that can be pickled)",
                )
            )
            return
        if result.unresolved and id(task) not in self._moved:
            self._moved.add(id(task))
            self._resubmit.append(task)  # a worker older than the step's module: try fresh workers
            return
        self._results.put(result)

    def _move_stale(self) -> None:
        if not self._resubmit:
            return
        self._pool = _shared_pool(self.workers, fresh=True)
        while self._resubmit:
            self._send(self._pool, self._resubmit.popleft())

    def _isolate_next(self) -> None:
        """Run the next task that was in flight when a worker died, alone in a one-worker pool."""
        if self._suspects and self._pool is not None:
            _drop_shared(self._pool)
            self._pool = None
        if self._isolated is not None:
            with self._lock:
                if any(t is self._isolated for t in self._pending.values()):
                    return
        self._isolated = None
        if not self._suspects:
            return
        task = self._suspects.popleft()
        if self._isolation_pool is None:
            self._isolation_pool = _new_pool(1)
        self._isolated = task
        self._send(self._isolation_pool, task)

    def wait(self, timeout: float | None) -> list[TaskResult]:
        """Return finished results, waiting up to ``timeout`` seconds for the first."""
        self._move_stale()
        self._isolate_next()
        if self._suspects or self._isolated is not None or self._resubmit:
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
        """Release the workers: the warm pool is kept unless tasks are still running on it."""
        with self._lock:
            abandoned = bool(self._pending)
        if self._pool is not None and abandoned:
            _drop_shared(self._pool)
        if self._isolation_pool is not None:
            self._isolation_pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._isolation_pool = None
