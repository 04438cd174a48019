"""The ``local`` executor: each step in this process, one after another (for debugging)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from steward.pipelines.executors.base import Task, TaskResult
from steward.pipelines.worker import run_task

if TYPE_CHECKING:
    from steward.store.blobs import BlobStore


class LocalExecutor:
    """Runs each task at once, in the calling thread; values pass between steps without reloading."""

    name = "local"

    def __init__(self, blobs: BlobStore | None = None) -> None:
        self._blobs = blobs
        self._done: list[TaskResult] = []

    def submit(self, task: Task) -> None:
        """Run ``task`` now (its result is returned by the next ``wait``)."""
        self._done.append(run_task(task, self._blobs, keep_values=True))

    def wait(self, timeout: float | None) -> list[TaskResult]:
        """Return what ran since the last call."""
        done, self._done = self._done, []
        return done

    def shutdown(self) -> None:
        """Nothing to stop."""
