"""The tracking SDK: ``start_run``, ``log_metric`` and friends, acting on the active run.

The backend (embedded ``TrackingService`` or the HTTP client) comes from a resolver that
``steward.configure`` installs, so this module never imports the layers above it.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import pandas as pd

from steward.config import Settings
from steward.core.time import now_ms
from steward.errors import InvalidInput, StewardError
from steward.tracking import environment
from steward.tracking.buffer import MetricBuffer
from steward.tracking.models import (
    RUN_BASE_COLUMNS,
    Artifact,
    MetricSeries,
    Run,
    RunStatus,
    TrackingBackend,
    run_columns,
)

log = logging.getLogger(__name__)

BackendResolver = Callable[[], tuple[TrackingBackend, Settings]]
_resolver: BackendResolver | None = None
_stack: list[ActiveRun] = []
"""Every active run of the process, oldest first; each belongs to the thread that started it."""
_stack_lock = threading.RLock()
_killed_by: int | None = None
_handlers_installed = False


def set_backend_resolver(resolver: BackendResolver) -> None:
    """Install the function that returns the tracking backend and settings in use."""
    global _resolver
    _resolver = resolver


def _backend() -> tuple[TrackingBackend, Settings]:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


class ActiveRun:
    """A run this process is logging to. Use it as a context manager (``with steward.start_run()``).

    Leaving the block ends the run: FINISHED, or FAILED with the exception's message, or KILLED on
    Ctrl-C / SIGTERM. Buffered metrics are flushed first.
    """

    def __init__(
        self,
        backend: TrackingBackend,
        run_id: str,
        settings: Settings,
        experiment_id: str = "",
        name: str = "",
    ) -> None:
        self.backend = backend
        self.id = run_id
        self.experiment_id = experiment_id
        self.name = name
        self._ended = False
        self._thread = threading.get_ident()
        self.buffer = MetricBuffer(
            lambda series: backend.log_metrics(self.id, series),
            max_points=settings.metric_flush_points,
            interval=settings.metric_flush_interval,
        )

    @property
    def info(self) -> Run:
        """The run as stored now (flushes buffered metrics first, so they show)."""
        self.buffer.flush()
        return self.backend.get_run(self.id)

    def end(self, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> None:
        """Write the buffered points and end the run. A failed write ends the run FAILED and raises."""
        if self._ended:
            return
        self._ended = True
        with _stack_lock:
            if self in _stack:
                _stack.remove(self)
        flush_error: StewardError | None = None
        ended = False

        def write_and_end(series: Sequence[MetricSeries]) -> int:
            nonlocal ended
            self.backend.end_run(self.id, status, error, metrics=series)
            ended = True
            return sum(len(s) for s in series)

        try:
            self.buffer.flush(write_and_end)
        except StewardError as exc:
            flush_error = exc
            status, error = RunStatus.FAILED, f"{error + '; ' if error else ''}{exc.message}"
        finally:
            self.buffer.close()
        if not ended:
            self.backend.end_run(self.id, status, error)
        if flush_error is not None:
            raise flush_error

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.end(RunStatus.FINISHED)
        elif isinstance(exc, KeyboardInterrupt) or _killed_by is not None:
            self.end(RunStatus.KILLED, f"killed by {_signal_name(_killed_by or signal.SIGINT)}")
        elif isinstance(exc, SystemExit) and exc.code in (0, None):
            self.end(RunStatus.FINISHED)
        else:
            self.end(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, name={self.name!r})"


def _innermost() -> ActiveRun | None:
    """The calling thread's innermost active run; in a thread that started none, the main thread's.

    Threads that started runs of their own (parallel trials, pipelines run from threads) never log
    into each other's; a helper thread of a training loop still logs into the run around it.
    """
    me = threading.get_ident()
    if _stack and _stack[-1]._thread == me:
        return _stack[-1]
    main = threading.main_thread().ident
    fallback = None
    for run in reversed(_stack):
        if run._thread == me:
            return run
        if fallback is None and run._thread == main:
            fallback = run
    return fallback


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    global _killed_by
    _killed_by = signum
    # Raising here unwinds the main thread through every ``with start_run()`` block, which ends each
    # run KILLED; runs started without ``with`` are ended by the exit hook.
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_end_all_at_exit)
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _end_all_at_exit() -> None:
    with _stack_lock:
        remaining = list(reversed(_stack))
    for run in remaining:
        status = RunStatus.KILLED if _killed_by is not None else RunStatus.FINISHED
        error = f"killed by {_signal_name(_killed_by)}" if _killed_by is not None else None
        try:
            run.end(status, error)
        except StewardError as exc:
            log.error("ending run %s at exit failed: %s", run.id, exc)


def start_run(
    experiment: str = "Default",
    run_name: str | None = None,
    *,
    parent_run_id: str | None = None,
    nested: bool | None = None,
    tags: Mapping[str, Any] | None = None,
) -> ActiveRun:
    """Start a run and make it the active run.

    Args:
        experiment: The experiment's name; created if it does not exist.
        run_name: The run's name; generated if omitted.
        parent_run_id: Nest under this run. By default a run started while another is active
            nests under it; pass ``nested=False`` to start an independent run instead.
        nested: See ``parent_run_id``.
        tags: Initial tags.

    Returns:
        The ``ActiveRun``; use it in a ``with`` block so it ends (and flushes) by itself.

    Raises:
        InvalidInput: For a bad experiment name or tag.
    """
    backend, settings = _backend()
    with _stack_lock:
        outer = _innermost()
        if parent_run_id is None and nested is not False and outer is not None:
            parent_run_id = outer.id
    run = backend.create_run(
        experiment,
        name=run_name,
        parent_run_id=parent_run_id,
        tags={k: str(v) for k, v in (tags or {}).items()},
        system=environment.capture(),
    )
    active = ActiveRun(backend, run.id, settings, run.experiment_id, run.name)
    with _stack_lock:
        _stack.append(active)
    _install_handlers()
    return active


@contextlib.contextmanager
def attached_run(
    run_id: str, *, backend: TrackingBackend | None = None, settings: Settings | None = None
) -> Iterator[ActiveRun]:
    """Make an existing run the active one for a block, without starting or ending it.

    A pipeline step's code runs inside this, so ``steward.log_metric`` … write to the step's run.
    Buffered metrics are flushed when the block ends.

    Args:
        run_id: The run.
        backend: Where it lives; the SDK's default backend if omitted.
        settings: Flush settings; the default connection's if omitted.
    """
    if backend is None or settings is None:
        default_backend, default_settings = _backend()
        backend = backend or default_backend
        settings = settings or default_settings
    active = ActiveRun(backend, run_id, settings)
    with _stack_lock:
        _stack.append(active)
    try:
        yield active
    finally:
        with _stack_lock:
            if active in _stack:
                _stack.remove(active)
        try:
            active.buffer.flush()
        finally:
            active.buffer.close()


def active_run() -> ActiveRun | None:
    """Return the innermost active run of this process, or ``None``."""
    with _stack_lock:
        return _innermost()


def _current() -> ActiveRun:
    with _stack_lock:
        run = _innermost()
    if run is None:
        raise InvalidInput("no active run: call steward.start_run() first", {"field": "run"})
    return run


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the active run (flushing its metrics)."""
    _current().end(RunStatus(status))


