"""``@step`` and ``@pipeline``: plain typed Python functions that build a graph when called.

Calling a pipeline function with its parameters runs its body once, in "build" mode: every call of a
step inside it records a node and returns placeholders (``StepOutput``) instead of running. The graph
that results is what an executor runs.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from steward.errors import InvalidInput
from steward.pipelines.graph import Graph, Node

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_building: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "steward_pipeline_graph", default=None
)


def parse_duration(value: str | float | int | None, what: str = "timeout") -> float | None:
    """Return seconds from ``10``, ``2.5``, ``"500ms"``, ``"30s"``, ``"10m"`` or ``"1h"``.

    Raises:
        InvalidInput: For anything else, or a value that is not positive.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a duration such as 30, '30s' or '10m'", {"field": what})
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise InvalidInput(
                f"{what} {value!r} is not a duration such as 30, '30s', '10m' or '1h'", {"field": what}
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInput(f"{what} must be positive, got {value!r}", {"field": what})
    return seconds


@dataclass(frozen=True)
class StepOutput:
    """A placeholder for a value a step will return, used while a pipeline's graph is built."""

    node: str
    index: int
    type_hint: Any = None

    def __iter__(self) -> Any:
        raise InvalidInput(
            f"the output of step {self.node!r} cannot be unpacked: annotate the step's return as a "
            "tuple of fixed length (-> tuple[A, B]) to give it several outputs",
            {"field": self.node},
        )

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"the output of step {self.node!r} has no value while the pipeline is being built: "
            "branch inside a step, not in the pipeline function",
            {"field": self.node},
        )


def _output_hints(fn: Callable[..., Any]) -> tuple[Any, list[Any]]:
    """The return annotation and, for ``tuple[A, B, …]`` of fixed length, one hint per output."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        hints = {}
    returns = hints.get("return", inspect.Signature.empty)
    if returns is inspect.Signature.empty:
        return None, [None]
    if typing.get_origin(returns) is tuple:
        args = typing.get_args(returns)
        if args and not (len(args) == 2 and args[1] is Ellipsis) and args != ((),):
            return returns, list(args)
    return returns, [returns]


@dataclass
class Step:
    """A function that a pipeline runs as one node (made by ``@step``).

    Called inside a pipeline function, it adds a node and returns placeholders; called anywhere else,
    it is the plain function.

    Attributes:
        fn: The function.
        name: The step's name (the function's).
        retries: How many times a failed attempt is tried again.
        retry_delay: Seconds before the first retry; each later retry waits ``backoff`` times longer.
        backoff: The factor of the exponential backoff.
        timeout: Seconds an attempt may take, or ``None``.
        resources: What one attempt needs (``{"cpu": 2, "gpu": 0, "memory": 2**30}``); the Ray executor
            asks for it.
        cache: Whether an unchanged step may reuse recorded outputs.
        environment: Distribution names whose installed versions count as the step's environment
            (a new version of one of them invalidates the cache).
    """

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    retry_delay: float = 1.0
    backoff: float = 2.0
    timeout: float | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    cache: bool = True
    environment: tuple[str, ...] = ()
    returns: Any = None
    output_hints: list[Any] = field(default_factory=lambda: [None])
    signature: inspect.Signature = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.fn)
        functools.update_wrapper(self, self.fn)

    @property
    def reference(self) -> str:
        """``module:qualname``, how a worker process finds this step again."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    @property
    def n_outputs(self) -> int:
        """How many outputs the step has (more than one for a fixed-length tuple return)."""
        return len(self.output_hints)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = _building.get()
        if graph is None:
            return self.fn(*args, **kwargs)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(
                f"step {self.name!r} called with bad arguments: {exc}", {"field": self.name}
            ) from exc
        bound.apply_defaults()
        key = graph.unique_key(self.name)
        inputs: dict[str, Any] = {}
        for arg, value in bound.arguments.items():
            kind = self.signature.parameters[arg].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise InvalidInput(
                    f"step {self.name!r}: *args and **kwargs cannot be pipeline inputs; name each one",
                    {"field": arg},
                )
            inputs[arg] = value
        graph.add(Node(key=key, step=self, inputs=inputs))
        outputs = tuple(StepOutput(key, i, hint) for i, hint in enumerate(self.output_hints))
        return outputs if len(outputs) > 1 else outputs[0]

    def __reduce__(self) -> tuple[Any, ...]:
        # The decorated name in its module is this object, not the function: pickle by reference to it.
        return (_unpickle_step, (self.fn.__module__, self.fn.__qualname__))

    def __repr__(self) -> str:
        return f"Step({self.reference})"


