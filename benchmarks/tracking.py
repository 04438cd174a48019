"""Tracking benchmark: Steward against MLflow on the same machine, the same way.

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/tracking.py              # full run (MLflow's part takes ~3 minutes)
    .venv/bin/python benchmarks/tracking.py --quick      # smoke run, every N shrunk
    .venv/bin/python benchmarks/tracking.py --write-docs # full run, then update docs/benchmarks.md

MLflow comes from its own venv, made by ``bash benchmarks/setup_peers.sh``; without it only
Steward's column is filled. Every case runs in a fresh subprocess pinned to core 0
(``taskset -c 0``); the HTTP servers (``mlflow server`` and ``steward server``) are pinned to
core 1, so client and server never share a core. Each system gets its own SQLite store in a
fresh temporary directory. Logging timings start once the run exists and end once it is
ended, so they include the SDK's final flush.

MLflow's single-call cases log fewer points than Steward's (its rate does not depend on N and
a Steward-sized N would take hours); the cases compare rates, so N only has to be large enough
for a stable figure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    CLIENT_CORE,
    DOCS_PATH,
    MLFLOW_QUIET_ENV,
    PEER_MLFLOW,
    PEER_PYTHON,
    PEER_VENV,
    SERVER_CORE,
    STEWARD_CLI,
    STEWARD_PYTHON,
    can_pin,
    fmt_ratio,
    free_port,
    machine_info,
    machine_line,
    markdown_table,
    mlflow_env,
    mlflow_version,
    pinned,
    print_table,
    run_json,
    steward_env,
    steward_version,
    stop_group,
    write_docs,
)

PEER_SCRIPT = BENCH_DIR / "peer_mlflow.py"
DOCS_BEGIN = "<!-- BEGIN tracking benchmark (written by benchmarks/tracking.py --write-docs) -->"
DOCS_END = "<!-- END tracking benchmark -->"

SERVER_START_TIMEOUT = 180.0

SEARCH_EXPERIMENT = "bench-runs"
SEARCH_FILTER = "metrics.m0 > 0.5 and params.p0 = 'a'"
SEARCH_MAX_RESULTS = 100
STEWARD_BATCH = 10_000  # points per log_metric_batch call
MLFLOW_BATCH = 1_000  # MLflow's maximum metrics per log_batch request

# The server's background job runner (huey consumers) has nothing to do with tracking.
MLFLOW_SERVER_ENV = {**MLFLOW_QUIET_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark case, run by both systems under the same name."""

    name: str
    label: str
    kind: str  # "rate": points/s, higher is better; "runs": runs/s; "latency": median seconds
    steward_n: int
    mlflow_n: int
    quick_steward_n: int
    quick_mlflow_n: int
    goal: float  # points/s or runs/s at least; for "latency", seconds at most
    goal_text: str
    http: bool = False

    def n(self, system: str, quick: bool) -> int:
        """The size of the case for ``system`` ("steward" or "mlflow")."""
        if system == "steward":
            return self.quick_steward_n if quick else self.steward_n
        return self.quick_mlflow_n if quick else self.mlflow_n


CASES: list[Case] = [
    Case(
        "single_embedded",
        "log_metric, single calls, embedded",
        "rate",
        10_000,
        2_000,
        2_000,
        200,
        300_000,
        "≥ 300,000 points/s",
    ),
    Case(
        "batch_embedded",
        "batched points, embedded",
        "rate",
        1_000_000,
        100_000,
        100_000,
        10_000,
        1_000_000,
        "≥ 1,000,000 points/s",
    ),
    Case(
        "single_http",
        "log_metric, single calls, over HTTP",
        "rate",
        100_000,
        1_000,
        10_000,
        30,
        100_000,
        "≥ 100,000 points/s",
        http=True,
    ),
    Case(
        "batch_http",
        "batched points, over HTTP",
        "rate",
        1_000_000,
        100_000,
        100_000,
        10_000,
        500_000,
        "≥ 500,000 points/s",
        http=True,
    ),
    Case(
        "create_runs",
        "create runs (3 params + 3 metrics each), embedded",
        "runs",
        5_000,
        5_000,
        200,
        200,
        1_000,
        "5,000 runs < 5 s",
    ),
    Case(
        "search_runs",
        "search_runs, 1 metric + 1 param filter, embedded",
        "latency",
        5_000,
        5_000,
        200,
        200,
        0.030,
        "< 30 ms",
    ),
]
CASES_BY_NAME = {c.name: c for c in CASES}
STEWARD_SEARCH_REPEATS = 20
MLFLOW_SEARCH_REPEATS = 5