def log_param(key: str, value: Any) -> None:
    """Record one parameter of the active run."""
    log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    """Record parameters of the active run; ``Conflict`` if one was logged with another value."""
    run = _current()
    run.backend.log_params(run.id, params)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags on the active run."""
    run = _current()
    run.backend.set_tags(run.id, tags)


def set_tag(key: str, value: Any) -> None:
    """Set one tag on the active run."""
    set_tags({key: value})


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    """Log one metric point to the active run (buffered; flushed in batches).

    Args:
        key: The metric key.
        value: A finite number.
        step: An integer; by default one more than this key's previous step (0 first).
        timestamp: Unix milliseconds; now by default.

    Raises:
        InvalidInput: At this call, for a bad key, value or step.
    """
    with _stack_lock:
        run = _innermost()
    if run is None:
        raise InvalidInput("no active run: call steward.start_run() first", {"field": "run"})
    run.buffer.add(key, value, step, timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    """Log several metrics at the same step to the active run (buffered)."""
    run = _current()
    stamp = now_ms() if timestamp is None else timestamp
    for key, value in metrics.items():
        run.buffer.add(key, value, step, stamp)


def log_metric_batch(
    key: str,
    values: Sequence[float] | np.ndarray[Any, Any],
    steps: Sequence[int] | np.ndarray[Any, Any] | None = None,
    timestamps: Sequence[int] | np.ndarray[Any, Any] | None = None,
    *,
    run_id: str | None = None,
) -> int:
    """Write many points of one metric at once, bypassing the buffer (for arrays of values).

    Args:
        key: The metric key.
        values: Finite numbers.
        steps: One integer per value; ``0..n-1`` by default.
        timestamps: Unix milliseconds per value; now by default.
        run_id: The run; the active run by default.

    Returns:
        How many points were written.
    """
    backend, _ = _backend()
    if run_id is None:
        run_id = _current().id
    array = np.asarray(values)
    count = array.shape[0] if array.ndim == 1 else 0
    steps_array = np.arange(count, dtype=np.int64) if steps is None else np.asarray(steps)
    stamps = np.full(count, now_ms(), dtype=np.int64) if timestamps is None else np.asarray(timestamps)
    return backend.log_metrics(run_id, [MetricSeries(key, steps_array, array, stamps)])


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> list[Artifact]:
    """Store a file (or every file of a folder) as artifacts of the active run.

    Args:
        local_path: A file or folder.
        artifact_path: Folder inside the run to put it under; the run's root by default.

    Raises:
        InvalidInput: If ``local_path`` does not exist.
    """
    run = _current()
    source = Path(local_path)
    prefix = f"{artifact_path.strip('/')}/" if artifact_path else ""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        return [
            run.backend.log_artifact(run.id, p, f"{prefix}{source.name}/{p.relative_to(source).as_posix()}")
            for p in files
        ]
    if not source.is_file():
        raise InvalidInput(f"no such file or folder: {source}", {"field": "local_path"})
    return [run.backend.log_artifact(run.id, source, f"{prefix}{source.name}")]


def log_text(text: str, artifact_path: str) -> Artifact:
    """Store text (UTF-8) as an artifact of the active run."""
    run = _current()
    return run.backend.log_artifact_bytes(run.id, text.encode(), artifact_path)


def log_dict(data: Mapping[str, Any] | Sequence[Any], artifact_path: str) -> Artifact:
    """Store a dict or list as JSON (or YAML for ``.yaml``/``.yml`` paths) in the active run."""
    if artifact_path.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        try:
            text = json.dumps(data, indent=2, default=str)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"log_dict: cannot write as JSON: {exc}", {"field": "data"}) from None
    return log_text(text, artifact_path)


def log_table(data: pd.DataFrame | Any, artifact_path: str) -> Artifact:
    """Store a table (pandas or Arrow) as Parquet (or CSV/JSON lines by suffix) in the active run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = _current()
    table = (
        data if isinstance(data, pa.Table) else pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False)
    )
    sink = io.BytesIO()
    if artifact_path.endswith(".csv"):
        table.to_pandas().to_csv(sink, index=False)
    elif artifact_path.endswith((".jsonl", ".json")):
        table.to_pandas().to_json(sink, orient="records", lines=True)
    else:
        pq.write_table(table, sink)
    return run.backend.log_artifact_bytes(run.id, sink.getvalue(), artifact_path)


