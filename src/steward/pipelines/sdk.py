"""``@pipeline`` and ``Pipeline.run``: the user's side of pipelines.

The services come from a resolver that ``steward.connect`` installs, so this module never imports the
layers above it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from steward.errors import InvalidInput, NotFound, StewardError
from steward.pipelines import materializers
from steward.pipelines.dsl import build_graph, current_graph
from steward.pipelines.executors import Executor, make_executor
from steward.pipelines.graph import Graph
from steward.pipelines.models import OutputRef, PipelineBackend, PipelineRunInfo, PipelineState, StepRun
from steward.pipelines.runner import Progress, Runner, RunOptions
from steward.pipelines.service import PipelineService

PipelineResolver = Callable[[], PipelineBackend]
_resolver: PipelineResolver | None = None


def set_pipeline_resolver(resolver: PipelineResolver) -> None:
    """Install the function that returns the pipeline service in use."""
    global _resolver
    _resolver = resolver


def _backend() -> PipelineBackend:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


def _service() -> PipelineService:
    """The embedded service, which runs pipelines (a server's client only reads them).

    Raises:
        InvalidInput: In remote mode.
    """
    backend = _backend()
    if not isinstance(backend, PipelineService):
        raise InvalidInput(
            "pipelines run against the store directly: use embedded mode (unset STEWARD_URI) with "
            "the server's database and artifact store (STEWARD_DB, STEWARD_ARTIFACTS)",
            {"field": "uri"},
        )
    return backend


@dataclass
class PipelineRun:
    """A finished pipeline run, as ``Pipeline.run`` returns it.

    Attributes:
        info: The recorded run (state, steps, params …).
    """

    info: PipelineRunInfo
    _service: PipelineService = field(repr=False)

    @property
    def id(self) -> str:
        """The pipeline's tracking run id (``steward runs show <id>``)."""
        return self.info.run_id

    @property
    def state(self) -> PipelineState:
        """SUCCEEDED, FAILED or KILLED."""
        return self.info.state

    @property
    def succeeded(self) -> bool:
        """Whether every step succeeded (or was reused from the cache)."""
        return self.info.state is PipelineState.SUCCEEDED

    @property
    def steps(self) -> dict[str, StepRun]:
        """The nodes by key."""
        return {s.key: s for s in self.info.steps}

    def output(self, key: str, index: int = 0) -> Any:
        """Load one output of a node (``run.output("train")``).

        Raises:
            NotFound: If the node has no such output (it did not succeed, say).
        """
        step = self.steps.get(key)
        if step is None or index >= len(step.outputs):
            raise NotFound(f"step {key!r} of run {self.id} has no output {index}", {"field": "key"})
        return materializers.load(step.outputs[index], self._service.platform.blobs)

    @property
    def result(self) -> Any:
        """What the pipeline function returned, with every step output loaded.

        Raises:
            InvalidInput: If the run did not succeed (its failed steps are named).
        """
        if not self.succeeded:
            raise InvalidInput(f"pipeline run {self.id} did not succeed: {self.info.error}", {"field": "run"})
        return _load_structure(self.info.outputs, self._service)


def _load_structure(value: Any, service: PipelineService) -> Any:
    if value is None:
        return None
    if "ref" in value:
        return materializers.load(OutputRef.from_json(value["ref"]), service.platform.blobs)
    if "list" in value:
        return tuple(_load_structure(v, service) for v in value["list"])
    if "dict" in value:
        return {k: _load_structure(v, service) for k, v in value["dict"].items()}
    return value.get("value")


_OPTIONS = ("executor", "cache", "experiment", "run_name", "parent_run_id", "tags", "progress", "resume")


@dataclass
class Pipeline:
    """A pipeline function (made by ``@pipeline``): its parameters are the function's.

    Attributes:
        fn: The function whose body calls steps.
        name: The pipeline's name (the function's); also its runs' experiment by default.
        reference: How to import it again (``module:name`` or ``file.py:name``), for resume.
    """

    fn: Callable[..., Any]
    name: str
    reference: str = ""

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.fn)
        if not self.reference:
            self.reference = f"{self.fn.__module__}:{self.fn.__qualname__}"

    def bind_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The pipeline's parameters with defaults filled in.

        Raises:
            InvalidInput: For an unknown or missing parameter.
        """
        signature = inspect.signature(self.fn)
        try:
            bound = signature.bind(**params)
        except TypeError as exc:
            known = ", ".join(signature.parameters) or "none"
            raise InvalidInput(
                f"pipeline {self.name!r}: {exc} (its parameters: {known})", {"field": "params"}
            ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def graph(self, **params: Any) -> Graph:
        """Build (without running) the graph for ``params``.

        Raises:
            InvalidInput: For bad parameters, an unknown step input or a cycle.
        """
        graph, _ = build_graph(self.fn, self.bind_params(params))
        return graph

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_graph() is not None:
            return self.fn(*args, **kwargs)  # a pipeline inside a pipeline adds its steps
        if args:
            raise InvalidInput("pass a pipeline's parameters by name", {"field": "params"})
        return self.run(**kwargs)

    def run(
        self,
        executor: str | Executor = "local",
        *,
        cache: bool = True,
        experiment: str | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        resume: PipelineRunInfo | None = None,
        **params: Any,
    ) -> PipelineRun:
        """Run the pipeline with ``params`` and wait for it to end.

        Args:
            executor: ``local``, ``processes`` (``processes:N``), ``ray`` or ``ray://host:port``, or an
                ``Executor``.
            cache: ``False`` runs every step again.
            experiment: The experiment of its tracking run; the pipeline's name by default.
            run_name: The tracking run's name.
            parent_run_id: Nest the run under another (a tuning study, say).
            tags: Tags of the tracking run.
            progress: Called with the run's state as steps change.
            resume: An earlier run of this pipeline whose succeeded steps are reused.
            **params: The pipeline's parameters.

        Returns:
            The ``PipelineRun`` (failed steps fail the run; they do not raise).

        Raises:
            InvalidInput: For bad parameters, a bad graph or an unknown executor, before anything runs.
        """
        bound = self.bind_params(params)
        graph, returned = build_graph(self.fn, bound)
        service = _service()
        chosen = make_executor(executor, service.platform.blobs)
        options = RunOptions(
            cache=cache,
            experiment=experiment,
            run_name=run_name,
            parent_run_id=parent_run_id,
            tags=dict(tags or {}),
            previous=resume,
            progress=progress,
        )
        runner = Runner(service, graph, returned, self.name, self.reference, bound, chosen, options)
        return PipelineRun(runner.run(), service)


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function a pipeline: its body calls steps, its parameters are the pipeline's.

    Args:
        fn: The function (when used bare).
        name: The pipeline's name; the function's by default.
    """

    def make(func: Callable[..., Any]) -> Pipeline:
        clash = [p for p in inspect.signature(func).parameters if p in _OPTIONS]
        if clash:
            raise InvalidInput(
                f"pipeline parameters cannot be named {', '.join(clash)}: run() uses those names",
                {"field": clash[0]},
            )
        return Pipeline(fn=func, name=name or func.__name__)

    return make(fn) if fn is not None else make


