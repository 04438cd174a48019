"""Serving benchmark: single-row predictions from Steward, MLflow and BentoML under ``wrk``.

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/serving.py                  # full run, ~9 minutes
    .venv/bin/python benchmarks/serving.py --quick          # smoke run, 2 s per point
    .venv/bin/python benchmarks/serving.py --systems mlflow --models lr
    .venv/bin/python benchmarks/serving.py --write-docs     # full run, then update docs/benchmarks.md

The same two scikit-learn models (``benchmarks/peer_serving.py``: a breast-cancer logistic regression
behind a StandardScaler, and a 200-tree gradient-boosting classifier, both answering
``predict_proba``) are served by

- Steward: ``steward serve`` on the registry in a fresh ``STEWARD_HOME``; each model twice, as
  registered (scikit-learn) and with an ONNX format attached (``export_onnx``: Steward then serves it
  with ONNX Runtime), each through the Open Inference Protocol route ``/v2/models/{name}/infer`` and
  the plain JSON route ``/predict/{name}``;
- MLflow: ``mlflow models serve --env-manager local`` (its venv from ``benchmarks/setup_peers.sh``);
- BentoML, if its venv exists (``bash benchmarks/setup_peers.sh bentoml``): ``bentoml serve``.

Each server runs alone, pinned to core 0 (``taskset -c 0``, one worker); ``wrk`` runs pinned to core 1,
one thread, at 1, 8 and 64 keep-alive connections, each point after a warm-up at the same concurrency.
Before any load, one request checks that the server answers the model's own probabilities. Then a
few runs of the ONNX models with Steward's prediction log off (what the log costs), and a few with
two workers and nothing pinned (server and wrk share both cores), each labelled as such.
The in-process floor (the model's own ``predict_proba``/``predict`` on one row, ONNX Runtime on one
row, and Steward's ``load_model(...).predict``) is measured pinned to core 0 too.

Every server is started in its own process group and stopped (SIGTERM, then SIGKILL) when its
points are done, when a point fails, on Ctrl-C and on SIGTERM. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    DOCS_PATH,
    PEER_MLFLOW,
    PEER_PYTHON,
    PEER_VENV,
    STEWARD_CLI,
    STEWARD_PYTHON,
    can_pin,
    cpu_busy,
    fmt_ratio,
    free_port,
    machine_info,
    machine_line,
    markdown_table,
    mlflow_env,
    mlflow_version,
    print_table,
    run_json,
    steward_env,
    steward_version,
    stop_group,
    wait_quiet,
    write_docs,
)
from peer_serving import MODEL_NAMES, QUIET_ENV, sample, train_models

PEER_SCRIPT = BENCH_DIR / "peer_serving.py"
BENTOML_VENV = BENCH_DIR / ".peers" / "bentoml"
BENTOML_PYTHON = BENTOML_VENV / "bin" / "python"
BENTOML_CLI = BENTOML_VENV / "bin" / "bentoml"
DOCS_BEGIN = "<!-- BEGIN serving benchmark (written by benchmarks/serving.py --write-docs) -->"
DOCS_END = "<!-- END serving benchmark -->"
DEFAULT_JSON = Path(tempfile.gettempdir()) / "serving_bench.json"

SERVER_CORE = "0"  # the server (and the in-process floor)
WRK_CORE = "1"  # the load generator
CONNECTIONS = (1, 8, 64)
WORKERS2_CONNECTIONS = (8, 64)
SERVER_START_TIMEOUT = 180.0
WRK_TIMEOUT_S = 10  # wrk counts a request slower than this as a timeout error
ONNX_ATOL = 1e-4  # ONNX Runtime may compute in float32
QUIET_LIMIT = 0.15  # "quiet": other work uses at most this share of the CPUs

# Goals from issue 7 (64 connections, and one connection), per model.
GOAL_RPS = 5_000.0
GOAL_P99_MS = 10.0
GOAL_RATIO = 30.0
GOAL_P50_1_MS = 0.5


# --------------------------------------------------------------------------------------------
# What is served and measured
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One URL of a server and the request body it takes for the benchmark row."""

    name: str  # "/v2 infer", "/predict", "/invocations" …
    path: str
    body: bytes


@dataclass
class Server:
    """How to start one server, and the routes it is loaded on."""

    system: str  # steward | mlflow | bentoml
    model: str  # lr | gb
    fmt: str  # the model format served: sklearn | onnx
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    health_path: str
    routes: list[Route]
    expected: list[float]
    workers: int = 1
    pinned: bool = True
    connections: tuple[int, ...] = CONNECTIONS
    atol: float = 1e-6
    extra: str = ""  # extra server arguments, shown in the setup column
    for_goals: bool = True  # False: context only, not held to the goals

    @property
    def setup(self) -> str:
        """The column that says how the server ran."""
        base = "1 worker, pinned" if self.pinned else f"{self.workers} workers, unpinned"
        return f"{base}, {self.extra}" if self.extra else base


@dataclass
class Point:
    """One wrk measurement."""

    system: str
    model: str
    fmt: str
    route: str
    setup: str
    connections: int
    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    requests: int = 0
    errors: int = 0  # socket errors (connect, read, write, timeout)
    non2xx: int = 0
    server_cpu: float | None = None  # cores the server's processes used during the point
    server_wait: float | None = None  # cores' worth of time its threads waited runnable for a CPU
    busy_before: float | None = None  # share of the CPUs other work used just before the point
    for_goals: bool = True
    error: str | None = None
    wrk: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Processes: every server this script starts is tracked, and stopped on the way out