def log_figure(figure: Any, artifact_path: str) -> Artifact:
    """Store a matplotlib figure as an image (PNG by default, or SVG/PDF by suffix) in the active run."""
    run = _current()
    sink = io.BytesIO()
    suffix = Path(artifact_path).suffix.lstrip(".") or "png"
    figure.savefig(sink, format=suffix, bbox_inches="tight")
    return run.backend.log_artifact_bytes(run.id, sink.getvalue(), artifact_path)


def get_run(run_id: str) -> Run:
    """Return a run (status, times, params, tags, latest metrics, system info)."""
    backend, _ = _backend()
    _flush_if_active(run_id)
    return backend.get_run(run_id)


def _flush_if_active(run_id: str | None = None) -> None:
    with _stack_lock:
        runs = [r for r in _stack if run_id is None or r.id == run_id]
    for run in runs:
        run.buffer.flush()


def get_metric_history(run_id: str, key: str) -> pd.DataFrame:
    """Return every point of a metric as a DataFrame with ``step``, ``value`` and ``timestamp`` (UTC)."""
    backend, _ = _backend()
    _flush_if_active(run_id)
    series = backend.get_metric_history(run_id, key)
    return pd.DataFrame(
        {
            "step": series.steps,
            "value": series.values,
            "timestamp": pd.to_datetime(series.timestamps, unit="ms", utc=True),
        }
    )