def load_pipeline(reference: str) -> Pipeline:
    """Import a pipeline from ``path/to/file.py:name`` or ``package.module:name``.

    Raises:
        InvalidInput: In one line, if the file does not import or has no such pipeline.
    """
    target, sep, attr = reference.rpartition(":")
    if not sep or not target or not attr:
        raise InvalidInput(
            f"{reference!r} is not a pipeline reference: use path/to/file.py:name or module:name",
            {"field": "pipeline"},
        )
    by_path = target.endswith(".py") or "/" in target
    try:
        module = _import_file(Path(target)) if by_path else importlib.import_module(target)
    except InvalidInput:
        raise
    except SyntaxError as exc:
        raise InvalidInput(
            f"{target} does not import: SyntaxError: {exc.msg} (line {exc.lineno})", {"field": "pipeline"}
        ) from None
    except Exception as exc:
        message = f"{target} does not import: {type(exc).__name__}: {exc}"
        raise InvalidInput(message, {"field": "pipeline"}) from None
    found = getattr(module, attr, None)
    if found is None:
        names = sorted(n for n, v in vars(module).items() if isinstance(v, Pipeline))
        hint = f" (it has: {', '.join(names)})" if names else " (it defines no @pipeline)"
        raise InvalidInput(f"{target} has no pipeline {attr!r}{hint}", {"field": "pipeline"})
    if not isinstance(found, Pipeline):
        raise InvalidInput(f"{target}:{attr} is not a @pipeline", {"field": "pipeline"})
    if by_path:
        found.reference = f"{Path(target).resolve()}:{attr}"
    return found


def _import_file(path: Path) -> Any:
    """Import a pipeline file under a stable module name, so worker processes can find its steps."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"no such pipeline file: {path}", {"field": "pipeline"})
    # Imported afresh each time, so an edited file is seen (and its changed steps miss the cache).
    name = "steward_pipeline_" + "".join(c if c.isalnum() else "_" for c in path.with_suffix("").as_posix())
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{path} is not a Python file", {"field": "pipeline"})
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if sys.path and sys.path[0] == str(path.parent):
            sys.path.pop(0)
    return module


def resume_run(
    run_id: str, executor: str | Executor | None = None, progress: Progress | None = None
) -> PipelineRun:
    """Run again only what did not succeed in pipeline run ``run_id`` (a new run that reuses the rest).

    Raises:
        NotFound: If there is no such pipeline run.
        InvalidInput: If its pipeline cannot be imported any more.
    """
    service = _service()
    previous = service.get_run(run_id)
    found = load_pipeline(previous.reference)
    return found.run(
        executor if executor is not None else previous.executor or "local",
        progress=progress,
        resume=previous,
        **dict(previous.params),
    )


def get_pipeline_run(run_id: str) -> PipelineRunInfo:
    """Return a recorded pipeline run with its steps.

    Raises:
        NotFound: If there is no such pipeline run.
    """
    return _backend().get_run(run_id)


def list_pipeline_runs(pipeline: str | None = None, limit: int = 50) -> list[PipelineRunInfo]:
    """The newest pipeline runs (of one pipeline, if named)."""
    return _backend().list_runs(pipeline, limit)
