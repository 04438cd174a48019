"""Executors: where steps run. ``local`` (in-process), ``processes`` (a worker pool), ``ray`` (a cluster)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from steward.errors import InvalidInput
from steward.pipelines.executors.base import Executor, Task, TaskResult

if TYPE_CHECKING:
    from steward.store.blobs import BlobStore

__all__ = ["Executor", "Task", "TaskResult", "make_executor"]


def make_executor(spec: str | Executor, blobs: BlobStore | None = None) -> Executor:
    """The executor named by ``spec``: ``local``, ``processes`` (or ``processes:4``), ``ray``,
    ``ray://host:port``; an ``Executor`` object is returned as it is.

    Raises:
        InvalidInput: For an unknown name.
    """
    if not isinstance(spec, str):
        return spec
    name, _, arg = spec.partition(":")
    if spec == "local":
        from steward.pipelines.executors.local import LocalExecutor

        return LocalExecutor(blobs)
    if name == "processes":
        from steward.pipelines.executors.processes import ProcessExecutor

        if arg and not arg.isdigit():
            raise InvalidInput(f"processes:{arg}: the worker count must be a number", {"field": "executor"})
        return ProcessExecutor(int(arg) if arg else None)
    if name == "ray":
        from steward.pipelines.executors.ray import ray_executor

        made: Executor = ray_executor(spec)
        return made
    raise InvalidInput(
        f"unknown executor {spec!r}: use local, processes, processes:N, ray or ray://host:port",
        {"field": "executor"},
    )
