"""The ``ray`` executor: each attempt of a step is one Ray task, scheduled with the step's resources.

Where Ray runs: ``RayExecutor()`` joins ``RAY_ADDRESS`` when it is set and otherwise starts a Ray on
this machine (listening on 127.0.0.1 only); ``RayExecutor("host:port")`` or ``"auto"`` joins a
cluster, ``RayExecutor("ray://host:port")`` goes through the Ray client. A Ray this process had
already started is reused and left running.

Steps travel by value: the step's function is pickled by Ray's cloudpickle, and so is every module of
its top-level package when that package is not installed (a pipeline file loaded by path, a project
folder), so workers need Steward and the step's libraries but not the pipeline's source. Installed
packages are imported by name on the workers, so their classes stay the same classes.

A step's timeout is enforced on the worker by ``run_task`` (Ray runs a task in its worker's main
thread, so the alarm works). A step that ignores the alarm (stuck in C code, or catching every
exception) loses its worker ``kill_after`` seconds later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import os
import site
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

from steward.errors import InvalidInput, ServiceUnavailable
from steward.pipelines.dsl import Step
from steward.pipelines.executors.base import Task, TaskResult, resource_request
from steward.pipelines.worker import run_task

_NEEDS_RAY = "the ray executor needs Ray: pip install 'steward-ml[ray]'"
_LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_RAY_RESOURCE = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


def import_ray() -> Any:
    """Import Ray.

    Raises:
        InvalidInput: If Ray is not installed, naming the extra that installs it.
    """
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput(_NEEDS_RAY, {"field": "executor"}) from exc
    return ray


def bind_to_loopback() -> None:
    """Make a Ray started by this process listen on 127.0.0.1 only, unless the environment asks otherwise.

    Ray decides on import, from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` (unset means all interfaces on
    Linux). The variable is set for what imports Ray later; if Ray is already imported, the value it
    read is corrected as well.
    """
    os.environ.setdefault(_LOOPBACK_VARIABLE, "0")
    if os.environ[_LOOPBACK_VARIABLE].lower() in ("1", "true") or "ray" not in sys.modules:
        return
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without that module has moved the switch; the variable is all we have
        return
    ray_constants.ENABLE_RAY_CLUSTER = False


def _ray_started() -> bool:
    module = sys.modules.get("ray")
    is_initialized = getattr(module, "is_initialized", None)
    return bool(is_initialized is not None and is_initialized())


@functools.cache
def _distributed_packages() -> frozenset[str]:
    return frozenset(importlib.metadata.packages_distributions())


@functools.cache
def _installed(top: str) -> bool:
    """Whether the top-level package ``top`` is Python's or an installed distribution's."""
    if top in sys.builtin_module_names or top in sys.stdlib_module_names or top in _distributed_packages():
        return True
    module = sys.modules.get(top)
    file = getattr(module, "__file__", None)
    places = [str(file)] if file else [str(p) for p in getattr(module, "__path__", [])]
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update([*site.getsitepackages(), site.getusersitepackages()])
    resolved = [Path(r).resolve() for r in roots]
    return not places or any(Path(p).resolve().is_relative_to(r) for p in places for r in resolved)


def _ship_source(step: Step, ray: Any) -> None:
    """Have cloudpickle send the step's own package by value when workers could not import it."""
    top = step.fn.__module__.partition(".")[0]
    if top != "__main__" and top in sys.modules and not _installed(top):
        ray.cloudpickle.register_pickle_by_value(sys.modules[top])


@dataclasses.dataclass
class _Shipment:
    """A task as sent to Ray: the step as its function and settings, since a ``Step`` pickles by name."""

    task: dict[str, Any]
    step: dict[str, Any]

    @classmethod
    def of(cls, task: Task) -> _Shipment:
        step = {f.name: getattr(task.step, f.name) for f in dataclasses.fields(Step) if f.init}
        rest = {f.name: getattr(task, f.name) for f in dataclasses.fields(Task) if f.name != "step"}
        return cls(rest, step)

    def unpack(self) -> Task:
        return Task(step=Step(**self.step), **self.task)


def _attempt(shipment: _Shipment, kill_after: float | None) -> TaskResult:
    """Run one attempt on a Ray worker (this is the Ray task)."""
    import ray

    task = shipment.unpack()
    watchdog = None
    if task.timeout is not None and kill_after is not None:
        watchdog = threading.Timer(task.timeout + kill_after, _stop_worker, (task,))
        watchdog.daemon = True
        watchdog.start()
    try:
        result = run_task(task)
    finally:
        if watchdog is not None:
            watchdog.cancel()
    result.node_id = ray.get_runtime_context().get_node_id()
    return result


def _stop_worker(task: Task) -> None:
    print(f"steward: step {task.step.name!r} ignored its timeout; stopping its Ray worker", file=sys.stderr)
    os._exit(70)


@dataclasses.dataclass
class _Running:
    task: Task
    submitted: float


def _number(resource: str, value: float) -> str:
    return f"{value / 2**30:.3g} GiB" if resource == "memory" else f"{value:g}"


def _amount(resource: str, value: float) -> str:
    if resource == "memory":
        return f"{_number(resource, value)} of memory"
    return f"{value:g} {_RAY_RESOURCE[resource]}{'' if value == 1 else 's'}"


class RayExecutor:
    """Runs each step attempt as a Ray task that asks for the step's CPUs, GPUs and memory.

    Args:
        address: ``None`` (``RAY_ADDRESS``, else a new local Ray), ``"host:port"``, ``"auto"`` or
            ``"ray://host:port"``. Ignored when this process is already connected to Ray.
        check_resources: Fail at once a step that no node of the cluster can hold (Ray would wait for
            such a node forever); turn off on an autoscaling cluster, where Ray adds the node.
        kill_after: Seconds past its timeout after which a step that ignores the timeout loses its
            worker (loading inputs and storing outputs count too); ``None`` never kills.
        **init_kwargs: Passed to ``ray.init`` (``num_cpus``, ``runtime_env`` …).

    Raises:
        InvalidInput: If Ray is not installed.
        ServiceUnavailable: If Ray cannot be started or joined. A cluster started by ``ray start``
            uses token authentication (Ray >= 2.52): set ``RAY_AUTH_MODE=token`` to join it.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        check_resources: bool = True,
        kill_after: float | None = 60.0,
        **init_kwargs: Any,
    ) -> None:
        if address is None and not os.environ.get("RAY_ADDRESS") and not _ray_started():
            bind_to_loopback()
        self._ray = ray = import_ray()
        self._owns_ray = False
        if not ray.is_initialized():
            where = address or os.environ.get("RAY_ADDRESS") or "a new local Ray"
            try:
                ray.init(address=address, **init_kwargs)
            except Exception as exc:
                raise ServiceUnavailable(
                    f"cannot start or join Ray ({where}): {type(exc).__name__}: {exc}", {"field": "executor"}
                ) from exc
            self._owns_ray = True
        self._remote = ray.remote(_attempt)
        self._check_resources = check_resources
        self._kill_after = kill_after
        self._nodes: list[dict[str, float]] | None = None
        self._running: dict[Any, _Running] = {}
        self._done: list[TaskResult] = []

    def submit(self, task: Task) -> None:
        """Start ``task`` as a Ray task; one that no node can hold fails at once (see ``wait``).

        Raises:
            InvalidInput: If the step or its inputs cannot be pickled for Ray.
        """
        request = resource_request(task.step.resources)
        refusal = self._refusal(task.step.name, request) if self._check_resources else None
        if refusal is not None:
            self._done.append(TaskResult(task.key, task.attempt, ok=False, error=refusal))
            return
        options: dict[str, Any] = {
            "num_cpus": request["cpu"],
            "num_gpus": request["gpu"],
            "max_retries": 0,  # the pipeline retries a failed step itself, with its own delays
            "name": f"steward:{task.key}#{task.attempt}",
        }
        if request.get("memory"):
            options["memory"] = int(request["memory"])
        _ship_source(task.step, self._ray)
        try:
            ref = self._remote.options(**options).remote(_Shipment.of(task), self._kill_after)
        except Exception as exc:
            raise InvalidInput(
                f"step {task.step.name!r} cannot be sent to Ray: {type(exc).__name__}: {exc}",
                {"field": "step"},
            ) from exc
        self._running[ref] = _Running(task, time.monotonic())

    def _refusal(self, step: str, request: dict[str, float]) -> str | None:
        """Why no node of the cluster can run a request (``None`` when one can)."""
        wanted = {k: v for k, v in request.items() if v > 0 and k in _RAY_RESOURCE}
        nodes: list[dict[str, float]] = []
        for refresh in (False, True):  # nodes may have joined since they were last read
            if self._nodes is None or refresh:
                try:
                    self._nodes = [dict(n["Resources"]) for n in self._ray.nodes() if n.get("Alive")]
                except Exception:  # the check is a courtesy: without it Ray still schedules the task
                    return None
            nodes = self._nodes
            if any(all(node.get(_RAY_RESOURCE[k], 0.0) >= v for k, v in wanted.items()) for node in nodes):
                return None
        for key, value in wanted.items():
            most = max((node.get(_RAY_RESOURCE[key], 0.0) for node in nodes), default=0.0)
            if value > most:
                return (
                    f"step {step!r} asks for {_amount(key, value)} "
                    f"but no node of the cluster has more than {_number(key, most)}"
                )
        asked = ", ".join(_amount(k, v) for k, v in wanted.items())
        return f"step {step!r} asks for {asked} but no single node of the cluster has all of that"

    def wait(self, timeout: float | None) -> list[TaskResult]:
        """Return the attempts that ended, waiting up to ``timeout`` seconds for the first.

        Ray's own failures (a dead worker, a cancelled task) come back as failed results, never raised.
        """
        out, self._done = self._done, []
        if not self._running:
            return out
        refs = list(self._running)
        ready, rest = self._ray.wait(refs, num_returns=1, timeout=0 if out else timeout)
        if ready and rest:
            more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out.extend(self._result(ref) for ref in ready)
        return out

    def _result(self, ref: Any) -> TaskResult:
        running = self._running.pop(ref)
        task = running.task
        try:
            result: TaskResult = self._ray.get(ref)
            return result
        except Exception as exc:
            elapsed = time.monotonic() - running.submitted
            limit = (
                None if task.timeout is None or self._kill_after is None else task.timeout + self._kill_after
            )
            if (
                limit is not None
                and elapsed >= limit
                and isinstance(exc, self._ray.exceptions.WorkerCrashedError)
            ):
                error = (
                    f"step {task.step.name!r} timed out after {task.timeout:g} s "
                    f"(it ignored the timeout, so its Ray worker was stopped after {limit:g} s)"
                )
                return TaskResult(task.key, task.attempt, ok=False, error=error, timed_out=True)
            reason = str(exc).strip() or type(exc).__name__
            error = f"step {task.step.name!r} failed in Ray: {type(exc).__name__}: {reason}"
            return TaskResult(task.key, task.attempt, ok=False, error=error)

    def shutdown(self) -> None:
        """Cancel the attempts still running, and stop Ray if this executor started it."""
        for ref in self._running:
            with contextlib.suppress(Exception):  # already finished, or the cluster is gone
                self._ray.cancel(ref, force=True)
        self._running.clear()
        self._done.clear()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False


def ray_executor(spec: str) -> RayExecutor:
    """The executor for ``spec``: ``ray`` (``RAY_ADDRESS``, or a local Ray) or ``ray://host:port``.

    Raises:
        InvalidInput: For any other spec, or when Ray is not installed.
        ServiceUnavailable: If Ray cannot be started or joined.
    """
    if spec == "ray":
        return RayExecutor()
    if spec.startswith("ray://") and len(spec) > len("ray://"):
        return RayExecutor(spec)
    raise InvalidInput(
        f"unknown executor {spec!r}: use ray (RAY_ADDRESS, else a Ray on this machine) or ray://host:port",
        {"field": "executor"},
    )
