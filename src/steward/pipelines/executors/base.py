"""What an executor is given (a ``Task``), what it hands back (a ``TaskResult``), and its Protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from steward.pipelines.models import OutputRef

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.pipelines.dsl import Step


@dataclass
class Task:
    """One attempt of one node.

    Attributes:
        key: The node's key.
        attempt: 1 for the first attempt, then 2, 3 … for retries.
        step: The step to run (sent to a worker by reference, ``module:qualname``).
        inputs: Per argument: an ``OutputRef`` to load, or ``("value", constant)``.
        run_id: The step's child tracking run (the active run while the step's code runs).
        timeout: Seconds the attempt may take, or ``None``.
        settings: Where the worker finds the blob store and the database.
        live: Already-loaded input values (the in-process executor passes these, skipping blob reads).
    """

    key: str
    attempt: int
    step: Step
    inputs: Mapping[str, Any]
    run_id: str | None
    timeout: float | None
    settings: Settings
    live: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """How an attempt ended.

    Attributes:
        key: The node's key.
        attempt: Which attempt.
        ok: Whether the step returned (a value of the declared type).
        outputs: References of the stored outputs, in order.
        error: The traceback (or a one-line reason) when not ok.
        timed_out: Whether the attempt was stopped by its timeout.
        start_time: Unix ms when the step's code started.
        end_time: Unix ms when it ended.
        host: The host name.
        node_id: The Ray node id (empty elsewhere).
        pid: The worker's process id.
        log: What the step printed or logged.
        values: The returned values themselves (only from the in-process executor).
        unresolved: The worker could not import the step (it should go to a fresh worker).
    """

    key: str
    attempt: int
    ok: bool
    outputs: list[OutputRef] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    start_time: int = 0
    end_time: int = 0
    host: str = ""
    node_id: str = ""
    pid: int = 0
    log: str = ""
    values: list[Any] | None = None
    unresolved: bool = False


class Executor(Protocol):
    """Runs tasks somewhere and reports them as they finish.

    A new executor needs three methods; an in-process one that runs each task at once looks like::

        class Immediate:
            name = "immediate"
            def __init__(self): self.done = []
            def submit(self, task): self.done.append(run_task(task))
            def wait(self, timeout): out, self.done = self.done, []; return out
            def shutdown(self): pass
    """

    name: str

    def submit(self, task: Task) -> None:
        """Start ``task`` (without waiting for it)."""
        ...

    def wait(self, timeout: float | None) -> list[TaskResult]:
        """Return the results of tasks that finished, waiting up to ``timeout`` seconds for one."""
        ...

    def shutdown(self) -> None:
        """Stop the workers (tasks still running are abandoned)."""
        ...


def resource_request(resources: Mapping[str, float]) -> dict[str, float]:
    """A step's resources with defaults filled in (one CPU, no GPU)."""
    out = {"cpu": 1.0, "gpu": 0.0}
    out.update({k: float(v) for k, v in resources.items()})
    return out
