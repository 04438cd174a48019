"""The orchestrator: walks the graph, reuses cached steps, submits the rest, retries, records.

All bookkeeping happens here, in the calling process; workers only compute and store outputs. Changes
are written in batches: before tasks are submitted (their child runs must exist for the step's own
logging), and at most every ``FLUSH_INTERVAL`` seconds while steps run.
"""

from __future__ import annotations

import graphlib
import heapq
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steward.core.ids import new_id
from steward.core.time import now_ms
from steward.errors import StewardError
from steward.pipelines import materializers
from steward.pipelines.cache import cache_key
from steward.pipelines.dsl import StepOutput
from steward.pipelines.executors.base import Executor, Task, TaskResult
from steward.pipelines.graph import Graph, Node
from steward.pipelines.materializers import is_json
from steward.pipelines.models import OutputRef, PipelineRunInfo, PipelineState, StepRun, StepState
from steward.pipelines.service import PipelineService, StepBatch
from steward.tracking.models import RunStatus

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25
LOG_ARTIFACT = "step.log"
Progress = Callable[[PipelineRunInfo], None]


@dataclass
class RunOptions:
    """How to run: cache use, where to record, and what an earlier run already did.

    Attributes:
        cache: ``False`` runs every step even when its outputs are cached.
        experiment: The experiment of the pipeline's tracking run.
        run_name: The tracking run's name.
        parent_run_id: Nest the pipeline run under this run (a tuning study, say).
        tags: Tags of the tracking run.
        previous: A run being resumed: its succeeded steps are reused, the rest run.
        progress: Called with the run's state after each batch of changes (the CLI's live view).
    """

    cache: bool = True
    experiment: str | None = None
    run_name: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    previous: PipelineRunInfo | None = None
    progress: Progress | None = None


def _input_spec(value: Any, outputs: dict[str, list[OutputRef]]) -> Any:
    if isinstance(value, StepOutput):
        return outputs[value.node][value.index]
    if isinstance(value, OutputRef):
        return value
    if isinstance(value, list | tuple) and any(isinstance(v, StepOutput) for v in value):
        return ("list", [_input_spec(v, outputs) for v in value])
    if isinstance(value, dict) and any(isinstance(v, StepOutput) for v in value.values()):
        return ("dict", {k: _input_spec(v, outputs) for k, v in value.items()})
    return ("value", value)


def _input_json(spec: Any) -> Any:
    if isinstance(spec, OutputRef):
        return spec.to_json()
    kind, value = spec
    if kind == "value":
        return {"value": value}
    if kind == "list":
        return {"list": [_input_json(s) for s in value]}
    return {"dict": {k: _input_json(s) for k, s in value.items()}}


def _refs_in(spec: Any) -> list[OutputRef]:
    if isinstance(spec, OutputRef):
        return [spec]
    kind, value = spec
    if kind == "list":
        return [r for s in value for r in _refs_in(s)]
    if kind == "dict":
        return [r for s in value.values() for r in _refs_in(s)]
    return []


def _lineage_end(ref: OutputRef) -> tuple[str, str]:
    if ref.materializer == "dataset_version" and ref.meta.get("dataset_version_id"):
        return "dataset_version", str(ref.meta["dataset_version_id"])
    if ref.materializer == "model_version" and ref.meta.get("model_version_id"):
        return "model_version", str(ref.meta["model_version_id"])
    return "artifact", ref.digest


def _param_text(value: Any) -> str | None:
    if isinstance(value, bool | int | float | str):
        text = str(value)
        return text if len(text) <= 6000 else None
    return None