def run_values(i: int, rng: random.Random) -> tuple[dict[str, Any], dict[str, float]]:
    """Params and metrics of the ``i``-th run of ``create_runs``.

    ``p0`` is ``'a'`` for every other run and ``m0`` is uniform in [0, 1), so the search filter
    matches about a quarter of the runs. Keep in sync with ``run_values`` in ``peer_mlflow.py``.
    """
    params: dict[str, Any] = {"p0": "a" if i % 2 == 0 else "b", "p1": i, "p2": round(rng.random(), 6)}
    metrics = {"m0": rng.random(), "m1": rng.random(), "m2": rng.random()}
    return params, metrics


# --------------------------------------------------------------------------------------------
# Steward's side: one function per case, run in a pinned subprocess (``--steward-case``)
# --------------------------------------------------------------------------------------------


def _steward_configure(workdir: Path, uri: str | None) -> Any:
    """Point the SDK at an embedded store in ``workdir`` or at the server ``uri``."""
    import steward

    if uri:
        steward.configure(uri=uri)
    else:
        steward.configure(home=str(workdir))
    return steward


def _run_id(run: Any) -> str:
    """The id of the run object that ``steward.start_run`` yields."""
    for attr in ("run_id", "id"):
        value = getattr(run, attr, None)
        if value is not None:
            return str(value)
    return str(run.info.run_id)


def _steward_verify(steward: Any, run_id: str, n: int) -> None:
    """Fail the case unless all ``n`` points of ``loss`` were stored (checked after timing)."""
    stored = len(steward.get_metric_history(run_id, "loss"))
    if stored != n:
        raise RuntimeError(f"run {run_id} has {stored} points of 'loss', expected {n}")


def steward_single(n: int, workdir: Path, uri: str | None) -> dict[str, Any]:
    """``n`` single ``steward.log_metric`` calls in one run (the SDK buffers and flushes)."""
    steward = _steward_configure(workdir, uri)
    values = [1.0 / (i + 1) for i in range(n)]
    with steward.start_run(experiment="bench-single", run_name="single") as run:
        t0 = time.perf_counter()
        for i, v in enumerate(values):
            steward.log_metric("loss", v, step=i)
    seconds = time.perf_counter() - t0  # includes the final flush at the end of the run
    _steward_verify(steward, _run_id(run), n)
    return {"points": n, "seconds": seconds, "rate": n / seconds, "unit": "points/s"}


def steward_batch(n: int, workdir: Path, uri: str | None) -> dict[str, Any]:
    """``n`` points of one key through ``steward.log_metric_batch``, 10,000 per call (numpy)."""
    import numpy as np

    steward = _steward_configure(workdir, uri)
    values = np.random.default_rng(0).random(n)
    steps = np.arange(n, dtype=np.int64)
    with steward.start_run(experiment="bench-batch", run_name="batch") as run:
        run_id = _run_id(run)
        t0 = time.perf_counter()
        for start in range(0, n, STEWARD_BATCH):
            end = min(n, start + STEWARD_BATCH)
            steward.log_metric_batch("loss", values[start:end], steps=steps[start:end], run_id=run_id)
    seconds = time.perf_counter() - t0
    _steward_verify(steward, run_id, n)
    return {"points": n, "seconds": seconds, "rate": n / seconds, "unit": "points/s"}


def steward_create_runs(n: int, workdir: Path, uri: str | None) -> dict[str, Any]:
    """Create ``n`` runs in one experiment, each with 3 params and 3 metrics."""
    steward = _steward_configure(workdir, uri)
    rng = random.Random(42)
    rows = [run_values(i, rng) for i in range(n)]
    t0 = time.perf_counter()
    for i, (params, metrics) in enumerate(rows):
        with steward.start_run(experiment=SEARCH_EXPERIMENT, run_name=f"run-{i}"):
            steward.log_params(params)
            steward.log_metrics(metrics)
    seconds = time.perf_counter() - t0
    return {"points": n, "seconds": seconds, "rate": n / seconds, "unit": "runs/s"}