def load_step(module: str, qualname: str) -> Step:
    """Import the step ``module:qualname`` (what a worker process does to find a step).

    Raises:
        InvalidInput: If it cannot be imported or is not a step.
    """
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot import step {module}:{qualname}: {exc}", {"field": "step"}) from exc
    if not isinstance(obj, Step):
        raise InvalidInput(f"{module}:{qualname} is not a @step", {"field": "step"})
    return obj


@dataclass(frozen=True)
class UnresolvedStep:
    """What a worker gets for a step it cannot import (a worker forked before the step's module
    was loaded, say): running it reports that, so the executor can send the task to a fresh worker."""

    reference: str
    reason: str

    @property
    def name(self) -> str:
        """The step's name, from its reference."""
        return self.reference.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def _unpickle_step(module: str, qualname: str) -> Step | UnresolvedStep:
    # Unpickling must not raise in a pool's worker: that would kill the worker and the whole pool.
    try:
        return load_step(module, qualname)
    except InvalidInput as exc:
        return UnresolvedStep(f"{module}:{qualname}", exc.message)


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: str | float = 1.0,
    backoff: float = 2.0,
    timeout: str | float | None = None,
    resources: Mapping[str, float] | None = None,
    cache: bool = True,
    environment: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: str | float = 1.0,
    backoff: float = 2.0,
    timeout: str | float | None = None,
    resources: Mapping[str, float] | None = None,
    cache: bool = True,
    environment: tuple[str, ...] | list[str] = (),
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step: ``@step`` or ``@step(retries=2, timeout="10m", …)``.

    Args:
        fn: The function (when used bare).
        name: The step's name; the function's by default.
        retries: Extra attempts after a failure.
        retry_delay: Wait before the first retry (seconds or ``"5s"``); doubled (``backoff``) each time.
        backoff: The factor between successive retry delays.
        timeout: Limit per attempt (seconds or ``"10m"``).
        resources: ``{"cpu": n, "gpu": n, "memory": bytes}``, for the Ray executor.
        cache: ``False`` to always run this step.
        environment: Distributions whose versions count in the cache key (``["scikit-learn"]``).

    Returns:
        The ``Step`` (or a decorator making one).

    Raises:
        InvalidInput: For a negative retry count, a bad duration or an unknown resource.
    """

    def make(func: Callable[..., Any]) -> Step:
        if not callable(func):
            raise InvalidInput("@step decorates a function", {"field": "step"})
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInput(f"retries must be a whole number >= 0, got {retries!r}", {"field": "retries"})
        if backoff < 1:
            raise InvalidInput(f"backoff must be >= 1, got {backoff!r}", {"field": "backoff"})
        res = dict(resources or {})
        unknown = set(res) - {"cpu", "gpu", "memory"}
        if unknown:
            raise InvalidInput(
                f"unknown resources {sorted(unknown)}: use cpu, gpu and memory", {"field": "resources"}
            )
        for key, amount in res.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise InvalidInput(f"resource {key} must be a number >= 0", {"field": "resources"})
        returns, hints = _output_hints(func)
        return Step(
            fn=func,
            name=name or func.__name__,
            retries=retries,
            retry_delay=parse_duration(retry_delay, "retry_delay") or 1.0,
            backoff=float(backoff),
            timeout=parse_duration(timeout),
            resources=res,
            cache=cache,
            environment=tuple(environment),
            returns=returns,
            output_hints=hints,
        )

    return make(fn) if fn is not None else make


def build_graph(fn: Callable[..., Any], params: Mapping[str, Any]) -> tuple[Graph, Any]:
    """Run a pipeline function's body in build mode; return the graph and its return structure.

    Raises:
        InvalidInput: For an unknown parameter, a bad step call, or a graph that cannot run.
    """
    graph = Graph()
    token = _building.set(graph)
    try:
        returned = fn(**params)
    finally:
        _building.reset(token)
    graph.validate()
    return graph, returned


def current_graph() -> Graph | None:
    """The graph being built, when called inside a pipeline function."""
    return _building.get()