# --------------------------------------------------------------------------------------------

_LIVE: list[subprocess.Popen[bytes]] = []


def _parents() -> dict[int, int]:
    """Every process's parent pid (from ``/proc``; empty where it is missing)."""
    out: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for proc_dir in Path("/proc").iterdir():
            if proc_dir.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (proc_dir / "stat").read_text()
                    out[int(proc_dir.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: ppid
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, however far down (BentoML's workers start their own
    sessions, so the server's process group does not hold them)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and every worker it started: its process group and every descendant."""
    tree = descendants(proc.pid)
    stop_group(proc, timeout=15)
    # Descendants in sessions of their own: their parent stopped them, or they go now.
    stray = [pid for pid in tree[1:] if Path(f"/proc/{pid}").exists()]
    if stray:
        _kill(stray, signal.SIGTERM)
        time.sleep(2)
        _kill([pid for pid in stray if Path(f"/proc/{pid}").exists()], signal.SIGKILL)
    if proc in _LIVE:
        _LIVE.remove(proc)


def _stop_all() -> None:
    for proc in list(_LIVE):
        _stop(proc)


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return int(resp.status)


def _post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def running(srv: Server, pin: bool) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``srv`` (pinned to the server core when asked), wait until healthy, stop it afterwards."""
    srv.cwd.mkdir(parents=True, exist_ok=True)
    log_path = srv.cwd / f"{srv.system}-{srv.model}-{srv.fmt}-{srv.workers}w.log"
    cmd = ["taskset", "-c", SERVER_CORE, *srv.cmd] if pin and srv.pinned else srv.cmd
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=srv.env, cwd=srv.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _LIVE.append(proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        url = f"http://127.0.0.1:{srv.port}{srv.health_path}"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}:\n{_log_tail(log_path)}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if _get(url) == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy at {url} after {SERVER_START_TIMEOUT:.0f} s: {log_path}")
            time.sleep(0.25)
        yield proc
    finally:
        _stop(proc)


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------

# Sends one fixed POST body; at the end prints the summary as one JSON line (times in microseconds).
WRK_LUA = """local f = assert(io.open({body_path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{{"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "mean_us": %.1f, "non2xx": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"timeout": %d}}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_script(route: Route, directory: Path, tag: str) -> Path:
    """Write the body and the Lua script for ``route``; return the script's path."""
    directory.mkdir(parents=True, exist_ok=True)
    body_path = directory / f"{tag}.json"
    body_path.write_bytes(route.body)
    script = directory / f"{tag}.lua"
    # A JSON string literal is a valid Lua string literal for a plain path.
    script.write_text(WRK_LUA.format(body_path=json.dumps(str(body_path))))
    return script


def run_wrk(url: str, script: Path, connections: int, seconds: float, pin: bool) -> dict[str, Any]:
    """One wrk run (one thread, ``connections`` keep-alive connections); its summary, or an error."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    cmd += [f"--timeout={WRK_TIMEOUT_S}s", "-s", str(script), url]
    if pin:
        cmd = ["taskset", "-c", WRK_CORE, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"wrk exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    if out["requests"] == 0 or out["duration_us"] < 0.8 * max(1, round(seconds)) * 1e6:
        return {"error": f"wrk stopped early: {out['requests']} requests in {out['duration_us'] / 1e6:.1f} s"}
    return out


def tree_schedstat(pid: int) -> tuple[int, int] | None:
    """Nanoseconds the threads of ``pid`` and its descendants ran, and waited runnable for a CPU.

    From ``/proc/PID/task/TID/schedstat`` (Linux); None where ``/proc`` lacks it.
    """
    ran = waited = 0
    found = False
    for member in descendants(pid):
        try:
            for task in Path(f"/proc/{member}/task").iterdir():
                fields = (task / "schedstat").read_text().split()
                ran, waited, found = ran + int(fields[0]), waited + int(fields[1]), True
        except (OSError, ValueError, IndexError):
            continue
    return (ran, waited) if found else None


def others_busy(pid: int, seconds: float) -> float | None:
    """The share of all CPUs that work other than the server ``pid`` (and its descendants) uses over the
    next ``seconds`` (the server may still be writing out what the last point left it)."""
    before = tree_schedstat(pid)
    t0 = time.monotonic()
    busy = cpu_busy(seconds)
    after, wall = tree_schedstat(pid), time.monotonic() - t0
    if busy is None or not before or not after:
        return busy
    own = (after[0] - before[0]) / 1e9 / wall / (os.cpu_count() or 1)
    return max(0.0, busy - own)


def measure(srv: Server, route: Route, connections: int, opts: Options, pid: int) -> Point:
    """Warm up, then measure ``route`` of the running ``srv`` (process ``pid``) at ``connections``."""
    point = Point(srv.system, srv.model, srv.fmt, route.name, srv.setup, connections)
    pin = opts.pin and srv.pinned
    tag = f"{srv.system}-{srv.model}-{srv.fmt}-{route.name.strip('/').replace(' ', '_').replace('/', '_')}"
    script = wrk_script(route, opts.workdir / "wrk", tag)
    url = f"http://127.0.0.1:{srv.port}{route.path}"
    point.busy_before = others_busy(pid, 0.5)
    if opts.warmup > 0:
        warm = run_wrk(url, script, connections, opts.warmup, pin)
        if "error" in warm:
            point.error = warm["error"]
            return point
    before, t0 = tree_schedstat(pid), time.monotonic()
    res = run_wrk(url, script, connections, opts.duration, pin)
    after, wall = tree_schedstat(pid), time.monotonic() - t0
    if before and after:
        # In cores: how much CPU the server got, and how long its threads were ready to run but another
        # process (or one of its own threads) had the core — the share a busy machine takes away.
        point.server_cpu = (after[0] - before[0]) / 1e9 / wall
        point.server_wait = (after[1] - before[1]) / 1e9 / wall
    point.wrk = res
    if "error" in res:
        point.error = res["error"]
        return point
    point.requests = int(res["requests"])
    point.rps = res["requests"] / (res["duration_us"] / 1e6)
    point.p50_ms, point.p90_ms = res["p50_us"] / 1000, res["p90_us"] / 1000
    point.p99_ms, point.max_ms = res["p99_us"] / 1000, res["max_us"] / 1000
    point.non2xx = int(res["non2xx"])
    point.errors = sum(int(res[k]) for k in ("connect", "read", "write", "timeout"))
    return point


# --------------------------------------------------------------------------------------------
# Checking an answer
# --------------------------------------------------------------------------------------------


def _numbers(value: Any) -> list[float]:
    """Every number in a JSON value, depth first, in order (booleans left out)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    return []


def answer_matches(payload: Any, expected: list[float], atol: float) -> bool:
    """Whether the response holds the expected probabilities (for OIP: in one output's ``data``)."""

    def holds(nums: list[float]) -> bool:
        k = len(expected)
        return any(
            all(abs(nums[i + j] - expected[j]) <= atol for j in range(k)) for i in range(len(nums) - k + 1)
        )

    if isinstance(payload, dict) and isinstance(payload.get("outputs"), list):
        return any(holds(_numbers(out.get("data"))) for out in payload["outputs"] if isinstance(out, dict))
    return holds(_numbers(payload))


def check_answer(srv: Server, route: Route) -> str | None:
    """None if one request to ``route`` answers 200 with the model's probabilities, else the problem."""
    status, body = _post(f"http://127.0.0.1:{srv.port}{route.path}", route.body)
    text = body[:300].decode(errors="replace")
    if status != 200:
        return f"{route.path} answered {status}: {text}"
    try:
        payload = json.loads(body)
    except ValueError:
        return f"{route.path} answered non-JSON: {text}"
    if not answer_matches(payload, srv.expected, srv.atol):
        return f"{route.path} answered {text}, expected probabilities {srv.expected}"
    return None


# --------------------------------------------------------------------------------------------
# Steward's side: register the models and measure the in-process floor (``--steward-prepare``)
# --------------------------------------------------------------------------------------------


def steward_name(model: str, fmt: str) -> str:
    """The registered model name of ``model`` in ``fmt`` (the ONNX twin gets its own name)."""
    return model if fmt == "sklearn" else f"{model}_onnx"


def _per_call(fn: Callable[[], object], batch_s: float = 0.2, repeats: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` batches of about ``batch_s`` each."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        spent = time.perf_counter() - t0
        if spent >= 0.02:
            break
        n *= 4
    n = max(1, int(n * batch_s / spent))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def steward_prepare(workdir: Path, models: list[str]) -> dict[str, Any]:
    """Register each model twice (as is, and with ONNX), alias ``production``; measure the floors."""
    import warnings

    import numpy as np

    import steward

    steward.configure(home=str(workdir / "steward_home"))
    x, fitted = train_models()
    cols, row = sample(x)
    frame = x.iloc[[0]]
    array = np.asarray([row], dtype=np.float64)
    out: dict[str, Any] = {"models": {}, "floors": {}}
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    for name in models:
        model = fitted[name]
        signature = steward.infer_signature(x, model.predict_proba(x))
        expected = [float(p) for p in model.predict_proba(frame)[0]]
        floors: dict[str, float] = {
            "sklearn predict_proba, 1-row DataFrame": _per_call(partial(model.predict_proba, frame)),
            "sklearn predict_proba, 1-row ndarray": _per_call(partial(model.predict_proba, array)),
            "sklearn predict, 1-row ndarray": _per_call(partial(model.predict, array)),
        }
        for fmt in ("sklearn", "onnx"):
            reg = steward_name(name, fmt)
            t0 = time.perf_counter()
            mv = steward.register_model(reg, model, signature=signature, predict_fn="predict_proba")
            if fmt == "onnx":
                steward.export_onnx(f"models:/{reg}/{mv.version}", x.iloc[:64])
            steward.set_alias(reg, "production", mv.version)
            registered_s = time.perf_counter() - t0
            loaded = steward.load_model(
                f"models:/{reg}@production", format="onnx" if fmt == "onnx" else "model"
            )
            floors[f"Steward load_model({fmt}).predict, 1-row DataFrame"] = _per_call(
                partial(loaded.predict, frame)
            )
            if fmt == "onnx":
                sess: Any = loaded.native  # an onnxruntime InferenceSession
                inp = sess.get_inputs()[0]
                dtype = np.float32 if inp.type == "tensor(float)" else np.float64
                feed = {inp.name: array.astype(dtype)}
                floors["ONNX Runtime session.run, 1 row"] = _per_call(partial(sess.run, None, feed))
            out["models"][f"{name}/{fmt}"] = {
                "registered": reg,
                "version": mv.version,
                "expected": expected,
                "register_s": registered_s,
            }
        out["floors"][name] = {k: v * 1e6 for k, v in floors.items()}  # microseconds
    out["columns"], out["row"] = cols, row
    out["steward"] = steward_version()
    return out


def steward_prepare_main(workdir: Path, models: list[str]) -> int:
    """Entry point of the ``--steward-prepare`` subprocess: print its JSON line."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    print(json.dumps(steward_prepare(workdir, models)), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The servers
# --------------------------------------------------------------------------------------------


def steward_routes(name: str, cols: list[str], row: list[float]) -> list[Route]:
    """Steward's two routes for the registered model ``name``, with the benchmark row."""
    oip = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
    plain = {"records": [dict(zip(cols, row, strict=True))]}
    return [
        Route("/v2 infer", f"/v2/models/{name}/infer", json.dumps(oip).encode()),
        Route("/predict", f"/predict/{name}", json.dumps(plain).encode()),
    ]


# `steward serve` through its Typer function, for a checkout whose CLI app does not list the command yet.
SERVE_LAUNCHER = (
    "import sys, typer; from steward.cli.serve import serve; sys.argv[0] = 'steward serve'; typer.run(serve)"
)


STEWARD_SERVE: list[str] = [str(STEWARD_CLI), "serve"]


def steward_serve_cmd() -> list[str]:
    """The command that runs ``steward serve`` (the CLI's, or the launcher when the CLI lacks it)."""
    cli = [str(STEWARD_CLI), "serve"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if subprocess.run([*cli, "--help"], capture_output=True, timeout=60).returncode == 0:
            return cli
    return [str(STEWARD_PYTHON), "-c", SERVE_LAUNCHER]


def steward_server(name: str, home: Path, workdir: Path, workers: int, expected: list[float]) -> Server:
    """``steward serve name@production`` on a free port of 127.0.0.1."""
    port = free_port()
    cmd = [*STEWARD_SERVE, f"{name}@production", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    return Server(
        "steward", "", "", cmd, steward_env(home), workdir, port, "/v2/health/ready", [], expected, workers
    )


def mlflow_server(path: str, workdir: Path, workers: int, body: bytes, expected: list[float]) -> Server:
    """``mlflow models serve -m path --env-manager local`` on a free port of 127.0.0.1."""
    port = free_port()
    cmd = [str(PEER_MLFLOW), "models", "serve", "-m", path, "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    env = mlflow_env()
    env["PATH"] = f"{PEER_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # it execs `uvicorn`
    routes = [Route("/invocations", "/invocations", body)]
    return Server("mlflow", "", "sklearn", cmd, env, workdir, port, "/ping", routes, expected, workers)


def bentoml_server(info: dict[str, Any], workdir: Path, body: bytes) -> Server:
    """``bentoml serve`` of the benchmark's service file on a free port of 127.0.0.1 (one worker)."""
    port = free_port()
    cmd = [str(BENTOML_CLI), "serve", info["service"], "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(QUIET_ENV)
    env["BENTOML_HOME"] = info["bentoml_home"]
    env["PATH"] = f"{BENTOML_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    routes = [Route("/predict", "/predict", body)]
    srv = Server("bentoml", "", "sklearn", cmd, env, Path(info["service_dir"]), port, "/readyz", routes, [])
    srv.expected = info["expected"]
    return srv


def bentoml_version() -> str | None:
    """The BentoML version in its peer venv, or None if the venv is missing or broken."""
    if not BENTOML_PYTHON.exists() or not BENTOML_CLI.exists():
        return None
    out = subprocess.run(
        [str(BENTOML_PYTHON), "-c", "import importlib.metadata as m; print(m.version('bentoml'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() if out.returncode == 0 else None


# --------------------------------------------------------------------------------------------
# Running it all
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    """What to run, parsed from the command line."""

    systems: list[str]
    models: list[str]
    formats: list[str]
    connections: tuple[int, ...]
    duration: float
    warmup: float
    pin: bool
    workers2: bool
    workdir: Path
    log_off: bool = True
    steward_args: list[str] = field(default_factory=list)
    quiet_wait: float = 10.0
    busy: list[float] = field(default_factory=list)  # CPU share other work used before each server
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


def _fmt_point(p: Point) -> str:
    if p.error:
        return f"ERROR {p.error.splitlines()[0][:160]}"
    sched = f"  server CPU {p.server_cpu:.2f}, waited {p.server_wait:.2f}" if p.server_cpu is not None else ""
    return (
        f"{p.rps:,.0f} req/s  p50 {p.p50_ms:.2f} ms  p99 {p.p99_ms:.2f} ms  "
        f"errors {p.errors}  non-2xx {p.non2xx}{sched}"
    )


def run_server(srv: Server, opts: Options) -> list[Point]:
    """Start ``srv``, check each route's answer, measure each route at each concurrency, stop it."""
    points: list[Point] = []
    label = f"{srv.system} {srv.model} {srv.fmt} ({srv.setup})"
    busy = wait_quiet(opts.quiet_wait, QUIET_LIMIT, 0.5) if opts.quiet_wait > 0 else cpu_busy(0.5)
    if busy is not None:
        opts.busy.append(busy)
    opts.log(
        f"{label}: starting (other work on the machine: {busy:.0%} of the CPUs)"
        if busy is not None
        else label
    )
    try:
        with running(srv, opts.pin) as proc:
            for route in srv.routes:
                problem = check_answer(srv, route)
                if problem:
                    opts.log(f"  {route.name}: wrong answer, not measured: {problem}")
                    for c in srv.connections:
                        points.append(
                            Point(srv.system, srv.model, srv.fmt, route.name, srv.setup, c, error=problem)
                        )
                    continue
                for c in srv.connections:
                    point = measure(srv, route, c, opts, proc.pid)
                    opts.log(f"  {route.name:<12} {c:>3} conn: {_fmt_point(point)}")
                    points.append(point)
    except RuntimeError as exc:
        opts.log(f"  server failed: {exc}")
        done = {(p.route, p.connections) for p in points}
        for route in srv.routes:
            for c in srv.connections:
                if (route.name, c) not in done:
                    points.append(
                        Point(
                            srv.system, srv.model, srv.fmt, route.name, srv.setup, c, error=f"server: {exc}"
                        )
                    )
    for point in points:
        point.for_goals = srv.for_goals
    return points


def run_all(opts: Options) -> dict[str, Any]:
    """Prepare every system's models, then run every server in turn; return the raw results."""
    results: dict[str, Any] = {"points": [], "skipped": {}, "versions": {}}
    points: list[Point] = []
    env_home = opts.workdir / "steward"
    prep: dict[str, Any] | None = None

    if "steward" in opts.systems:
        STEWARD_SERVE[:] = steward_serve_cmd()
        if STEWARD_SERVE[0] != str(STEWARD_CLI):
            opts.log("steward: the CLI has no `serve` command yet; running steward.cli.serve.serve directly")
        opts.log("steward: registering the models and measuring the in-process floor ...")
        cmd = [str(STEWARD_PYTHON), str(Path(__file__).resolve()), "--steward-prepare"]
        cmd += ["--workdir", str(env_home), "--models", ",".join(opts.models)]
        if opts.pin:
            cmd = ["taskset", "-c", SERVER_CORE, *cmd]
        prep = run_json(cmd, steward_env(env_home / "steward_home"), env_home, timeout=900)
        if "error" in prep:
            opts.log(f"steward: prepare failed: {prep['error']}")
            results["skipped"]["steward"] = f"prepare failed: {prep['error']}"
            prep = None
        else:
            results["floors"] = prep["floors"]
            results["versions"]["steward"] = prep["steward"]
            results["register"] = {k: v["register_s"] for k, v in prep["models"].items()}
            for name, floors in prep["floors"].items():
                for k, v in floors.items():
                    opts.log(f"  floor {name}: {k}: {v:.1f} µs")

    mlf_prep: dict[str, Any] | None = None
    if "mlflow" in opts.systems:
        version = mlflow_version()
        if version is None:
            results["skipped"]["mlflow"] = (
                f"no MLflow venv at {PEER_VENV}: run bash benchmarks/setup_peers.sh mlflow"
            )
        else:
            opts.log(f"mlflow {version}: saving the models ...")
            cmd = [
                str(PEER_PYTHON),
                str(PEER_SCRIPT),
                "--system",
                "mlflow",
                "--workdir",
                str(opts.workdir / "mlflow"),
            ]
            mlf_prep = run_json(cmd, mlflow_env(), opts.workdir / "mlflow", timeout=600)
            if "error" in mlf_prep:
                results["skipped"]["mlflow"] = f"saving the models failed: {mlf_prep['error']}"
                mlf_prep = None
            else:
                results["versions"]["mlflow"] = version

    bento_prep: dict[str, Any] | None = None
    if "bentoml" in opts.systems:
        version = bentoml_version()
        if version is None:
            reason = f"no BentoML venv at {BENTOML_VENV}: run bash benchmarks/setup_peers.sh bentoml"
            results["skipped"]["bentoml"] = reason
            opts.log(f"bentoml: skipped ({reason})")
        else:
            opts.log(f"bentoml {version}: saving the models ...")
            cmd = [str(BENTOML_PYTHON), str(PEER_SCRIPT), "--system", "bentoml"]
            cmd += ["--workdir", str(opts.workdir / "bentoml")]
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            bento_prep = run_json(cmd, env, opts.workdir / "bentoml", timeout=600)
            if "error" in bento_prep:
                results["skipped"]["bentoml"] = f"saving the models failed: {bento_prep['error']}"
                opts.log(f"bentoml: skipped ({results['skipped']['bentoml']})")
                bento_prep = None
            else:
                results["versions"]["bentoml"] = version

    cols, row = (prep["columns"], prep["row"]) if prep else sample(_frame())
    mlflow_body = json.dumps({"dataframe_split": {"columns": cols, "data": [row]}}).encode()
    bento_body = json.dumps({"input": [row]}).encode()

    def steward_for(model: str, fmt: str, workers: int) -> Server:
        assert prep is not None
        info = prep["models"][f"{model}/{fmt}"]
        srv = steward_server(
            info["registered"], env_home / "steward_home", env_home, workers, info["expected"]
        )
        srv.model, srv.fmt = model, fmt
        srv.routes = steward_routes(info["registered"], cols, row)
        srv.atol = ONNX_ATOL if fmt == "onnx" else 1e-6
        srv.connections = opts.connections
        if opts.steward_args:
            srv.cmd += opts.steward_args
            srv.extra = " ".join(opts.steward_args)
        return srv

    def mlflow_for(model: str, workers: int) -> Server:
        assert mlf_prep is not None
        info = mlf_prep["models"][model]
        srv = mlflow_server(info["path"], opts.workdir / "mlflow", workers, mlflow_body, info["expected"])
        srv.model, srv.connections = model, opts.connections
        return srv

    for model in opts.models:
        if prep is not None:
            for fmt in opts.formats:
                points += run_server(steward_for(model, fmt, 1), opts)
        if mlf_prep is not None:
            points += run_server(mlflow_for(model, 1), opts)
        if bento_prep is not None:
            srv = bentoml_server(bento_prep["models"][model], opts.workdir / "bentoml", bento_body)
            srv.model, srv.connections = model, opts.connections
            points += run_server(srv, opts)

    if prep is not None and opts.log_off and "onnx" in opts.formats:
        # Context: what the prediction log (on by default, every request) costs. Not held to the goals.
        for model in opts.models:
            srv = steward_for(model, "onnx", 1)
            srv.cmd += ["--log-sample-rate", "0"]
            srv.extra = ", ".join(x for x in (srv.extra, "prediction log off") if x)
            srv.routes = srv.routes[:1]
            srv.connections = tuple(sorted({min(opts.connections), max(opts.connections)}))
            srv.for_goals = False
            points += run_server(srv, opts)

    if opts.workers2:
        # Two workers, nothing pinned: the server and wrk share both cores.
        for model in opts.models:
            if prep is not None:
                fmt = "onnx" if "onnx" in opts.formats else opts.formats[0]
                srv = steward_for(model, fmt, 2)
                srv.pinned, srv.connections = False, WORKERS2_CONNECTIONS
                srv.routes = srv.routes[:1]
                points += run_server(srv, opts)
            if mlf_prep is not None:
                srv = mlflow_for(model, 2)
                srv.pinned, srv.connections = False, WORKERS2_CONNECTIONS[-1:]
                points += run_server(srv, opts)

    results["points"] = [asdict(p) for p in points]
    return results


def _frame() -> Any:
    x, _ = train_models()
    return x


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

POINT_HEADERS = [
    "system",
    "model",
    "format",
    "route",
    "setup",
    "conns",
    "req/s",
    "p50",
    "p99",
    "errors / non-2xx",
    "server CPU",
    "others busy",
]


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:,.0f} ms"


def _rps(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _share(v: float | None, percent: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:.0%}" if percent else f"{v:.2f}"


def point_rows(points: list[dict[str, Any]]) -> list[list[str]]:
    """The full table: one row per measurement."""
    rows = []
    for p in points:
        head = [p["system"], p["model"], p["fmt"], p["route"], p["setup"], str(p["connections"])]
        if p["error"]:
            rows.append([*head, "—", "—", "—", "ERROR: " + p["error"].splitlines()[0][:60], "—", "—"])
            continue
        rows.append(
            [
                *head,
                _rps(p["rps"]),
                _ms(p["p50_ms"]),
                _ms(p["p99_ms"]),
                f"{p['errors']} / {p['non2xx']}",
                _share(p.get("server_cpu")),
                _share(p.get("busy_before"), percent=True),
            ]
        )
    return rows


def _ok(p: dict[str, Any]) -> bool:
    return not p["error"] and p["errors"] == 0 and p["non2xx"] == 0 and p["rps"] is not None


def _pinned(points: list[dict[str, Any]], system: str, model: str, conns: int) -> list[dict[str, Any]]:
    return [
        p for p in points
        if p["system"] == system and p["model"] == model and p["connections"] == conns
        and p["setup"].startswith("1 worker, pinned") and p.get("for_goals", True) and _ok(p)
    ]  # fmt: skip


def _cfg(p: dict[str, Any]) -> str:
    return f"{p['fmt']}, {p['route']}"


def goal_rows(
    points: list[dict[str, Any]], models: list[str], top: int = 64
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Issue 7's goals per model (at ``top`` connections and at one), each held against Steward's best
    pinned configuration for it."""
    rows: list[list[str]] = []
    goals: list[dict[str, Any]] = []

    def add(
        case: str, steward: str, mlflow: str, ratio: str, goal: str, met: bool | None, **extra: Any
    ) -> None:
        rows.append([case, steward, mlflow, ratio, goal, "n/a" if met is None else ("yes" if met else "no")])
        goals.append({"case": case, "steward": steward, "mlflow": mlflow, "ratio": ratio, "goal": goal,
                      "met": met, **extra})  # fmt: skip

    for model in models:
        st64 = _pinned(points, "steward", model, top)
        mf64 = _pinned(points, "mlflow", model, top)
        st1 = _pinned(points, "steward", model, 1)
        mf1 = _pinned(points, "mlflow", model, 1)
        if not st64 and not mf64:
            continue
        best_rps = max(st64, key=lambda p: p["rps"]) if st64 else None
        mlf = mf64[0] if mf64 else None
        ratio = best_rps["rps"] / mlf["rps"] if best_rps and mlf else None
        add(
            f"{model}: throughput at {top} connections",
            f"{best_rps['rps']:,.0f} req/s ({_cfg(best_rps)})" if best_rps else "—",
            f"{mlf['rps']:,.0f} req/s" if mlf else "—",
            fmt_ratio(ratio),
            f"≥ {GOAL_RPS:,.0f} req/s and ≥ {GOAL_RATIO:.0f}x MLflow",
            (best_rps["rps"] >= GOAL_RPS and (ratio is None or ratio >= GOAL_RATIO)) if best_rps else None,
        )
        best_p99 = min(st64, key=lambda p: p["p99_ms"]) if st64 else None
        add(
            f"{model}: p99 at {top} connections",
            f"{_ms(best_p99['p99_ms'])} ({_cfg(best_p99)})" if best_p99 else "—",
            _ms(mlf["p99_ms"]) if mlf else "—",
            fmt_ratio(mlf["p99_ms"] / best_p99["p99_ms"]) if best_p99 and mlf else "n/a",
            f"≤ {GOAL_P99_MS:.0f} ms",
            best_p99["p99_ms"] <= GOAL_P99_MS if best_p99 else None,
        )
        best_p50 = min(st1, key=lambda p: p["p50_ms"]) if st1 else None
        m1 = mf1[0] if mf1 else None
        add(
            f"{model}: p50 at 1 connection",
            f"{_ms(best_p50['p50_ms'])} ({_cfg(best_p50)})" if best_p50 else "—",
            _ms(m1["p50_ms"]) if m1 else "—",
            fmt_ratio(m1["p50_ms"] / best_p50["p50_ms"]) if best_p50 and m1 else "n/a",
            f"≤ {GOAL_P50_1_MS} ms",
            best_p50["p50_ms"] <= GOAL_P50_1_MS if best_p50 else None,
        )
    return rows, goals


def floor_rows(floors: dict[str, dict[str, float]]) -> list[list[str]]:
    """One row per in-process floor measurement."""
    return [[model, what, f"{us:,.1f} µs"] for model, fl in floors.items() for what, us in fl.items()]


def markdown_rows(rows: list[list[str]], headers: list[str], text_columns: int) -> list[str]:
    """A Markdown table: the first ``text_columns`` columns left-aligned, the others right-aligned."""
    align = ["---" if i < text_columns else "---:" for i in range(len(headers))]
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def docs_section(report: dict[str, Any], command: str) -> str:
    """The Markdown block for docs/benchmarks.md."""
    info = report["machine"]
    versions = report["versions"]
    peers = [f"MLflow {versions['mlflow']}" if "mlflow" in versions else None,
             f"BentoML {versions['bentoml']}" if "bentoml" in versions else None]  # fmt: skip
    peer_text = " and ".join(p for p in peers if p) or "no peer"
    lines = [
        DOCS_BEGIN,
        "## Serving: Steward vs MLflow and BentoML",
        "",
        f"Measured {report['when']} at commit `{info['commit']}` with:",
        "",
        "```",
        command,
        "```",
        "",
        *markdown_table(report["goal_rows"]),
        "",
        "ratio: how many times Steward's figure beats MLflow's (throughput: Steward / MLflow; latency: "
        "MLflow / Steward). Each goal is held against Steward's best configuration for it (named).",
        "",
        "Every point (req/s; p50 and p99 latency as wrk measures it; errors: socket errors / non-2xx):",
        "",
        *markdown_rows(report["point_rows"], POINT_HEADERS, 5),
        "",
        "In-process floor (the model alone, one row, pinned to the server's core; median per call):",
        "",
        *markdown_rows(report["floor_rows"], ["model", "call", "per call"], 2),
        "",
        *[f"- {n}" for n in report["notes"]],
        "",
        machine_line(info, f"{peer_text} in their own venvs (`benchmarks/setup_peers.sh`)"),
        DOCS_END,
        "",
    ]
    return "\n".join(lines)


def notes(report: dict[str, Any], opts: Options) -> list[str]:
    """The prose under the tables."""
    out = [
        "Models (`benchmarks/peer_serving.py`, trained identically in each venv with scikit-learn "
        f"{_sklearn_version()}): lr = `make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))`, "
        "gb = `GradientBoostingClassifier(n_estimators=200)`, both fitted on the breast-cancer frame "
        "(30 float columns) and served as `predict_proba`; every request sends row 0, one row.",
        "Steward: `steward serve NAME@production` with its defaults (micro-batching up to 64 rows or "
        "2 ms, every request written to the prediction log) on its registry; format onnx = the same "
        "version with `export_onnx` (served by ONNX Runtime), sklearn = without. Routes: "
        "`/v2/models/NAME/infer` (Open Inference Protocol, one FP64 tensor [1, 30]) and `/predict/NAME` "
        "(one record). Rows marked 'prediction log off' add `--log-sample-rate 0`: context for what the "
        "log costs, not held to the goals.",
        "MLflow: `mlflow models serve -m DIR --env-manager local -w 1` on a model saved by "
        "`mlflow.sklearn.save_model(..., pyfunc_predict_fn='predict_proba')` (skops), body "
        "`dataframe_split`; its venv has uvicorn without uvloop/httptools, as `pip install mlflow` gives.",
        "BentoML: `bentoml serve` of a `@bentoml.service(workers=1)` class whose `@bentoml.api` method "
        'takes an `np.ndarray` and returns `predict_proba`; body `{"input": [[...]]}`.',
        f"Load: `wrk -t1 -cN -d{opts.duration:.0f}s --latency` with a Lua script posting the body, after "
        f"a {opts.warmup:.0f} s warm-up at the same N; every server answered the model's own "
        "probabilities to a check request first. "
        + (
            f"Pinning: the server on core {SERVER_CORE} (`taskset -c {SERVER_CORE}`, one worker), wrk on "
            f"core {WRK_CORE}."
            if opts.pin
            else "Nothing pinned (taskset missing or --no-pin)."
        ),
        "Rows marked '2 workers, unpinned' ran the server with two worker processes and nothing pinned: "
        "server and wrk share both cores, so these say what the machine does with its two cores, "
        "not what a core does.",
        "server CPU: cores the server's processes used during the point (from /proc schedstat; 1.00 = "
        "the pinned core was never idle). others busy: the share of both CPUs that other work used in "
        "the half second before the point (the server's own use taken out).",
    ]
    out += log_cost_lines(report["points"])
    for system, reason in report["skipped"].items():
        out.append(f"{system}: skipped ({reason}).")
    out.append(
        "Before each server started, other work on this shared machine used at most "
        f"{report['busy_max']:.0%} of the CPUs (the script waits up to --quiet-wait seconds for it to "
        "drop below 15%); even so, one point varied by up to 2x between runs on this VM."
        if report.get("busy_max") is not None
        else "This machine is shared with other work; figures vary between runs."
    )
    return out


def log_cost_lines(points: list[dict[str, Any]]) -> list[str]:
    """One line per model comparing Steward's ONNX /v2 points with the prediction log on and off."""
    lines = []
    for model in dict.fromkeys(p["model"] for p in points):
        same = [
            p
            for p in points
            if p["system"] == "steward" and p["model"] == model and p["fmt"] == "onnx"
            and p["route"] == "/v2 infer" and p["setup"].startswith("1 worker, pinned") and _ok(p)
        ]  # fmt: skip
        parts = []
        for off in (p for p in same if not p["for_goals"]):
            on = next((p for p in same if p["for_goals"] and p["connections"] == off["connections"]), None)
            if on is not None:
                parts.append(
                    f"{off['connections']} connection(s) {on['rps']:,.0f} → {off['rps']:,.0f} req/s, "
                    f"p99 {_ms(on['p99_ms'])} → {_ms(off['p99_ms'])}"
                )
        if parts:
            lines.append(f"{model}, onnx, /v2 infer, prediction log on → off: " + "; ".join(parts) + ".")
    return lines


def _sklearn_version() -> str:
    try:
        from importlib.metadata import version

        return version("scikit-learn")
    except Exception:
        return "unknown"


def show(rows: list[list[str]], title: str, headers: list[str], text_columns: int) -> None:
    """Print a table: the first ``text_columns`` columns left-aligned, the rest right-aligned (rich if
    it is installed, else plain text)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print_table(rows, title, headers)
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < text_columns else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the tables, write the JSON (and the docs block)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--systems", default="steward,mlflow,bentoml", help="comma-separated: steward,mlflow,bentoml"
    )
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated: lr,gb")
    p.add_argument("--formats", default="onnx,sklearn", help="Steward's formats: onnx,sklearn")
    p.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    p.add_argument("--duration", type=float, default=6.0, help="seconds of load per point")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load before each point")
    p.add_argument("--quick", action="store_true", help="2 s points, 1 s warm-ups")
    p.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to cores")
    p.add_argument("--no-workers2", action="store_true", help="skip the two-worker unpinned runs")
    p.add_argument(
        "--no-log-off", action="store_true", help="skip the runs with Steward's prediction log off"
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each server, wait up to this many seconds for other work to drop below 15%% of the CPUs",
    )
    p.add_argument(
        "--steward-args",
        default="",
        help="extra `steward serve` arguments, e.g. '--log-sample-rate 0' (shown in the setup column)",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"raw results (default {DEFAULT_JSON})")
    p.add_argument("--write-docs", nargs="?", type=Path, const=DOCS_PATH, help="update this docs page")
    p.add_argument("--workdir", type=Path, help="keep the models, logs and wrk scripts here")
    p.add_argument("--steward-prepare", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if args.steward_prepare:
        return steward_prepare_main(args.workdir, models)

    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    unknown = set(models) - set(MODEL_NAMES)
    if unknown:
        p.error(f"unknown models: {sorted(unknown)}")
    pin = not args.no_pin and can_pin()
    keep = args.workdir is not None
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="steward-serving-bench-"))).resolve()
    opts = Options(
        systems=[s for s in args.systems.split(",") if s],
        models=models,
        formats=[f for f in args.formats.split(",") if f],
        connections=tuple(int(c) for c in args.connections.split(",")),
        duration=2.0 if args.quick else args.duration,
        warmup=1.0 if args.quick else args.warmup,
        pin=pin,
        workers2=not args.no_workers2,
        workdir=workdir,
        steward_args=shlex.split(args.steward_args),
        quiet_wait=args.quiet_wait,
        log_off=not args.no_log_off,
    )
    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT for us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    started = time.monotonic()
    try:
        raw = run_all(opts)
    except KeyboardInterrupt:
        print("interrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        _stop_all()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.monotonic() - started,
        "machine": machine_info(raw["versions"].get("mlflow")),
        "settings": {
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "pinned": pin,
            "server_core": SERVER_CORE,
            "wrk_core": WRK_CORE,
            "connections": list(opts.connections),
            "wrk": "wrk -t1 --latency",
        },
        **raw,
    }
    report["busy_max"] = max(opts.busy) if opts.busy else None
    report["point_rows"] = point_rows(raw["points"])
    report["goal_rows"], report["goals"] = goal_rows(raw["points"], opts.models, max(opts.connections))
    report["floor_rows"] = floor_rows(raw.get("floors", {}))
    report["notes"] = notes(report, opts)

    show(report["point_rows"], "Serving: single-row requests under wrk", POINT_HEADERS, 5)
    if report["floor_rows"]:
        show(report["floor_rows"], "In-process floor (median per call)", ["model", "call", "per call"], 2)
    if report["goal_rows"]:
        print_table(report["goal_rows"], "Issue 7 goals")
    for system, reason in raw["skipped"].items():
        print(f"{system}: skipped ({reason})")
    print(f"total {report['seconds']:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"raw results: {args.json}")
    if args.write_docs:
        command = "python " + " ".join(["benchmarks/serving.py", *map(shlex.quote, argv or sys.argv[1:])])
        write_docs(docs_section(report, command), args.write_docs, DOCS_BEGIN, DOCS_END)
        print(f"docs: {args.write_docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