def steward_search_runs(repeats: int, workdir: Path, uri: str | None) -> dict[str, Any]:
    """Median of ``repeats`` ``steward.search_runs`` calls (after one warm-up) over create_runs' runs."""
    steward = _steward_configure(workdir, uri)

    def call() -> Any:
        return steward.search_runs(SEARCH_EXPERIMENT, filter=SEARCH_FILTER, max_results=SEARCH_MAX_RESULTS)

    df = call()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        df = call()
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    rows = len(df)
    return {"points": rows, "rows": rows, "seconds": seconds, "rate": 1 / seconds, "unit": "calls/s"}


STEWARD_CASES: dict[str, Callable[[int, Path, str | None], dict[str, Any]]] = {
    "single_embedded": steward_single,
    "single_http": steward_single,
    "batch_embedded": steward_batch,
    "batch_http": steward_batch,
    "create_runs": steward_create_runs,
    "search_runs": steward_search_runs,  # its n is the number of repeats
}


def steward_case_main(name: str, workdir: Path, n: int, uri: str | None) -> int:
    """Entry point of the ``--steward-case`` subprocess: run one case, print its JSON line."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    result = STEWARD_CASES[name](n, workdir, uri)
    print(json.dumps({"case": name, **result, "system": "steward", "version": steward_version()}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Processes: pinning, case subprocesses, servers
# --------------------------------------------------------------------------------------------


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(f"server exited with code {proc.returncode}:\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not healthy at {url} after {timeout:.0f} s (log: {log_path})")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers (its own process group, made at start)."""
    stop_group(proc)


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], cwd: Path, health_url: str) -> Iterator[None]:
    """Run a server for the duration of the block; its output goes to ``cwd/server.log``."""
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = cwd / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(proc, health_url, log_path, SERVER_START_TIMEOUT)
        yield
    finally:
        _stop(proc)


# --------------------------------------------------------------------------------------------
# Running both systems
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    """What to run, parsed from the command line."""

    quick: bool
    pin: bool
    cases: list[Case]
    systems: list[str]
    mlflow_workers: int
    workdir: Path
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


def _describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR: " + result["error"].splitlines()[0] if result["error"] else "ERROR"
    if result.get("unit") == "calls/s":
        return f"{result['seconds'] * 1000:.1f} ms median, {result.get('rows')} rows"
    return f"{result['rate']:,.1f} {result['unit']} ({result['points']:,} in {result['seconds']:.2f} s)"


def _needed_names(cases: list[Case]) -> list[str]:
    names = [c.name for c in cases]
    if "search_runs" in names and "create_runs" not in names:
        names.insert(names.index("search_runs"), "create_runs")  # search needs the runs
    return names


