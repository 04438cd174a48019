"""Prefect side of the pipelines benchmark (``benchmarks/pipelines.py`` drives it).

Runs INSIDE the isolated Prefect venv made by ``benchmarks/setup_peers.sh``, never in Steward's venv::

    benchmarks/.peers/prefect/bin/python benchmarks/peer_prefect.py --repeats 3

Prints one JSON object on stdout (all times in seconds); progress goes to stderr.

Prefect runs locally on its ephemeral API: no ``PREFECT_API_URL`` (every inherited ``PREFECT_*``
variable is dropped), ``PREFECT_HOME`` a fresh temporary directory (so a fresh SQLite database and
result storage, removed at the end), analytics off, log level WARNING and no logs shipped to the
API. The ephemeral server is a subprocess that Prefect starts on the first flow call; that call (an
empty flow) is the warm-up and is reported as ``startup`` (plus ``import`` for ``import prefect``),
and every timed figure below comes after it, in the same process. Each case is the wall time around
one flow call, best of ``--repeats`` (all repeats reported too); before each timed repeat the
process waits (up to ``--max-wait`` seconds) until the machine is quiet, as ``peer_data.py`` does.

The flows (the same shapes and trivial steps as Steward's side in ``pipelines.py``):

- ``flow_overhead``: an empty flow.
- ``chain10``: 10 tasks in a linear chain, ``step(x) -> x + 1`` from 0, each task called in the flow
  (Prefect runs a called task inline, the cheapest way it runs a chain).
- ``dag500_threads``: one ``source() -> 1``, 498 ``mid(x, i) -> x + i`` each given the source's
  future (and its own index, so that the cached case cannot collapse them into one cache key), one
  ``sink(values) -> sum(values)`` given the list of all 498 futures; ``ThreadPoolTaskRunner`` with
  Prefect's default ``max_workers``. The result is checked.
- ``dag500_processes``: the same DAG on ``ProcessPoolTaskRunner`` (built into Prefect 3.8;
  ``max_workers`` = the CPU count). Each flow run starts its own pool, as it does for a user.
- ``dag500_cached_rerun``: the same DAG on threads with ``cache_policy=TASK_SOURCE + INPUTS`` and
  ``persist_result=True`` (local result storage under ``PREFECT_HOME``); run once untimed to fill
  the cache, then every timed repeat is a fully cached rerun (checked: no task body runs).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import wait_quiet  # stdlib only

N_MID = 498
CHAIN = 10
BUSY_LIMIT = 0.15  # as in data.py: other work above this share of the CPUs delays a timed repeat

# Local, quiet and offline, set before Prefect is imported. Spawned workers of the process pool
# import this module as ``__mp_main__`` and inherit the environment the main process set.
QUIET_ENV = {
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
}

if __name__ == "__main__":
    for _key in [k for k in os.environ if k.startswith("PREFECT_")]:
        del os.environ[_key]
    _HOME = Path(tempfile.mkdtemp(prefix="steward-bench-prefect-home-"))
    # Registered before Prefect's own atexit hooks, so it runs after them (the server is stopped).
    atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
    os.environ.update(QUIET_ENV)
    os.environ["PREFECT_HOME"] = str(_HOME)

_T0 = time.perf_counter()
from prefect import flow, task  # noqa: E402
from prefect.cache_policies import INPUTS, TASK_SOURCE  # noqa: E402
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - _T0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Tasks and flows (module level, so that the process pool can pickle them)
# --------------------------------------------------------------------------------------------


@task
def step(x: int) -> int:
    return x + 1


@task
def source() -> int:
    return 1


@task
def mid(x: int, i: int) -> int:
    return x + i


@task
def sink(values: list[int]) -> int:
    return sum(values)


CACHE = TASK_SOURCE + INPUTS
cached_source = source.with_options(cache_policy=CACHE, persist_result=True)
cached_mid = mid.with_options(cache_policy=CACHE, persist_result=True)
cached_sink = sink.with_options(cache_policy=CACHE, persist_result=True)

DAG_RESULT = sum(1 + i for i in range(N_MID))


@flow
def empty_flow() -> None:
    return None


@flow
def chain_flow() -> int:
    x = 0
    for _ in range(CHAIN):
        x = step(x)
    return x


def _dag(src: Any, m: Any, snk: Any) -> int:
    s = src.submit()
    mids = [m.submit(s, i) for i in range(N_MID)]
    return int(snk.submit(mids).result())


@flow(task_runner=ThreadPoolTaskRunner())
def dag_threads() -> int:
    return _dag(source, mid, sink)


@flow(task_runner=ProcessPoolTaskRunner())
def dag_processes() -> int:
    return _dag(source, mid, sink)


@flow(task_runner=ThreadPoolTaskRunner())
def dag_cached() -> dict[str, Any]:
    s = cached_source.submit()
    mids = [cached_mid.submit(s, i) for i in range(N_MID)]
    total = cached_sink.submit(mids)
    futures = [s, *mids, total]
    states = [f.wait() or f.state for f in futures]
    return {"result": int(total.result()), "cached": sum(1 for st in states if st.name == "Cached")}


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

CASES = ["flow_overhead", "chain10", "dag500_threads", "dag500_processes", "dag500_cached_rerun"]
# Prefect 3.8 joins each flow run's heartbeat thread at the end of the run, and that thread sleeps in
# 1 s steps: about 1 s of every flow call. The setting has no environment value for "off" (it is an
# int >= 30 or None), so the second configuration sets None through ``temporary_settings``.
CONFIGS = ["default", "heartbeats_off"]
DEFAULT_ONLY = {"dag500_processes"}  # 36-90 s a run: the heartbeat's second is noise there


def _settings(config: str) -> contextlib.AbstractContextManager[Any]:
    if config == "default":
        return contextlib.nullcontext()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def _timed(
    label: str, fn: Callable[[], Any], repeats: int, max_wait: float, check: Callable[[Any], None]
) -> dict[str, Any]:
    """Best of ``repeats`` wall times of ``fn()``; ``check`` validates each result (after timing)."""
    times: list[float] = []
    busy: list[float] = []
    for r in range(repeats):
        b = wait_quiet(max_wait, BUSY_LIMIT)
        if b is not None:
            busy.append(round(b, 3))
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        check(out)
        log(f"prefect {label:<36} repeat {r + 1}/{repeats}: {times[-1]:.3f} s")
    return {"seconds": min(times), "times": times, "busy": busy}


def _equals(expected: Any) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        if out != expected:
            raise RuntimeError(f"flow returned {out!r}, expected {expected!r}")

    return check


def _all_cached(out: dict[str, Any]) -> None:
    if out["result"] != DAG_RESULT or out["cached"] != N_MID + 2:
        raise RuntimeError(f"cached rerun: {out} (expected result {DAG_RESULT}, {N_MID + 2} cached)")


TIMED: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "flow_overhead": (empty_flow, _equals(None)),
    "chain10": (chain_flow, _equals(CHAIN)),
    "dag500_threads": (dag_threads, _equals(DAG_RESULT)),
    "dag500_processes": (dag_processes, _equals(DAG_RESULT)),
    "dag500_cached_rerun": (dag_cached, _all_cached),
}


def run_case(name: str, configs: list[str], repeats: int, max_wait: float) -> dict[str, Any]:
    """One case under each configuration: ``seconds`` is the best of all, ``best_config`` where."""
    fn, check = TIMED[name]
    result: dict[str, Any] = {}
    for config in configs:
        if config != "default" and name in DEFAULT_ONLY:
            continue
        try:
            with _settings(config):
                result[config] = _timed(f"{name} ({config})", fn, repeats, max_wait, check)
        except Exception as exc:  # one broken case does not stop the others
            result[config] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"prefect {name} ({config}) failed: {exc!r}")
    ok = {c: r for c, r in result.items() if "error" not in r}
    if not ok:
        return {"error": "; ".join(f"{c}: {r['error']}" for c, r in result.items()), **result}
    best = min(ok, key=lambda c: ok[c]["seconds"])
    return {"seconds": ok[best]["seconds"], "best_config": best, **result}


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print the JSON object."""
    import importlib.metadata as md

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed flow calls per case (best is reported)")
    p.add_argument("--max-wait", type=float, default=30.0, help="seconds to wait for a quiet machine")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument(
        "--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS)
    )
    args = p.parse_args(argv)
    cases, configs = args.cases.split(","), args.configs.split(",")
    if unknown := (set(cases) - set(CASES)) | (set(configs) - set(CONFIGS)):
        p.error(f"unknown case(s) or config(s): {', '.join(sorted(unknown))}")

    t0 = time.perf_counter()
    empty_flow()  # warm-up: starts the ephemeral API server (and migrates its SQLite database)
    startup = time.perf_counter() - t0
    log(f"prefect startup (first flow call, ephemeral server) {startup:.2f} s")

    out: dict[str, Any] = {
        "system": "prefect",
        "version": md.version("prefect"),
        "fastapi": md.version("fastapi"),
        "repeats": args.repeats,
        "import": IMPORT_SECONDS,
        "startup": startup,
        "n_mid": N_MID,
        "chain": CHAIN,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "thread_pool_max_workers": getattr(ThreadPoolTaskRunner(), "_max_workers", None),
        "process_pool_max_workers": getattr(ProcessPoolTaskRunner(), "_max_workers", None),
        "configs": configs,
        "settings": {k: v for k, v in os.environ.items() if k in QUIET_ENV} | {"PREFECT_API_URL": None},
    }
    for name in cases:
        if name == "dag500_cached_rerun":
            try:
                t0 = time.perf_counter()
                warm = dag_cached()  # fills the cache: nothing is cached yet
                out["dag500_cached_warm"] = {"seconds": time.perf_counter() - t0, "cached": warm["cached"]}
                log(f"prefect dag500_cached warm run {out['dag500_cached_warm']['seconds']:.3f} s")
            except Exception as exc:
                out[name] = {"error": f"warm run: {type(exc).__name__}: {exc}"}
                continue
        out[name] = run_case(name, configs, args.repeats, args.max_wait)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