def search_runs(
    experiments: str | Sequence[str],
    filter: str = "",
    order_by: Sequence[str] = (),
    max_results: int = 1000,
    include_deleted: bool = False,
) -> pd.DataFrame:
    """Find runs and return them as a DataFrame, one row per run.

    Columns: ``run_id``, ``experiment_id``, ``run_name``, ``status``, ``start_time``, ``end_time``,
    ``parent_run_id``, then ``metrics.<key>``, ``params.<key>`` and ``tags.<key>``.

    Args:
        experiments: An experiment name or a list of them.
        filter: e.g. ``"metrics.auc > 0.9 and params.model = 'lr'"`` (see ``steward.tracking.search``).
        order_by: e.g. ``["metrics.auc DESC"]``; newest first by default.
        max_results: At most this many rows (1..50,000).
        include_deleted: Include soft-deleted runs.
    """
    backend, _ = _backend()
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    _flush_if_active()
    columns = backend.search_run_columns(names, filter, list(order_by), max_results, include_deleted)
    return columns_to_frame(columns)


def runs_to_frame(found: Sequence[Run]) -> pd.DataFrame:
    """Lay runs out as a DataFrame (the shape ``search_runs`` returns)."""
    return columns_to_frame(run_columns(found))


def columns_to_frame(columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    """The DataFrame of ``run_columns``' layout: times become UTC timestamps (NaT for a run still going)."""
    if not columns.get("run_id"):
        return pd.DataFrame(columns=list(RUN_BASE_COLUMNS))
    data: dict[str, Any] = dict(columns)
    for name in ("start_time", "end_time"):
        # NumPy turns None into NaT; a third of the time of pandas.to_datetime on a list.
        millis = np.array(columns[name], dtype="datetime64[ms]").astype("datetime64[us]")
        data[name] = pd.DatetimeIndex(millis).tz_localize("UTC")
    for name, values in columns.items():
        if name.startswith("metrics."):  # floats (NaN where missing): no type inference per column
            data[name] = np.array(values, dtype=np.float64)
    return pd.DataFrame(data, copy=False)


def download_artifact(run_id: str, artifact_path: str, dest: str | Path | None = None) -> Path:
    """Download one artifact (verified against its digest) and return the local path."""
    backend, _ = _backend()
    target = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="steward-")) / Path(artifact_path).name
    if target.is_dir():
        target = target / Path(artifact_path).name
    return backend.download_artifact(run_id, artifact_path, target)


def list_artifacts(run_id: str) -> list[Artifact]:
    """Return the artifacts of a run."""
    backend, _ = _backend()
    return backend.list_artifacts(run_id)


def delete_run(run_id: str) -> None:
    """Soft-delete a run (restorable with ``restore_run``)."""
    backend, _ = _backend()
    backend.delete_run(run_id)


def restore_run(run_id: str) -> None:
    """Restore a soft-deleted run."""
    backend, _ = _backend()
    backend.restore_run(run_id)
