"""The Ray executor on a real two-node cluster: spread, resources, failures, timeouts, blobs, by value."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import steward
from steward.config import Settings, load_settings
from steward.errors import InvalidInput
from steward.pipelines.dsl import Step
from steward.pipelines.executors.base import Task, TaskResult
from steward.pipelines.executors.ray import RayExecutor, ray_executor
from steward.pipelines.models import OutputRef
from steward.pipelines.sdk import load_pipeline
from steward.store.blobs import BlobStore
from tests.pipelines import ray_steps as rs

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose blob store is a fresh folder under ``tmp_path``."""
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def executor(ray_cluster: Any) -> Iterator[RayExecutor]:
    """A Ray executor on the session's cluster (which it joins, so it leaves it running)."""
    made = RayExecutor()
    yield made
    made.shutdown()


def task(settings: Settings, key: str, step: Step, **inputs: Any) -> Task:
    """An attempt of ``step``; plain values become constant inputs, ``OutputRef`` values are loaded."""
    specs = {k: v if isinstance(v, OutputRef) else ("value", v) for k, v in inputs.items()}
    return Task(key, 1, step, specs, run_id=None, timeout=step.timeout, settings=settings)


def run_all(executor: RayExecutor, tasks: Iterable[Task], within: float = 30.0) -> dict[str, TaskResult]:
    """Submit ``tasks`` and collect their results by key, failing the test after ``within`` seconds."""
    keys = set()
    for t in tasks:
        executor.submit(t)
        keys.add(t.key)
    results: dict[str, TaskResult] = {}
    deadline = time.monotonic() + within
    while keys - set(results):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no result within {within} s for {sorted(keys - set(results))}"
        results.update((r.key, r) for r in executor.wait(min(remaining, 1.0)))
    return results


def test_independent_steps_spread_over_both_nodes(executor: RayExecutor, settings: Settings) -> None:
    results = run_all(executor, [task(settings, f"where_{i}", rs.where, i=i) for i in range(8)])

    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    assert {r.outputs[0].inline for r in results.values()} == set(range(8))
    assert len({r.node_id for r in results.values()}) == 2


def test_a_step_no_node_can_hold_fails_at_once(executor: RayExecutor, settings: Settings) -> None:
    started = time.monotonic()
    results = run_all(executor, [task(settings, "greedy", rs.greedy)], within=5)

    assert time.monotonic() - started < 2
    result = results["greedy"]
    assert not result.ok and not result.timed_out
    assert result.error == "step 'greedy' asks for 2 CPUs but no node of the cluster has more than 1"


def test_a_failing_step_comes_back_with_its_traceback(executor: RayExecutor, settings: Settings) -> None:
    result = run_all(executor, [task(settings, "broken", rs.broken, x=42)])["broken"]

    assert not result.ok and not result.timed_out
    assert result.error is not None
    assert "Traceback" in result.error and "ValueError: bad input 42" in result.error
    assert result.node_id and result.pid


def test_a_step_past_its_timeout_is_stopped_on_its_worker(executor: RayExecutor, settings: Settings) -> None:
    started = time.monotonic()
    result = run_all(executor, [task(settings, "slow", rs.slow)])["slow"]

    assert time.monotonic() - started < 10
    assert not result.ok and result.timed_out
    assert result.error == "step 'slow' timed out after 1 s"
    assert result.node_id  # the worker itself reported it


def test_a_step_that_swallows_its_timeout_loses_its_worker(ray_cluster: Any, settings: Settings) -> None:
    executor = RayExecutor(kill_after=1.0)
    started = time.monotonic()
    try:
        result = run_all(executor, [task(settings, "stubborn", rs.stubborn)])["stubborn"]
    finally:
        executor.shutdown()

    assert time.monotonic() - started < 15
    assert not result.ok and result.timed_out
    assert result.error is not None
    assert result.error.startswith("step 'stubborn' timed out after 0.5 s (it ignored the timeout")


def test_a_worker_that_dies_comes_back_as_a_failed_result(executor: RayExecutor, settings: Settings) -> None:
    result = run_all(executor, [task(settings, "crash", rs.crash)])["crash"]

    assert not result.ok and not result.timed_out
    assert result.error is not None
    assert result.error.startswith("step 'crash' failed in Ray: WorkerCrashedError: The worker died")


def test_outputs_are_blobs_that_tasks_on_either_node_load(executor: RayExecutor, settings: Settings) -> None:
    produced = run_all(executor, [task(settings, "numbers", rs.numbers, n=2000)])["numbers"]
    assert produced.ok, produced.error
    (ref,) = produced.outputs
    assert ref.inline is None and BlobStore.from_settings(settings).exists(ref.digest)

    consumers = [task(settings, f"total_{k}", rs.total, values=ref, plus=k) for k in range(4)]
    results = run_all(executor, consumers)

    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    expected = sum(range(2000))
    assert {k: r.outputs[0].inline for k, r in results.items()} == {
        f"total_{k}": expected + k for k in range(4)
    }
    assert len({r.node_id for r in results.values()}) == 2  # so some ran away from the producer


def test_a_pipeline_runs_on_ray_end_to_end(ray_cluster: Any, steward_home: Path) -> None:
    run = rs.spread.run(executor="ray", n=2000, parts=4)

    assert run.succeeded, {key: st.error for key, st in run.steps.items()}
    assert run.result == 4 * sum(range(2000)) + sum(range(4))
    nodes = {run.steps[key].host.split()[-1] for key in ("total", "total_2", "total_3", "total_4")}
    assert len(nodes) == 2
    assert steward.get_run(run.steps["report"].run_id or "").metrics["parts"] == 4.0
    assert ray_cluster is not None and _ray().is_initialized()  # the run left the shared cluster up


def test_a_pipeline_file_loaded_by_path_runs_on_ray(ray_cluster: Any, steward_home: Path) -> None:
    flow_file = steward_home.parent / "flows" / "tripling.py"
    flow_file.parent.mkdir()
    flow_file.write_text(
        textwrap.dedent(
            """
            from steward import pipeline, step

            def helper(x):  # a plain function the step calls: Ray workers cannot import this file
                return x * 3

            @step
            def triple(x: int) -> int:
                return helper(x)

            @pipeline
            def flow(x: int = 2):
                return triple(x)
            """
        )
    )
    flow = load_pipeline(f"{flow_file}:flow")
    try:
        run = flow.run(executor="ray", x=5)
    finally:
        sys.modules.pop(flow.fn.__module__, None)

    assert run.succeeded, {key: st.error for key, st in run.steps.items()}
    assert run.result == 15


def test_executor_specs(ray_cluster: Any) -> None:
    joined = ray_executor("ray")
    assert joined.name == "ray"
    joined.shutdown()
    assert _ray().is_initialized()  # it joined the cluster, so it does not stop it
    with pytest.raises(InvalidInput, match="unknown executor 'ray:somewhere'"):
        ray_executor("ray:somewhere")


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail

    with pytest.raises(InvalidInput) as caught:
        RayExecutor()
    assert caught.value.message == "the ray executor needs Ray: pip install 'steward-ml[ray]'"


def _ray() -> Any:
    import ray

    return ray