def _search_guard(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """An error for search_runs when the runs it searches were not made."""
    created = results.get("create_runs")
    if created is not None and "error" in created:
        return {"error": "skipped: create_runs failed, so there is nothing to search"}
    return None


def _check_search(result: dict[str, Any]) -> dict[str, Any]:
    """Turn a search that matched nothing into an error: the filter or the runs are broken."""
    if "error" not in result and not result.get("rows"):
        return {"error": f"search_runs matched 0 rows (expected about a quarter of the runs): {result}"}
    return result


def run_mlflow(opts: Options) -> dict[str, dict[str, Any]]:
    """Run the selected cases with MLflow: embedded ones first, then the HTTP ones on a server."""
    results: dict[str, dict[str, Any]] = {}
    base = opts.workdir / "mlflow"
    env = mlflow_env()
    names = _needed_names(opts.cases)

    def one(case: Case, workdir: Path, uri: str | None = None) -> None:
        cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--case", case.name, "--workdir", str(workdir)]
        if case.name == "search_runs":
            cmd += ["--repeats", str(MLFLOW_SEARCH_REPEATS), "--max-results", str(SEARCH_MAX_RESULTS)]
        else:
            cmd += ["--n", str(case.n("mlflow", opts.quick))]
        if uri:
            cmd += ["--tracking-uri", uri]
        opts.log(f"mlflow  {case.name:<16} ...")
        if case.name == "search_runs" and (skipped := _search_guard(results)):
            result = skipped
        else:
            result = run_json(pinned(CLIENT_CORE, cmd, opts.pin), env, workdir)
        if case.name == "search_runs":
            result = _check_search(result)
        results[case.name] = result
        opts.log(f"mlflow  {case.name:<16} {_describe(result)}")

    for name in names:
        case = CASES_BY_NAME[name]
        if not case.http:
            one(case, base / ("runs" if name in ("create_runs", "search_runs") else name))

    http_cases = [CASES_BY_NAME[n] for n in names if CASES_BY_NAME[n].http]
    if http_cases:
        port = free_port()
        srv_dir = base / "server"
        cmd = [
            str(PEER_MLFLOW),
            "server",
            "--backend-store-uri",
            f"sqlite:///{srv_dir / 'mlflow.db'}",
            "--default-artifact-root",
            str(srv_dir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(opts.mlflow_workers),
        ]
        srv_env = {**env, **MLFLOW_SERVER_ENV}
        opts.log(f"mlflow  starting server on 127.0.0.1:{port} ({opts.mlflow_workers} worker(s))")
        try:
            with server(
                pinned(SERVER_CORE, cmd, opts.pin), srv_env, srv_dir, f"http://127.0.0.1:{port}/health"
            ):
                for case in http_cases:
                    one(case, base / case.name, f"http://127.0.0.1:{port}")
        except RuntimeError as exc:
            for case in http_cases:
                results.setdefault(case.name, {"error": f"mlflow server: {exc}"})
            opts.log(f"mlflow  server failed: {exc}")
    return results


def run_steward(opts: Options) -> dict[str, dict[str, Any]]:
    """Run the selected cases with Steward, the same way as MLflow's."""
    results: dict[str, dict[str, Any]] = {}
    base = opts.workdir / "steward"
    names = _needed_names(opts.cases)

    def one(case: Case, workdir: Path, uri: str | None = None) -> None:
        n = STEWARD_SEARCH_REPEATS if case.name == "search_runs" else case.n("steward", opts.quick)
        cmd = [str(STEWARD_PYTHON), str(Path(__file__).resolve()), "--steward-case", case.name]
        cmd += ["--workdir", str(workdir), "--n", str(n)]
        if uri:
            cmd += ["--uri", uri]
        opts.log(f"steward {case.name:<16} ...")
        if case.name == "search_runs" and (skipped := _search_guard(results)):
            result = skipped
        else:
            result = run_json(pinned(CLIENT_CORE, cmd, opts.pin), steward_env(workdir), workdir)
        if case.name == "search_runs":
            result = _check_search(result)
        results[case.name] = result
        opts.log(f"steward {case.name:<16} {_describe(result)}")

    for name in names:
        case = CASES_BY_NAME[name]
        if not case.http:
            one(case, base / ("runs" if name in ("create_runs", "search_runs") else name))

    http_cases = [CASES_BY_NAME[n] for n in names if CASES_BY_NAME[n].http]
    if http_cases:
        port = free_port()
        srv_dir = base / "server"
        cmd = [str(STEWARD_CLI), "server", "--host", "127.0.0.1", "--port", str(port)]
        opts.log(f"steward starting server on 127.0.0.1:{port}")
        try:
            with server(
                pinned(SERVER_CORE, cmd, opts.pin),
                steward_env(srv_dir),
                srv_dir,
                f"http://127.0.0.1:{port}/api/v1/health",
            ):
                for case in http_cases:
                    # The client's own home stays apart from the server's store.
                    one(case, base / case.name, f"http://127.0.0.1:{port}")
        except (RuntimeError, OSError) as exc:
            for case in http_cases:
                results.setdefault(case.name, {"error": f"steward server: {exc}"})
            opts.log(f"steward server failed: {exc}")
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


def fmt_cell(case: Case, result: dict[str, Any] | None) -> str:
    """One system's figure for ``case`` as shown in the table."""
    if result is None:
        return "n/a"
    if "error" in result:
        return "error"
    if case.kind == "rate":
        return f"{_fmt_rate(result['rate'])} points/s"
    if case.kind == "runs":
        return f"{result['seconds']:,.2f} s ({_fmt_rate(result['rate'])} runs/s)"
    return f"{result['seconds'] * 1000:,.1f} ms"


def speedup(case: Case, steward: dict[str, Any] | None, mlflow: dict[str, Any] | None) -> float | None:
    """How many times faster Steward is than MLflow on ``case`` (None if either is missing)."""
    if not steward or not mlflow or "error" in steward or "error" in mlflow:
        return None
    if case.kind == "latency":
        return float(mlflow["seconds"]) / float(steward["seconds"])
    return float(steward["rate"]) / float(mlflow["rate"])


def goal_met(case: Case, steward: dict[str, Any] | None) -> bool | None:
    """Whether Steward's figure meets the case's goal (None without a figure)."""
    if not steward or "error" in steward:
        return None
    if case.kind == "latency":
        return float(steward["seconds"]) < case.goal
    return float(steward["rate"]) >= case.goal


def table_rows(
    cases: list[Case], steward: dict[str, dict[str, Any]], mlflow: dict[str, dict[str, Any]] | None
) -> list[list[str]]:
    """The rows of the result table: case | Steward | MLflow | ratio | Steward goal | met?"""
    rows = []
    for case in cases:
        s = steward.get(case.name)
        m = mlflow.get(case.name) if mlflow is not None else None
        met = goal_met(case, s)
        rows.append(
            [
                case.label,
                fmt_cell(case, s),
                fmt_cell(case, m),
                fmt_ratio(speedup(case, s, m)),
                case.goal_text,
                "n/a" if met is None else ("yes" if met else "no"),
            ]
        )
    return rows


def sizes_note(cases: list[Case], quick: bool) -> list[str]:
    """One line per case on how much work each system did."""
    lines = []
    for c in cases:
        if c.name == "search_runs":
            lines.append(
                f"- {c.name}: over the {c.n('steward', quick):,} runs of create_runs, "
                f"`{SEARCH_FILTER}`, max_results={SEARCH_MAX_RESULTS}; median of "
                f"{STEWARD_SEARCH_REPEATS} calls (Steward) and {MLFLOW_SEARCH_REPEATS} (MLflow) "
                "after a warm-up"
            )
        elif c.name == "create_runs":
            lines.append(f"- {c.name}: {c.n('steward', quick):,} runs each")
        else:
            how = (
                f"Steward `log_metric_batch` {STEWARD_BATCH:,} per call, MLflow `log_batch` {MLFLOW_BATCH:,}"
                if "batch" in c.name
                else "Steward `steward.log_metric`, MLflow `mlflow.log_metric`"
            )
            lines.append(
                f"- {c.name}: Steward {c.n('steward', quick):,} points, "
                f"MLflow {c.n('mlflow', quick):,} points ({how})"
            )
    return lines


def render_docs(
    rows: list[list[str]], info: dict[str, str], command: str, cases: list[Case], pin: bool, workers: int
) -> str:
    """The tracking section of ``docs/benchmarks.md``, between its markers."""
    lines = [
        DOCS_BEGIN,
        "## Tracking: Steward vs MLflow",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{info['commit']}` with:",
        "",
        "```",
        command,
        "```",
        "",
        *markdown_table(rows),
        "",
        "ratio: how many times faster Steward is than MLflow (rates for logging and run creation, "
        "median latency for search).",
        "",
        "Sizes (rates do not depend on N; MLflow gets fewer points where a Steward-sized N would "
        "take hours):",
        "",
        *sizes_note(cases, quick=False),
        "",
        machine_line(info),
        "",
        (
            "Pinning: every case runs in a fresh client process pinned to core 0 (`taskset -c 0`); the "
            f"HTTP servers run pinned to core 1 (`mlflow server --workers {workers}`, `steward server`), "
            "so client and server never share a core. "
            if pin
            else "Pinning: taskset or a second core was missing, so nothing was pinned. "
        )
        + (
            "One MLflow worker is its fastest setting here: with its default of 4 workers, single "
            "calls over HTTP ran about 6x slower on this machine. "
            if workers == 1
            else ""
        )
        + "Both systems use SQLite stores in fresh directories; MLflow runs with telemetry, system "
        "metrics, async logging and the server's job runner off. Logging timings include the end of "
        "the run (Steward's final flush).",
        DOCS_END,
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The harness's command line (plus the hidden ``--steward-case`` subprocess mode)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shrink every N for a smoke run")
    p.add_argument(
        "--write-docs", action="store_true", help="update the tracking section of docs/benchmarks.md"
    )
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)
    p.add_argument("--cases", help="comma-separated subset of: " + ", ".join(CASES_BY_NAME))
    p.add_argument("--only", choices=["steward", "mlflow"], help="run one system only")
    p.add_argument("--mlflow-workers", type=int, default=1, help="mlflow server --workers (default 1)")
    p.add_argument("--json", type=Path, help="also write the raw results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (stores, server logs)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    # Subprocess mode: run one Steward case and print its JSON line.
    p.add_argument("--steward-case", choices=sorted(STEWARD_CASES), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--uri", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and optionally update the docs."""
    args = parse_args(argv)
    if args.steward_case:
        if args.workdir is None or args.n is None:
            raise SystemExit("--steward-case needs --workdir and --n")
        return steward_case_main(args.steward_case, args.workdir.resolve(), args.n, args.uri)

    if args.write_docs and (args.quick or args.cases or args.only):
        raise SystemExit("--write-docs needs a full run: drop --quick, --cases and --only")
    cases = CASES
    if args.cases:
        unknown = set(args.cases.split(",")) - set(CASES_BY_NAME)
        if unknown:
            raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if c.name in args.cases.split(",")]

    pin = can_pin() and not args.no_pin
    if not pin and not args.no_pin:
        print("warning: taskset or cores 0 and 1 unavailable, running unpinned", file=sys.stderr)

    version = mlflow_version()
    systems = ["steward", "mlflow"] if args.only is None else [args.only]
    if "mlflow" in systems and version is None:
        print(
            f"MLflow venv missing at {PEER_VENV}: run `bash benchmarks/setup_peers.sh` to compare "
            "with MLflow. Continuing with Steward only.",
            file=sys.stderr,
        )
        systems.remove("mlflow")

    tmp = Path(tempfile.mkdtemp(prefix="steward-bench-tracking-"))
    opts = Options(args.quick, pin, cases, systems, args.mlflow_workers, tmp)
    opts.log(f"work directory: {tmp}")
    mlflow_results: dict[str, dict[str, Any]] | None = None
    steward_results: dict[str, dict[str, Any]] = {}
    try:
        if "mlflow" in systems:
            mlflow_results = run_mlflow(opts)
        if "steward" in systems:
            steward_results = run_steward(opts)
    finally:
        if args.keep:
            opts.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = table_rows(cases, steward_results, mlflow_results)
    title = f"Tracking: Steward vs MLflow {version or '(not installed)'}"
    if args.quick:
        title += " (QUICK run, not for the record)"
    print_table(rows, title)
    print("ratio = how many times faster Steward is. Sizes:")
    print("\n".join(sizes_note(cases, args.quick)))
    for system, res in (("steward", steward_results), ("mlflow", mlflow_results or {})):
        for name, r in res.items():
            if "error" in r:
                print(f"\n{system} {name} failed:\n{r['error']}", file=sys.stderr)

    info = machine_info(version)
    if args.json:
        payload = {"machine": info, "quick": args.quick, "steward": steward_results, "mlflow": mlflow_results}
        args.json.write_text(json.dumps(payload, indent=2))
    if args.write_docs:
        command = shlex.join([".venv/bin/python", "benchmarks/tracking.py", *(argv or sys.argv[1:])])
        section = render_docs(rows, info, command, cases, pin, args.mlflow_workers)
        write_docs(section, args.docs_path, DOCS_BEGIN, DOCS_END)
        print(f"wrote the tracking section of {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
