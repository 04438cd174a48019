"""The pipeline domain's plain types: step states, output references, step and pipeline runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class StepState(StrEnum):
    """Where a step of a pipeline run stands."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    CACHED = "CACHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def is_done(self) -> bool:
        """Whether the step will not change any more in this run."""
        return self not in (StepState.PENDING, StepState.RUNNING)

    @property
    def succeeded(self) -> bool:
        """Whether the step's outputs exist (run now or reused from the cache)."""
        return self in (StepState.SUCCEEDED, StepState.CACHED)


class PipelineState(StrEnum):
    """The state of a whole pipeline run."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass(frozen=True)
class OutputRef:
    """A materialised value: which materialiser wrote it, where (a blob digest) and what it was.

    Attributes:
        materializer: The materialiser's name (``json``, ``arrow``, ``pandas``, ``model`` …).
        digest: The blob holding the bytes.
        type_name: ``module.QualName`` of the value's type, for display and type checks.
        size: Bytes stored.
        inline: The JSON value itself, carried along when small, so the next step skips a blob read.
        meta: What the materialiser wants to remember (rows, columns, flavor, a dataset version id …).
        stored: Whether the bytes are in the blob store. A small JSON value is kept only inline, in the
            metadata database's step row; ``digest`` is still the SHA-256 of its JSON bytes.
    """

    materializer: str
    digest: str
    type_name: str
    size: int
    inline: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    stored: bool = True

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in the database and sent over the API."""
        out: dict[str, Any] = {
            "materializer": self.materializer,
            "digest": self.digest,
            "type": self.type_name,
            "size": self.size,
        }
        if self.inline is not None or not self.stored:
            out["inline"] = self.inline
        if not self.stored:
            out["stored"] = False
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputRef:
        """Inverse of ``to_json``."""
        return cls(
            materializer=data["materializer"],
            digest=data["digest"],
            type_name=data.get("type", ""),
            size=int(data.get("size", 0)),
            inline=data.get("inline"),
            meta=data.get("meta") or {},
            stored=bool(data.get("stored", True)),
        )


@dataclass
class StepRun:
    """One node of a pipeline run, as recorded.

    Attributes:
        key: The node's name in the graph (``train``, or ``train_2`` for a second call).
        step: The step's name (the decorated function's).
        state: Its state.
        upstream: The keys of the nodes it reads from.
        run_id: The child tracking run, once the step has started (none for a skipped step).
        attempts: How many times it ran in this pipeline run (retries count).
        start_time: Unix ms of the first attempt, or ``None``.
        end_time: Unix ms of the end, or ``None``.
        cache_key: The digest of code, inputs, parameters and environment.
        cached_from: For a cached step, the step run whose outputs it reused.
        error: The last attempt's traceback, for a failed step.
        inputs: Argument name to the reference it read (an ``OutputRef`` JSON, or ``{"value": …}``).
        outputs: The references of what it returned, in order.
        host: Where it ran (host name, and the Ray node id on Ray).
        resources: What it asked for (``{"cpu": 2}``).
    """

    key: str
    step: str
    state: StepState
    upstream: Sequence[str] = ()
    run_id: str | None = None
    attempts: int = 0
    start_time: int | None = None
    end_time: int | None = None
    cache_key: str | None = None
    cached_from: str | None = None
    error: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Sequence[OutputRef] = ()
    host: str = ""
    resources: Mapping[str, float] = field(default_factory=dict)

    @property
    def duration_ms(self) -> int | None:
        """Wall time of the step, when it has ended."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (the REST API's)."""
        return {
            "key": self.key,
            "step": self.step,
            "state": self.state.value,
            "upstream": list(self.upstream),
            "run_id": self.run_id,
            "attempts": self.attempts,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_ms": self.duration_ms,
            "cache_key": self.cache_key,
            "cached_from": self.cached_from,
            "error": self.error,
            "inputs": dict(self.inputs),
            "outputs": [o.to_json() for o in self.outputs],
            "host": self.host,
            "resources": dict(self.resources),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRun:
        """Inverse of ``to_json``."""
        return cls(
            key=data["key"],
            step=data["step"],
            state=StepState(data["state"]),
            upstream=list(data.get("upstream") or []),
            run_id=data.get("run_id"),
            attempts=int(data.get("attempts") or 0),
            start_time=data.get("start_time"),
            end_time=data.get("end_time"),
            cache_key=data.get("cache_key"),
            cached_from=data.get("cached_from"),
            error=data.get("error"),
            inputs=data.get("inputs") or {},
            outputs=[OutputRef.from_json(o) for o in data.get("outputs") or []],
            host=data.get("host") or "",
            resources=data.get("resources") or {},
        )


@dataclass
class PipelineRunInfo:
    """A pipeline run as recorded: the tracked run that holds it and its steps.

    Attributes:
        run_id: The tracking run of the whole pipeline (each step is a child run of it).
        pipeline: The pipeline's name.
        reference: How to import it again (``path/to/file.py:name`` or ``module:name``), for resume.
        state: Its state.
        executor: The executor it ran on (``local``, ``processes``, ``ray`` …).
        params: The parameters it ran with.
        start_time: Unix ms.
        end_time: Unix ms, when it has ended.
        steps: Its nodes in topological order.
        outputs: References of what the pipeline function returned (a JSON structure of refs).
        resumed_from: The pipeline run this one resumed, if any.
        error: Why it failed (the names of the failed steps).
    """

    run_id: str
    pipeline: str
    reference: str
    state: PipelineState
    executor: str
    params: Mapping[str, Any]
    start_time: int
    end_time: int | None = None
    steps: list[StepRun] = field(default_factory=list)
    outputs: Any = None
    resumed_from: str | None = None
    error: str | None = None

    def step(self, key: str) -> StepRun:
        """Return the node named ``key``.

        Raises:
            KeyError: If the run has no such node.
        """
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def counts(self) -> dict[str, int]:
        """How many steps are in each state."""
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.state.value] = out.get(s.state.value, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (the REST API's)."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "reference": self.reference,
            "state": self.state.value,
            "executor": self.executor,
            "params": dict(self.params),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "steps": [s.to_json() for s in self.steps],
            "outputs": self.outputs,
            "resumed_from": self.resumed_from,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PipelineRunInfo:
        """Inverse of ``to_json``."""
        return cls(
            run_id=data["run_id"],
            pipeline=data["pipeline"],
            reference=data.get("reference") or "",
            state=PipelineState(data["state"]),
            executor=data.get("executor") or "",
            params=data.get("params") or {},
            start_time=int(data["start_time"]),
            end_time=data.get("end_time"),
            steps=[StepRun.from_json(s) for s in data.get("steps") or []],
            outputs=data.get("outputs"),
            resumed_from=data.get("resumed_from"),
            error=data.get("error"),
        )


class PipelineBackend(Protocol):
    """Reading recorded pipeline runs: ``PipelineService`` (embedded) or the REST client."""

    def get_run(self, run_id: str) -> PipelineRunInfo:
        """Return a pipeline run with its steps.

        Raises:
            NotFound: If there is no such pipeline run.
        """
        ...

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[PipelineRunInfo]:
        """The newest pipeline runs, of one pipeline if named."""
        ...
