"""Steward's side of the pipelines benchmark: the DAGs of ``peer_prefect.py``, timed, as one JSON line.

Run by ``benchmarks/pipelines.py`` with Steward's venv, in a fresh ``STEWARD_HOME`` (a temporary folder):

    python benchmarks/steward_pipelines.py --repeats 3

Each figure is the best of ``--repeats`` runs of the whole pipeline (``Pipeline.run``: building the
graph, recording the pipeline run and a child run per step, the steps on the ``processes`` executor,
every output stored in the blob store) after one warm-up run. The uncached cases run with
``cache=False`` and a new source value each time, so every output is new bytes to store: nothing is
reused from an earlier repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import steward
from steward import pipeline, step


@step
def source(seed: int) -> int:
    """The DAG's source."""
    return seed


@step
def add(x: int, i: int) -> int:
    """One trivial step."""
    return x + i


@step
def total(values: list[int]) -> int:
    """The DAG's sink."""
    return sum(values)


@pipeline
def dag(seed: int = 1, width: int = 498) -> Any:
    """One source, ``width`` parallel steps on its output, one sink."""
    s = source(seed)
    return total([add(s, i) for i in range(width)])


@pipeline
def chain(seed: int = 0, length: int = 10) -> Any:
    """``length`` steps in a line."""
    value = source(seed)
    for _ in range(length - 1):
        value = add(value, 1)
    return value


@pipeline
def one(seed: int = 0) -> Any:
    """The smallest pipeline: one step (per-run overhead)."""
    return source(seed)


def _time(repeats: int, make: Any) -> dict[str, Any]:
    times = []
    for n in range(repeats):
        started = time.perf_counter()
        run = make(n)
        times.append(time.perf_counter() - started)
        if not run.succeeded:
            return {"error": f"run {run.id} failed: {run.info.error}"}
    return {"seconds": min(times), "times": times}


def main() -> int:
    """Run every case; print one JSON object."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executor", default="processes")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="steward-bench-pipelines-")
    steward.configure(home=home, uri="")
    ex = args.executor
    seed = iter(range(1_000, 1_000_000, 1_000))
    out: dict[str, Any] = {"executor": ex, "cpus": os.cpu_count()}

    started = time.perf_counter()
    dag.run(ex, cache=False, seed=next(seed), width=2)  # warm-up: the pool starts, statements compile
    out["warmup"] = time.perf_counter() - started
    out["dag500"] = _time(args.repeats, lambda _n: dag.run(ex, cache=False, seed=next(seed)))
    out["chain10"] = _time(args.repeats, lambda _n: chain.run(ex, cache=False, seed=next(seed)))
    out["flow_overhead"] = _time(args.repeats, lambda _n: one.run(ex, cache=False, seed=next(seed)))
    filled = time.perf_counter()
    dag.run(ex, seed=7)  # fills the cache
    out["dag500_cached_warm"] = {"seconds": time.perf_counter() - filled}
    out["dag500_cached_rerun"] = _time(args.repeats, lambda _n: dag.run(ex, seed=7))
    cached = steward.list_pipeline_runs("dag", limit=1)[0]
    out["cached_states"] = cached.counts()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
