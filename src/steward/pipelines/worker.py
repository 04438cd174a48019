"""What runs one attempt of a step, wherever it runs: load inputs, call, check the type, store outputs.

The worker never writes to the metadata database for the pipeline itself: it returns a ``TaskResult``
and the orchestrator records it. (The step's own code may log metrics to its run like any code.)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from steward.errors import InvalidInput
from steward.pipelines import materializers
from steward.pipelines.dsl import UnresolvedStep
from steward.pipelines.executors.base import Task, TaskResult
from steward.pipelines.models import OutputRef
from steward.pipelines.values import Model

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.pipelines.dsl import Step
    from steward.store.blobs import BlobStore

_HOST = socket.gethostname()
_blob_stores: dict[tuple[str, int], BlobStore] = {}
_adapters: dict[Any, TypeAdapter[Any] | None] = {}
_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)


class StepTimeout(Exception):
    """An attempt ran longer than its step's timeout."""


def blob_store(settings: Settings) -> BlobStore:
    """The blob store of ``settings``, one per process (made after a fork, never inherited)."""
    from steward.store.blobs import BlobStore

    key = (settings.artifacts_url, os.getpid())
    store = _blob_stores.get(key)
    if store is None:
        store = BlobStore.from_settings(settings)
        _blob_stores[key] = store
    return store


def _adapter(hint: Any) -> TypeAdapter[Any] | None:
    if hint is None or hint is Any:
        return None
    try:
        return _adapters[hint]
    except (KeyError, TypeError):
        pass
    try:
        adapter: TypeAdapter[Any] | None = TypeAdapter(hint, config=_STRICT)
    except Exception:  # an annotation pydantic cannot check (a Protocol, a TypeVar …) is not checked
        adapter = None
    with contextlib.suppress(TypeError):
        _adapters[hint] = adapter
    return adapter


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type):
        return (
            hint.__qualname__ if hint.__module__ == "builtins" else f"{hint.__module__}.{hint.__qualname__}"
        )
    return str(hint).replace("typing.", "")


def check_output(step: Step, index: int, value: Any) -> Any:
    """Check one returned value against the step's annotation; wrap a bare estimator as ``Model``.

    Raises:
        InvalidInput: Naming the step, the expected and the actual type.
    """
    hint = step.output_hints[index]
    if hint is Model:
        return value if isinstance(value, Model) else Model(value)
    adapter = _adapter(hint)
    if adapter is None:
        return value
    try:
        adapter.validate_python(value)
    except ValidationError:
        where = f" output {index}" if step.n_outputs > 1 else ""
        raise InvalidInput(
            f"step {step.name!r}{where} returned {materializers.type_name(value)}, "
            f"but its annotation says {_hint_name(hint)}",
            {"step": step.name, "expected": _hint_name(hint), "actual": materializers.type_name(value)},
        ) from None
    return value


def split_outputs(step: Step, returned: Any) -> list[Any]:
    """The step's return value as one value per output.

    Raises:
        InvalidInput: If a several-output step did not return a tuple of that length.
    """
    if step.n_outputs == 1:
        return [check_output(step, 0, returned)]
    if not isinstance(returned, tuple | list) or len(returned) != step.n_outputs:
        raise InvalidInput(
            f"step {step.name!r} returned {materializers.type_name(returned)}, but its annotation says "
            f"a tuple of {step.n_outputs} values",
            {
                "step": step.name,
                "expected": f"tuple of {step.n_outputs}",
                "actual": materializers.type_name(returned),
            },
        )
    return [check_output(step, i, v) for i, v in enumerate(returned)]


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if (
        not seconds
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
    ):
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise StepTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Capture(logging.Handler):
    def __init__(self, sink: io.StringIO) -> None:
        super().__init__(logging.INFO)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record) + "\n")


@contextlib.contextmanager
def _captured(sink: io.StringIO) -> Iterator[None]:
    handler = _Capture(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        root.removeHandler(handler)


def _load_inputs(task: Task, blobs: BlobStore | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for arg, spec in task.inputs.items():
        if arg in task.live:
            values[arg] = task.live[arg]
        else:
            values[arg] = resolve_input(spec, blobs if blobs is not None else blob_store(task.settings))
    return values


def resolve_input(spec: Any, blobs: BlobStore) -> Any:
    """Turn an input spec (an ``OutputRef``, ``("value", x)``, or a list/dict of those) into its value."""
    if isinstance(spec, OutputRef):
        if not spec.stored or spec.inline is not None:
            return spec.inline
        return materializers.load(spec, blobs)
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "value":
        return spec[1]
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "list":
        return [resolve_input(s, blobs) for s in spec[1]]
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "dict":
        return {k: resolve_input(s, blobs) for k, s in spec[1].items()}
    raise InvalidInput(f"unknown input spec {spec!r}", {"field": "input"})


class _LazyTracking:
    """The tracking service of a step's database, opened only if the step's code logs something."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._service: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._service is None:
            key = (self._settings.db_url, os.getpid())
            service = _tracking_services.get(key)
            if service is None:
                from steward.store.platform import Platform
                from steward.tracking.service import TrackingService

                service = TrackingService(Platform.from_settings(self._settings))
                _tracking_services[key] = service
            self._service = service
        return getattr(self._service, name)


_tracking_services: dict[tuple[str, int], Any] = {}


@contextlib.contextmanager
def _step_run(run_id: str | None, settings: Settings) -> Iterator[None]:
    """Make the step's child run the active run while its code runs (for steward.log_metric …)."""
    if run_id is None:
        yield
        return
    from steward.tracking import fluent

    with fluent.attached_run(run_id, backend=_LazyTracking(settings), settings=settings):
        yield


def run_task(task: Task, blobs: BlobStore | None = None, keep_values: bool = False) -> TaskResult:
    """Run one attempt: load the inputs, call the step (within its timeout), check and store outputs.

    Never raises for the step's own failures: they come back as a result that is not ok, with the
    traceback.
    """
    sink = io.StringIO()
    start = time.time()
    result = TaskResult(task.key, task.attempt, ok=False, host=_HOST, pid=os.getpid())
    if isinstance(task.step, UnresolvedStep):
        result.unresolved = True
        result.error = f"step {task.step.reference} cannot run in this worker: {task.step.reason}"
        return result
    try:
        store = blobs if blobs is not None else blob_store(task.settings)
        args = _load_inputs(task, store)
        with _captured(sink), _step_run(task.run_id, task.settings), _time_limit(task.timeout):
            returned = task.step.fn(**args)
        values = split_outputs(task.step, returned)
        result.outputs = [materializers.save(v, store) for v in values]
        if keep_values:
            result.values = values
        result.ok = True
    except StepTimeout as exc:
        result.timed_out = True
        result.error = f"step {task.step.name!r} {exc}"
    except InvalidInput as exc:
        result.error = exc.message
    except BaseException as exc:  # the step's own error, whatever it is, fails the step, not the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        result.error = "".join(traceback.format_exception(exc)).rstrip()
    result.start_time = int(start * 1000)
    result.end_time = int(time.time() * 1000)
    result.log = sink.getvalue()
    return result