class Runner:
    """Runs one pipeline graph to the end on an executor, recording everything through ``service``.

    Args:
        service: Where the run is recorded.
        graph: The validated graph.
        returned: What the pipeline function returned (a structure of ``StepOutput``).
        pipeline: The pipeline's name.
        reference: How to import it again, for resume.
        params: The parameters it was called with.
        executor: Where steps run.
        options: See ``RunOptions``.
    """

    def __init__(
        self,
        service: PipelineService,
        graph: Graph,
        returned: Any,
        pipeline: str,
        reference: str,
        params: dict[str, Any],
        executor: Executor,
        options: RunOptions,
    ) -> None:
        self.service = service
        self.graph = graph
        self.returned = returned
        self.pipeline = pipeline
        self.reference = reference
        self.params = params
        self.executor = executor
        self.options = options
        self.settings = service.platform.settings
        self.blobs = service.platform.blobs
        self.order = graph.validate()
        self._upstream = graph.upstream()
        self.steps: dict[str, StepRun] = {}
        for key in self.order:
            node = graph.nodes[key]
            self.steps[key] = StepRun(
                key=key,
                step=node.step.name,
                state=StepState.PENDING,
                upstream=self._upstream[key],
                resources=dict(node.step.resources),
            )
        self._constants = {key: self._materialise_constants(graph.nodes[key]) for key in self.order}
        self.outputs: dict[str, list[OutputRef]] = {}
        self.values: dict[str, list[Any]] = {}
        self._specs: dict[str, dict[str, Any]] = {}
        self._logs: dict[str, str] = {}
        self._batch = StepBatch()
        self._last_flush = time.monotonic()
        self._retries: list[tuple[float, int, str]] = []
        self._running: set[str] = set()
        self.run_id = ""
        self.experiment_id = ""
        self.start_time = now_ms()

    def _materialise_constants(self, node: Node) -> dict[str, Any]:
        """Constant inputs that are not JSON become blobs now, so a bad one fails before anything runs."""
        out: dict[str, Any] = {}
        for arg, value in node.inputs.items():
            if (
                isinstance(value, StepOutput)
                or is_json(value)
                or (
                    isinstance(value, list | tuple | dict)
                    and any(
                        isinstance(v, StepOutput)
                        for v in (value.values() if isinstance(value, dict) else value)
                    )
                )
            ):
                out[arg] = value
            else:
                out[arg] = materializers.save(value, self.blobs)
        return out

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> PipelineRunInfo:
        """Run every node; return the recorded run. Step failures fail the run, they do not raise.

        Raises:
            KeyboardInterrupt: After recording the run as KILLED.
        """
        experiment = self.options.experiment or self.pipeline
        self.start_time = now_ms()
        self.run_id, self.experiment_id = self.service.begin(
            pipeline=self.pipeline,
            reference=self.reference,
            executor=self.executor.name,
            params=self.params,
            steps=list(self.steps.values()),
            experiment=experiment,
            run_name=self.options.run_name,
            parent_run_id=self.options.parent_run_id,
            tags=self.options.tags,
            resumed_from=self.options.previous.run_id if self.options.previous else None,
        )
        try:
            self._loop()
        except BaseException:
            self._abandon()
            raise
        finally:
            self.executor.shutdown()
        return self._finish()

    def _loop(self) -> None:
        sorter = graphlib.TopologicalSorter(self._upstream)
        sorter.prepare()
        self.sorter = sorter
        while sorter.is_active():
            ready = sorter.get_ready()
            if ready:
                self._dispatch(list(ready))
                continue
            timeout = None
            if self._retries:
                timeout = max(0.0, self._retries[0][0] - time.monotonic())
                if timeout == 0.0 or not self._running:
                    if timeout:
                        time.sleep(timeout)
                    self._submit_due_retries()
                    continue
            if not self._running:
                raise RuntimeError("pipeline scheduler stalled: nothing running and nothing ready")
            results = self.executor.wait(timeout if timeout is not None else FLUSH_INTERVAL)
            for result in results:
                self._handle(result)
            self._submit_due_retries()
            if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
                self._flush()

    def _flush(self) -> None:
        batch, self._batch = self._batch, StepBatch()
        self.service.write(self.run_id, self.experiment_id, batch)
        self._last_flush = time.monotonic()
        if self.options.progress is not None:
            self.options.progress(self.info())

    # -- dispatch -----------------------------------------------------------------------------------

    def _dispatch(self, keys: list[str]) -> None:
        to_check: dict[str, str] = {}
        for key in keys:
            step = self.steps[key]
            failed_up = [u for u in self._upstream[key] if not self.steps[u].state.succeeded]
            if failed_up:
                self._settle(
                    step, StepState.SKIPPED, error=f"skipped: upstream {', '.join(failed_up)} did not succeed"
                )
                continue
            node = self.graph.nodes[key]
            specs = {arg: _input_spec(v, self.outputs) for arg, v in self._constants[key].items()}
            self._specs[key] = specs
            step.inputs = {arg: _input_json(s) for arg, s in specs.items()}
            previous = self._previous_success(key)
            if previous is not None:
                self._reuse(step, previous.run_id or "", list(previous.outputs), previous.cache_key)
                continue
            if node.step.cache:  # recorded even when this run does not read the cache
                step.cache_key = cache_key(node.step, specs)
                if self.options.cache:
                    to_check[key] = step.cache_key
        hits = self.service.cached(list(set(to_check.values()))) if to_check else {}
        submit: list[str] = []
        for key in keys:
            step = self.steps[key]
            if step.state is not StepState.PENDING:
                continue
            hit = hits.get(step.cache_key or "") if key in to_check else None
            if hit is not None and all(not r.stored or self.blobs.exists(r.digest) for r in hit[1]):
                self._reuse(step, hit[0], hit[1], step.cache_key)
                continue
            step.state = StepState.RUNNING
            step.run_id = new_id()
            step.start_time = now_ms()
            step.attempts = 1
            params = {a: t for a, v in self._constants[key].items() if (t := _param_text(v)) is not None}
            self._batch.new_runs.append((step, RunStatus.RUNNING, params))
            self._batch.steps.append(step)
            submit.append(key)
        if submit:
            self._flush()  # the child runs must exist before the steps' own code can log to them
            for key in submit:
                self._submit(key)

    def _previous_success(self, key: str) -> StepRun | None:
        previous = self.options.previous
        if previous is None:
            return None
        try:
            old = previous.step(key)
        except KeyError:
            return None
        return old if old.state.succeeded and old.outputs else None

    def _reuse(self, step: StepRun, source_run: str, outputs: list[OutputRef], key: str | None) -> None:
        step.cached_from = source_run
        step.cache_key = key
        step.run_id = new_id()
        step.start_time = step.end_time = now_ms()
        self.outputs[step.key] = outputs
        self._batch.new_runs.append((step, RunStatus.FINISHED, {}))
        self._settle(step, StepState.CACHED, outputs=outputs)

    def _submit(self, key: str) -> None:
        step = self.steps[key]
        node = self.graph.nodes[key]
        specs = self._specs[key]
        live: dict[str, Any] = {}
        if key in self.values or any(u in self.values for u in self._upstream[key]):
            for arg, value in self._constants[key].items():
                if isinstance(value, StepOutput) and value.node in self.values:
                    live[arg] = self.values[value.node][value.index]
        task = Task(
            key=key,
            attempt=step.attempts,
            step=node.step,
            inputs=specs,
            run_id=step.run_id,
            timeout=node.step.timeout,
            settings=self.settings,
            live=live,
        )
        try:
            self.executor.submit(task)
        except Exception as exc:  # an executor that cannot take the task fails the step, not the run
            reason = exc.message if isinstance(exc, StewardError) else f"{type(exc).__name__}: {exc}"
            self._handle(TaskResult(key, step.attempts, ok=False, error=reason))
            return
        self._running.add(key)

    def _submit_due_retries(self) -> None:
        now = time.monotonic()
        while self._retries and self._retries[0][0] <= now:
            _, _, key = heapq.heappop(self._retries)
            self._submit(key)

    # -- results ------------------------------------------------------------------------------------

    def _handle(self, result: TaskResult) -> None:
        key = result.key
        self._running.discard(key)
        step = self.steps[key]
        node = self.graph.nodes[key]
        step.host = f"{result.host} {result.node_id}".strip() if result.node_id else result.host
        if result.attempt == 1 and result.start_time:
            step.start_time = result.start_time  # when its code started, not when it was queued
        if node.step.retries:  # keep every attempt's output and error apart
            failure = "" if result.ok else f"{result.error}\n"
            text = f"--- attempt {result.attempt} ---\n{result.log}{failure}"
            self._logs[key] = self._logs.get(key, "") + text
        elif result.log:
            self._logs[key] = self._logs.get(key, "") + result.log
        if result.ok:
            self.outputs[key] = result.outputs
            if result.values is not None:
                self.values[key] = result.values
            if step.cache_key and node.step.cache:
                self._batch.cache.append(
                    {
                        "cache_key": step.cache_key,
                        "step": node.step.reference,
                        "run_id": step.run_id,
                        "outputs": json.dumps([o.to_json() for o in result.outputs]),
                        "created_at": now_ms(),
                    }
                )
            self._edges(step, result.outputs)
            self._settle(step, StepState.SUCCEEDED, outputs=result.outputs, ended=result.end_time or None)
            return
        step.error = result.error
        if result.attempt <= node.step.retries:
            delay = node.step.retry_delay * node.step.backoff ** (result.attempt - 1)
            step.attempts = result.attempt + 1
            heapq.heappush(self._retries, (time.monotonic() + delay, step.attempts, key))
            self._batch.steps.append(step)
            log.info("step %s failed (attempt %d), retrying in %.2f s", key, result.attempt, delay)
            return
        self._settle(step, StepState.FAILED, error=result.error, ended=result.end_time or None)

    def _edges(self, step: StepRun, outputs: list[OutputRef]) -> None:
        sources = [r for spec in self._specs.get(step.key, {}).values() for r in _refs_in(spec)]
        now = now_ms()
        for source in sources:
            source_kind, source_id = _lineage_end(source)
            for output in outputs:
                target_kind, target_id = _lineage_end(output)
                self._batch.edges.append(
                    {
                        "source_kind": source_kind,
                        "source_id": source_id,
                        "target_kind": target_kind,
                        "target_id": target_id,
                        "relation": "step",
                        "role": f"{self.run_id}/{step.key}",
                        "created_at": now,
                    }
                )

    def _settle(
        self,
        step: StepRun,
        state: StepState,
        *,
        outputs: list[OutputRef] | None = None,
        error: str | None = None,
        ended: int | None = None,
    ) -> None:
        """Put a step in a final state and let the graph move on."""
        step.state = state
        if outputs is not None:
            step.outputs = outputs
        if error is not None:
            step.error = error
        elif state.succeeded:
            step.error = None
        step.end_time = ended or now_ms()
        if step.run_id and state in (StepState.SUCCEEDED, StepState.FAILED):
            status = RunStatus.FINISHED if state is StepState.SUCCEEDED else RunStatus.FAILED
            lines = (step.error or "").strip().splitlines()
            self._batch.ended_runs.append(
                (step.run_id, status.value, step.end_time, lines[-1] if lines else None, step.host)
            )
            text = self._logs.pop(step.key, "")
            if text:
                ref = self.blobs.put_bytes(text.encode())
                self._batch.artifacts.append(
                    {
                        "run_id": step.run_id,
                        "path": LOG_ARTIFACT,
                        "digest": ref.digest,
                        "size": ref.size,
                        "created_at": step.end_time,
                    }
                )
        self._batch.steps.append(step)
        self.sorter.done(step.key)

    # -- the end ------------------------------------------------------------------------------------

    def _abandon(self) -> None:
        """Record a run interrupted midway: running steps failed as killed, the run KILLED."""
        self.options.progress = None
        for step in self.steps.values():
            if step.state in (StepState.RUNNING, StepState.PENDING) and step.run_id:
                step.state = StepState.FAILED
                step.error = "killed: the pipeline run was interrupted"
                step.end_time = now_ms()
                self._batch.ended_runs.append(
                    (step.run_id, RunStatus.KILLED.value, step.end_time, step.error, step.host)
                )
                self._batch.steps.append(step)
        try:
            self._flush()
            self.service.finish(self.run_id, PipelineState.KILLED, error="interrupted")
        except Exception as exc:  # recording must not hide the interruption itself
            log.error("recording the interrupted pipeline run %s failed: %s", self.run_id, exc)

    def _outputs_json(self, value: Any) -> Any:
        if isinstance(value, StepOutput):
            refs = self.outputs.get(value.node)
            return {"ref": refs[value.index].to_json()} if refs else None
        if isinstance(value, tuple | list):
            return {"list": [self._outputs_json(v) for v in value]}
        if isinstance(value, dict):
            return {"dict": {str(k): self._outputs_json(v) for k, v in value.items()}}
        return {"value": value} if is_json(value) else None

    def info(self) -> PipelineRunInfo:
        """The run as it stands now."""
        failed = [s.key for s in self.steps.values() if s.state is StepState.FAILED]
        done = all(s.state.is_done for s in self.steps.values())
        if not done:
            state = PipelineState.RUNNING
        else:
            state = (
                PipelineState.FAILED
                if any(not s.state.succeeded for s in self.steps.values())
                else PipelineState.SUCCEEDED
            )
        return PipelineRunInfo(
            run_id=self.run_id,
            pipeline=self.pipeline,
            reference=self.reference,
            state=state,
            executor=self.executor.name,
            params=self.params,
            start_time=self.start_time,
            steps=list(self.steps.values()),
            resumed_from=self.options.previous.run_id if self.options.previous else None,
            error=f"failed steps: {', '.join(failed)}" if failed else None,
        )

    def _finish(self) -> PipelineRunInfo:
        self._flush()
        current = self.info()
        outputs = self._outputs_json(self.returned) if current.state is PipelineState.SUCCEEDED else None
        self.service.finish(self.run_id, current.state, outputs, current.error)
        return self.service.get_run(self.run_id)
