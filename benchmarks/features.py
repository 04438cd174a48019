"""Feature store benchmark: Steward against Feast (local provider, file offline store, SQLite online store).

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/features.py                      # small: 100,000 entity rows, 1M-row views
    .venv/bin/python benchmarks/features.py --scale full         # 1,000,000 entity rows, 10M-row views
    .venv/bin/python benchmarks/features.py --scale full --write-docs   # then update docs/benchmarks.md

Feast runs in its own venv, ``benchmarks/.peers/feast`` (``bash benchmarks/setup_peers.sh feast``); its side
is ``benchmarks/features_feast.py``. Without that venv its column says n/a. The data and what both sides share
are in ``features_data.py``: 100,000 customers, two views of five float features over 90 days
(``customer_spend``, ``customer_activity``, 30-day TTL), and entity rows with 1 % unknown customers and 1 %
timestamps before the data. It is generated once per scale into ``benchmarks/.data/features/<scale>/`` and
reused for a week.

The cases, each in a fresh process per repeat (so each side's memory is its own):

- training set: ``get_historical_features`` for every entity row and the ten features, after a warm-up call on
  100 rows (imports, registry, connections); the time and the process's RSS high-water mark during the call.
  Both results are then checked row by row against a reference point-in-time join in DuckDB (untimed).
- materialisation: every row of both views into an empty online store (the latest value per customer).
- online reads: 1 entity and 100 entities a call (10 features each), ``ONLINE_WARMUP`` warm-up calls,
  then thousands of timed ones; p50 and p99 per call. Steward also on Redis (``--redis-url``; the views'
  hashes are deleted before each materialisation and after the run).

Setup is not timed: Feast's ``apply`` in a fresh repository; Steward's ``steward.ingest`` of both files into a
fresh home (dataset version 1 each) and ``steward.apply_features``. Steward runs from ``src/`` as committed at
``--src`` (HEAD by default, exported with ``git archive``); ``--src worktree`` measures uncommitted edits.
Before each timed call the case waits (up to ``--max-wait`` seconds) until other work uses at most 15 % of
the CPUs; the busiest start is reported. Nothing is pinned: both systems may use both cores.

Memory: a case that would exhaust the machine is stopped when less than ``MEMORY_RESERVE`` (3 GiB) is left,
and reported as out of memory with the RSS it had reached; Feast's full-scale training set does that on a
24 GiB machine (the kernel's OOM killer stopped it at 22.3 GiB before the watch existed). Case processes
also ask the kernel to kill them first should memory run out, so other work on a shared machine survives.
A full-scale Feast training set runs once whatever ``--repeats`` says.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    DOCS_PATH,
    ROOT,
    STEWARD_PYTHON,
    fmt_bytes,
    fmt_ratio,
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    release_memory,
    reset_peak_rss,
    rss_bytes,
    run_json,
    steward_version,
    wait_quiet,
    write_docs,
)
from data import export_src, peer_env, src_dirty, steward_src_env
from data_report import DOCS_END as DATA_DOCS_END
from features_data import (
    CHECK_UNKNOWN,
    CUSTOMERS,
    DAYS,
    ENTITY,
    JOIN_KEY,
    ONLINE_BATCH,
    ONLINE_WARMUP,
    SCALES,
    TIMESTAMP,
    TTL,
    VIEWS,
    check_online,
    check_training,
    feature_refs,
    generate,
    is_fresh,
    manifest,
    online_batch_ids,
    online_check_ids,
    online_single_ids,
    percentiles,
    vm_hwm_bytes,
)

DOCS_BEGIN = "<!-- BEGIN features benchmark (written by benchmarks/features.py --write-docs) -->"
DOCS_END = "<!-- END features benchmark -->"
HEADERS = ["case", "Steward", "Feast", "ratio", "Steward goal", "met?"]
DATA_ROOT = BENCH_DIR / ".data" / "features"
FEAST_VENV = BENCH_DIR / ".peers" / "feast"
FEAST_SCRIPT = BENCH_DIR / "features_feast.py"
DEFAULT_JSON = BENCH_DIR / "results" / "features.json"
REDIS_URL = "redis://127.0.0.1:6379/15"
BUSY_LIMIT = 0.15
REPEATS = 3
MAX_WAIT = 60.0
CASE_TIMEOUT = 3600.0
GIB = 2**30
MEMORY_RESERVE = 3 * GIB  # a case is stopped when the machine has less available (left for other work)


# --------------------------------------------------------------------------------------------
# Steward's side: one function per case, run in a fresh subprocess (``--steward-case``)
# --------------------------------------------------------------------------------------------


def _quiet(max_wait: float) -> float | None:
    busy = wait_quiet(max_wait, BUSY_LIMIT)
    return None if busy is None else round(busy, 3)


def _configure(args: argparse.Namespace) -> Any:
    import steward

    settings: dict[str, Any] = {"home": args.home}
    if args.online:
        settings["online_store"] = args.online
    steward.configure(**settings)
    return steward


def steward_setup(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Ingest both views (dataset version 1 each) into a fresh home and apply the definitions."""
    steward = _configure(args)
    from steward.features import DatasetSource, Entity, Feature, FeatureView

    t0 = time.perf_counter()
    for view in VIEWS:
        steward.ingest(info["views"][view], view)
    ingest = time.perf_counter() - t0
    definitions: list[Any] = [Entity(ENTITY, (JOIN_KEY,))]
    definitions += [
        FeatureView(
            name=view,
            entities=(ENTITY,),
            source=DatasetSource(view),
            timestamp=TIMESTAMP,
            features=tuple(Feature(n) for n in names),
            ttl=TTL,
        )
        for view, names in VIEWS.items()
    ]
    t0 = time.perf_counter()
    steward.apply_features(definitions)
    return {"ingest_seconds": ingest, "apply_seconds": time.perf_counter() - t0}


def steward_training(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One point-in-time training set for every entity row, after a warm-up on 100 of them."""
    import gc

    import pyarrow.parquet as pq

    steward = _configure(args)
    refs = feature_refs()
    entities = pq.read_table(info["entities"])
    t0 = time.perf_counter()
    steward.get_historical_features(entities.slice(0, 100), refs)
    warmup = time.perf_counter() - t0
    gc.collect()
    release_memory()
    base = rss_bytes()
    reset_peak_rss()
    busy = _quiet(args.max_wait)
    t0 = time.perf_counter()
    table = steward.get_historical_features(entities, refs)
    seconds = time.perf_counter() - t0
    peak = vm_hwm_bytes()
    names = [r.split(":", 1)[1] for r in refs]
    pq.write_table(table.select([JOIN_KEY, TIMESTAMP, *names]), args.out)
    return {
        "seconds": seconds,
        "warmup_seconds": warmup,
        "rows_in": entities.num_rows,
        "rows_out": table.num_rows,
        "nulls": {n: table.column(n).null_count for n in names},
        "base_rss_bytes": base,
        "peak_rss_bytes": peak,
        "peak_extra_bytes": max(0, peak - base),
        "busy": busy,
    }


def steward_materialize(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Both views, all their rows, into an empty online store (``--online``)."""
    steward = _configure(args)
    start = datetime.fromisoformat(info["start"]) - timedelta(days=1)
    end = datetime.now(UTC)
    base = rss_bytes()
    reset_peak_rss()
    busy = _quiet(args.max_wait)
    t0 = time.perf_counter()
    runs = steward.materialize_features(start=start, end=end)
    seconds = time.perf_counter() - t0
    peak = vm_hwm_bytes()
    return {
        "seconds": seconds,
        "runs": [r.to_json() for r in runs],
        "peak_rss_bytes": peak,
        "peak_extra_bytes": max(0, peak - base),
        "busy": busy,
    }


def steward_online(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Online reads of the ten features: one entity a read, then 100 entities a read."""
    steward = _configure(args)
    refs = feature_refs()

    def read(ids: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = steward.get_online_features({JOIN_KEY: ids}, refs).to_dict()
        return out

    result: dict[str, Any] = {}
    for kind, batches in (("single", [[i] for i in online_single_ids()]), ("batch", online_batch_ids())):
        for ids in batches[:ONLINE_WARMUP]:
            read(ids)
        result[f"busy_{kind}"] = _quiet(args.max_wait)
        latencies = []
        for ids in batches[ONLINE_WARMUP:]:
            t0 = time.perf_counter_ns()
            read(ids)
            latencies.append(time.perf_counter_ns() - t0)
        result[kind] = percentiles(latencies)
    result["check"] = read(online_check_ids())
    return result


STEWARD_CASES: dict[str, Callable[[dict[str, Any], argparse.Namespace], dict[str, Any]]] = {
    "setup": steward_setup,
    "training": steward_training,
    "materialize": steward_materialize,
    "online": steward_online,
}


def steward_case_main(args: argparse.Namespace) -> int:
    """Entry point of the ``--steward-case`` subprocess: run one case, print its JSON line."""
    info = manifest(args.data)
    if info is None:
        raise SystemExit(f"no manifest.json in {args.data}")
    result = STEWARD_CASES[args.steward_case](info, args)
    import duckdb
    import pyarrow

    result |= {
        "case": args.steward_case,
        "version": steward_version(),
        "versions": {"duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__},
    }
    print(json.dumps(result, default=str), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    """What to run, parsed from the command line."""

    scale: str
    repeats: int
    max_wait: float
    systems: list[str]
    redis_url: str | None
    workdir: Path
    src: Path  # the Steward source tree the cases import (PYTHONPATH)
    commit: str = "unknown"
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


def ensure_data(opts: Options) -> dict[str, Any]:
    """The scale's generated data: the cached copy while it is fresh, else made again (in a subprocess)."""
    out = DATA_ROOT / opts.scale
    info = manifest(out)
    if (
        is_fresh(info, opts.scale)
        and info is not None
        and all(Path(p).exists() for p in info["views"].values())
    ):
        opts.log(f"data: {out} (made {info['generated_at'][:16]})")
        return info
    shutil.rmtree(out, ignore_errors=True)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    (DATA_ROOT.parent / ".gitignore").write_text("# generated benchmark data, never committed\n*\n")
    opts.log(f"generating the {opts.scale} data into {out} ...")
    cmd = [str(STEWARD_PYTHON), str(Path(__file__).resolve()), "--generate", str(out), "--scale", opts.scale]
    made = run_json(cmd, steward_src_env(opts.workdir / "gen-home", opts.src), opts.workdir)
    if "error" in made:
        raise SystemExit(f"generating the data failed: {made['error']}")
    return made


def _status_bytes(path: str, field: str) -> int | None:
    """A ``kB`` field of a ``/proc`` status file (``VmRSS`` of ``/proc/<pid>/status``, ``MemAvailable`` of
    ``/proc/meminfo``), in bytes; None when it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _prefer_oom_kill() -> None:
    """In a case process before it runs: be the one the kernel kills if memory runs out, not other work."""
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")


def run_watched(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = CASE_TIMEOUT
) -> dict[str, Any]:
    """``run_json`` for a case that may need more memory than the machine has.

    The process's RSS is polled four times a second; when the machine's available memory falls below
    ``MEMORY_RESERVE`` it is killed (rather than left to the kernel's OOM killer, which could pick other
    work on a shared machine), and the error says at which RSS and after how long. The result gains
    ``polled_rss_bytes``, the largest RSS seen.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / "case.stdout", cwd / "case.stderr"
    t0 = time.monotonic()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, preexec_fn=_prefer_oom_kill)
        polled, stopped = 0, False
        while proc.poll() is None:
            polled = max(polled, _status_bytes(f"/proc/{proc.pid}/status", "VmRSS") or 0)
            available = _status_bytes("/proc/meminfo", "MemAvailable")
            if (available is not None and available < MEMORY_RESERVE) or time.monotonic() - t0 > timeout:
                stopped = True
                proc.kill()
                proc.wait()
                break
            time.sleep(0.25)
    elapsed = time.monotonic() - t0
    if stopped:
        if elapsed > timeout:
            return {"error": f"timed out after {timeout:.0f} s", "polled_rss_bytes": polled}
        return {
            "error": f"stopped at {fmt_bytes(polled)} RSS after {elapsed:.0f} s: the machine had less than "
            f"{fmt_bytes(MEMORY_RESERVE)} of memory left",
            "out_of_memory": True,
            "polled_rss_bytes": polled,
            "elapsed_seconds": elapsed,
        }
    lines = [ln for ln in out_path.read_text().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((err_path.read_text() or out_path.read_text()).strip().splitlines()[-15:])
        killed = " (killed: out of memory?)" if proc.returncode == -9 else ""
        return {"error": f"exit code {proc.returncode}{killed}: {tail}", "polled_rss_bytes": polled}
    result: dict[str, Any] = json.loads(lines[-1])
    result["polled_rss_bytes"] = polled
    return result


def flush_redis(url: str) -> None:
    """Delete the benchmark's views from the Redis online store (the hashes of project ``default``)."""
    import redis

    from steward.features.online_redis import DEFAULT_PREFIX

    with redis.Redis.from_url(url) as client:
        client.delete(*(f"{DEFAULT_PREFIX}default:{view}" for view in VIEWS))


def _describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR: " + str((result["error"].splitlines() or [""])[-1])
    parts = []
    if "seconds" in result:
        parts.append(f"{result['seconds']:.2f} s")
    if "peak_rss_bytes" in result:
        parts.append(f"peak RSS {fmt_bytes(result['peak_rss_bytes'])}")
    if "rows_out" in result:
        parts.append(f"{result['rows_out']:,} of {result['rows_in']:,} rows")
    for kind in ("single", "batch"):
        if kind in result:
            parts.append(f"{kind} p50 {result[kind]['p50_ms']:.3f} ms p99 {result[kind]['p99_ms']:.3f} ms")
    busy = [result[k] for k in ("busy", "busy_single", "busy_batch") if result.get(k) is not None]
    if busy:
        parts.append(f"machine busy before: {max(busy):.0%}")
    return ", ".join(parts) or "done"


class Runner:
    """Runs each case in a fresh process of its side's venv and collects the results."""

    def __init__(self, opts: Options, info: dict[str, Any]) -> None:
        self.opts = opts
        self.info = info
        self.data = Path(info["entities"]).parent
        self.results: dict[str, Any] = {}

    def _run(self, key: str, cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
        self.opts.log(f"{key:<28} ...")
        result = run_watched(cmd, env, self.opts.workdir)
        self.opts.log(f"{key:<28} {_describe(result)}")
        return result

    def _repeat(
        self, key: str, make: Callable[[int], tuple[list[str], dict[str, str]]], repeats: int
    ) -> None:
        runs = []
        for k in range(repeats):
            cmd, env = make(k)
            result = self._run(f"{key} [{k + 1}/{repeats}]", cmd, env)
            runs.append(result)
            if "error" in result:
                break
        self.results[key] = runs

    def feast(self) -> None:
        """Feast's cases: setup, training sets, materialisations (each into a copy of the new repo), reads."""
        python = FEAST_VENV / "bin" / "python"
        work = self.opts.workdir / "feast"
        base = [
            str(python),
            str(FEAST_SCRIPT),
            "--data",
            str(self.data),
            "--max-wait",
            str(self.opts.max_wait),
        ]
        env = peer_env() | {"FEAST_USAGE": "False"}
        setup = self._run("feast setup", [*base, "--case", "setup", "--repo", str(work / "repo")], env)
        self.results["feast:setup"] = setup
        if "error" in setup:
            return
        train = [
            *base,
            "--case",
            "training",
            "--repo",
            str(work / "repo"),
            "--out",
            str(work / "training.parquet"),
        ]
        # A full-scale Feast training set takes minutes and ~15 GiB: once, unless asked for more.
        repeats = self.opts.repeats if self.opts.scale == "small" else 1
        self._repeat("feast:training", lambda k: (train, env), repeats)

        def materialize(k: int) -> tuple[list[str], dict[str, str]]:
            repo = work / f"repo-m{k}"
            shutil.rmtree(repo, ignore_errors=True)
            shutil.copytree(work / "repo", repo)  # the registry and an empty online store, as applied
            return [*base, "--case", "materialize", "--repo", str(repo)], env

        self._repeat("feast:materialize", materialize, self.opts.repeats)
        if any("error" in r for r in self.results["feast:materialize"]):
            return
        last = work / f"repo-m{len(self.results['feast:materialize']) - 1}"
        self.results["feast:online"] = self._run(
            "feast online", [*base, "--case", "online", "--repo", str(last)], env
        )

    def steward(self) -> None:
        """Steward's cases: setup, training sets, then materialisations and reads on SQLite and on Redis."""
        work = self.opts.workdir / "steward"
        home = work / "home"
        env = steward_src_env(home, self.opts.src)
        me = [
            str(STEWARD_PYTHON),
            str(Path(__file__).resolve()),
            "--data",
            str(self.data),
            "--home",
            str(home),
        ]
        me += ["--max-wait", str(self.opts.max_wait)]
        setup = self._run("steward setup", [*me, "--steward-case", "setup"], env)
        self.results["steward:setup"] = setup
        if "error" in setup:
            return
        train = [*me, "--steward-case", "training", "--out", str(work / "training.parquet")]
        self._repeat("steward:training", lambda k: (train, env), self.opts.repeats)
        stores: list[tuple[str, Callable[[int], str]]] = [
            ("sqlite", lambda k: f"sqlite:///{work / f'online-{k}.db'}")
        ]
        if self.opts.redis_url is not None:
            url = self.opts.redis_url
            stores.append(("redis", lambda k: url))
        for name, online in stores:

            def materialize(
                k: int, online: Callable[[int], str] = online, name: str = name
            ) -> tuple[list[str], dict[str, str]]:
                if name == "redis":
                    flush_redis(online(k))
                return [*me, "--steward-case", "materialize", "--online", online(k)], env

            key = f"steward:materialize_{name}"
            self._repeat(key, materialize, self.opts.repeats)
            if any("error" in r for r in self.results[key]):
                continue
            last = online(len(self.results[key]) - 1)
            read = [*me, "--steward-case", "online", "--online", last]
            self.results[f"steward:online_{name}"] = self._run(f"steward online ({name})", read, env)
        if self.opts.redis_url is not None:
            flush_redis(self.opts.redis_url)

    def checks(self) -> None:
        """Both sides' training sets against the reference join, and their online reads against the data."""
        now = datetime.now(UTC)
        for side in ("feast", "steward"):
            result = self.opts.workdir / side / "training.parquet"
            if result.exists():
                self.results[f"{side}:check_training"] = check_training(self.info, result)
            for key in (f"{side}:online", f"{side}:online_sqlite", f"{side}:online_redis"):
                online = self.results.get(key)
                if online and "check" in online:
                    self.results[f"{key}:check"] = check_online(self.info, online["check"], now)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _best(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The run with the median time of a repeated case (None if it did not run or failed)."""
    runs = results.get(key)
    if not runs or any("error" in r for r in runs):
        return None
    ordered = sorted(runs, key=lambda r: r["seconds"])
    median: dict[str, Any] = ordered[(len(ordered) - 1) // 2]
    return median


def _out_of_memory(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The run of a repeated case that was stopped for want of memory, if one was."""
    return next((r for r in results.get(key) or [] if r.get("out_of_memory")), None)


def _one(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    result = results.get(key)
    return None if result is None or "error" in result else result


def _secs(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:,.2f} s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"


def _ratio(peer: float | None, steward: float | None) -> str:
    return fmt_ratio(peer / steward) if peer is not None and steward else "n/a"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def table_rows(results: dict[str, Any], scale: str) -> list[list[str]]:
    """The rows of the result table: case | Steward | Feast | ratio | Steward goal | met?"""
    entity_rows, view_rows = SCALES[scale]
    full = scale == "full"
    s_train, f_train = _best(results, "steward:training"), _best(results, "feast:training")
    s_t = s_train["seconds"] if s_train else None
    f_t = f_train["seconds"] if f_train else None
    s_mem = s_train["peak_rss_bytes"] if s_train else None
    f_mem = f_train["peak_rss_bytes"] if f_train else None
    speed_ok = None if not full or s_t is None else s_t < 8 and (f_t is None or f_t / s_t >= 30)
    f_time, f_mem_cell, mem_ratio = _secs(f_t), fmt_bytes(f_mem), _ratio(f_mem, s_mem)
    if (oom := _out_of_memory(results, "feast:training")) is not None:
        f_time = f"out of memory after {oom['elapsed_seconds']:.0f} s"
        f_mem_cell = f"> {fmt_bytes(oom['polled_rss_bytes'])}"
        if s_mem:
            mem_ratio = "> " + fmt_ratio(oom["polled_rss_bytes"] / s_mem)
    rows = [
        [
            f"training set, {entity_rows:,} entity rows, 2 views of {view_rows:,} rows",
            _secs(s_t),
            f_time,
            _ratio(f_t, s_t),
            "≥ 30x Feast, < 8 s" if full else "(goal at full scale)",
            _met(speed_ok) if full else "—",
        ],
        [
            "training set, peak RSS of the process",
            fmt_bytes(s_mem),
            f_mem_cell,
            mem_ratio,
            "≤ 4 GiB" if full else "(goal at full scale)",
            _met(None if s_mem is None else s_mem <= 4 * GIB) if full else "—",
        ],
    ]
    kept = []
    for train in (s_train, f_train):
        kept.append(
            "n/a" if train is None else f"{train['rows_out']:,} ({train['rows_out'] / entity_rows:.1%})"
        )
    rows.append(
        [
            "training set, entity rows returned",
            *kept,
            "—",
            "every row",
            _met(None if s_train is None else s_train["rows_out"] == entity_rows),
        ]
    )
    s_mat, f_mat = _best(results, "steward:materialize_sqlite"), _best(results, "feast:materialize")
    s_m, f_m = (s_mat["seconds"] if s_mat else None), (f_mat["seconds"] if f_mat else None)
    rows.append(
        [
            f"materialise both views ({2 * view_rows:,} rows), SQLite",
            _secs(s_m),
            _secs(f_m),
            _ratio(f_m, s_m),
            "≥ 5x Feast",
            _met(None if s_m is None or f_m is None else f_m / s_m >= 5),
        ]
    )
    s_on, f_on = _one(results, "steward:online_sqlite"), _one(results, "feast:online")
    for kind, label, limit in (("single", "1 entity", 0.1), ("batch", f"{ONLINE_BATCH} entities", 1.5)):
        s = s_on[kind] if s_on else None
        f = f_on[kind] if f_on else None
        rows.append(
            [
                f"online read, {label}, 10 features, SQLite (p50 / p99)",
                "n/a" if s is None else f"{_ms(s['p50_ms'])} / {_ms(s['p99_ms'])}",
                "n/a" if f is None else f"{_ms(f['p50_ms'])} / {_ms(f['p99_ms'])}",
                _ratio(f["p99_ms"] if f else None, s["p99_ms"] if s else None),
                f"p99 ≤ {limit} ms",
                _met(None if s is None else s["p99_ms"] <= limit),
            ]
        )
    r_mat, r_on = _best(results, "steward:materialize_redis"), _one(results, "steward:online_redis")
    if r_mat or r_on or "steward:materialize_redis" in results:
        rows.append(
            [
                f"materialise both views ({2 * view_rows:,} rows), Redis",
                _secs(r_mat["seconds"] if r_mat else None),
                *["—"] * 4,
            ]
        )
        redis_goals: list[tuple[str, str, float | None]] = [
            ("single", "1 entity", None),
            ("batch", f"{ONLINE_BATCH} entities", 2.0),
        ]
        for kind, label, goal in redis_goals:
            s = r_on[kind] if r_on else None
            rows.append(
                [
                    f"online read, {label}, 10 features, Redis (p50 / p99)",
                    "n/a" if s is None else f"{_ms(s['p50_ms'])} / {_ms(s['p99_ms'])}",
                    "—",
                    "—",
                    "—" if goal is None else f"p99 ≤ {goal} ms",
                    "—" if goal is None else _met(None if s is None else s["p99_ms"] <= goal),
                ]
            )
    return rows


def notes(results: dict[str, Any], info: dict[str, Any], opts: Options) -> list[str]:
    """The lines under the table: what was measured, the cross-checks, the setup, the machine's load."""
    out = [
        "ratio: how many times faster Steward is than Feast (for memory: how many times less it needs; "
        "for online reads: of the p99).",
        "",
        f"Data: {CUSTOMERS:,} customers; views `customer_spend` and `customer_activity`, "
        f"{info['view_rows']:,} rows each ({info['view_rows'] // CUSTOMERS} per customer at random times "
        f"over {DAYS} days, 5 float64 features, TTL {TTL.days} days, Parquet "
        f"{fmt_bytes(sum(info['view_file_bytes'].values()) / 2)} each); {info['entity_rows']:,} entity rows, "
        f"of which {info['unknown_entity_rows']:,} unknown customers and {info['early_entity_rows']:,} "
        "timestamps before the data. Steward gets the entity rows as an Arrow table, Feast as a pandas "
        "DataFrame (each read before the timing).",
    ]
    ooms, training, online = [], [], []
    for side, name in (("steward", "Steward"), ("feast", "Feast")):
        if (oom := _out_of_memory(results, f"{side}:training")) is not None:
            ram = _status_bytes("/proc/meminfo", "MemTotal")
            ooms += [
                "",
                f"{name}'s training set did not fit in this machine's {fmt_bytes(ram)}: its process was "
                f"stopped at {fmt_bytes(oom['polled_rss_bytes'])} RSS after {oom['elapsed_seconds']:.0f} s "
                f"(warm-up included), when less than {fmt_bytes(MEMORY_RESERVE)} was left.",
            ]
        check = results.get(f"{side}:check_training")
        if check is None:
            continue
        line = f"- {name}: {check['rows_out']:,} rows, {check['wrong']:,} with a value that differs"
        if missed := check["missed"]:
            line += (
                f"; {missed:,} entity rows missing ({check['missed_unknown']:,} unknown customers, "
                f"{check['missed_early']:,} before the data, {check['missed_no_value']:,} with no value in a "
                "view — before the customer's first event there or past the TTL —, "
                f"{check['missed_other']:,} others)"
            )
        else:
            line += ", none missing"
        if check["added"]:
            line += f"; {check['added']:,} rows more than the entity rows"
        training.append(line + ".")
    for key, name in (
        ("steward:online_sqlite", "Steward (SQLite)"),
        ("steward:online_redis", "Steward (Redis)"),
        ("feast:online", "Feast"),
    ):
        if check := results.get(f"{key}:check"):
            online.append(
                f"- {name}: {check['fresh']} values as the latest row, {check['stale']} as a latest row "
                f"older than the TTL, {check['stale_null']} nulls for those, {check['unknown_null']} nulls "
                f"for unknown customers, {check['wrong']} wrong."
            )
    out += ooms
    if training:
        out += [
            "",
            "Training sets against a reference point-in-time join (DuckDB ASOF, TTL applied):",
            "",
            *training,
        ]
    if online:
        out += [
            "",
            f"Online reads of {ONLINE_BATCH - CHECK_UNKNOWN} known and {CHECK_UNKNOWN} unknown customers "
            "against the views' latest rows:",
            "",
            *online,
        ]
    setup = []
    if s := _one(results, "steward:setup"):
        setup.append(
            f"Steward's ingest of both files {s['ingest_seconds']:.1f} s, apply {s['apply_seconds']:.2f} s"
        )
    if f := _one(results, "feast:setup"):
        setup.append(f"Feast's apply {f['apply_seconds']:.2f} s")
    warm = [
        f"{name} {_best(results, key)['warmup_seconds']:.2f} s"  # type: ignore[index]
        for key, name in (("steward:training", "Steward"), ("feast:training", "Feast"))
        if _best(results, key)
    ]
    if setup:
        out += ["", "Setup, not timed: " + "; ".join(setup) + "."]
    if warm:
        out.append("Warm-up training set of 100 entity rows, not timed: " + ", ".join(warm) + ".")
    repeats = []
    for key in (
        "steward:training",
        "feast:training",
        "steward:materialize_sqlite",
        "feast:materialize",
        "steward:materialize_redis",
    ):
        runs = results.get(key) or []
        if runs and not any("error" in r for r in runs):
            repeats.append(f"`{key}` " + ", ".join(f"{r['seconds']:.2f}" for r in runs) + " s")
    if repeats:
        out += [
            "",
            "Each repeat a fresh process; the table has the median. Repeats: " + "; ".join(repeats) + ".",
        ]
    busy = [
        v
        for r in results.values()
        for item in (r if isinstance(r, list) else [r])
        if isinstance(item, dict)
        for k, v in item.items()
        if k.startswith("busy") and v is not None
    ]
    if busy:
        out.append(
            f"Before each timed call the case waited (up to {opts.max_wait:.0f} s) for other work to use at "
            f"most {BUSY_LIMIT:.0%} of the CPUs; the busiest start: {max(busy):.0%}."
        )
    out += [
        "",
        "Memory: the RSS high-water mark of the case process during the timed call (reset just before it, "
        "so the warm-up does not count), the interpreter, the libraries and the entity rows included. Online "
        f"reads: {ONLINE_WARMUP} warm-up calls, then {len(online_single_ids()) - ONLINE_WARMUP:,} timed "
        f"calls of 1 entity and {len(online_batch_ids()) - ONLINE_WARMUP:,} of {ONLINE_BATCH}, each timed "
        "alone; Feast's registry cache never expires (`cache_ttl_seconds: 0`), so no call reloads it.",
    ]
    return out


def _versions(results: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in ("feast:setup", "steward:setup"):
        r = _one(results, key)
        if r:
            found |= {f"{key.split(':')[0]}:{k}": v for k, v in r.get("versions", {}).items()}
    return found


def render_docs(
    rows: list[list[str]],
    results: dict[str, Any],
    info: dict[str, Any],
    mach: dict[str, str],
    command: str,
    opts: Options,
) -> str:
    """The feature store section of ``docs/benchmarks.md``, between its markers."""
    v = _versions(results)
    peers = (
        f"Feast {v.get('feast:feast', '?')} (pandas {v.get('feast:pandas', '?')}, pyarrow "
        f"{v.get('feast:pyarrow', '?')}, dask {v.get('feast:dask', '?')}) in its own venv "
        f"(`benchmarks/setup_peers.sh feast`); Steward with DuckDB {v.get('steward:duckdb', '?')}"
    )
    lines = [
        DOCS_BEGIN,
        "## Feature store: Steward vs Feast",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {opts.commit} with:",
        "",
        "```",
        command,
        "```",
        "",
        *markdown_table(rows, HEADERS),
        "",
        *notes(results, info, opts),
        "",
        "Feast: local provider, file offline store (Dask), SQLite online store, file registry; "
        "`get_historical_features(entity_df, refs).to_df()`, `materialize(start, end)`, "
        "`get_online_features(refs, entity_rows).to_dict()`. Steward: embedded (SQLite metadata, local "
        "files), `steward.get_historical_features`, `steward.materialize_features`, "
        "`steward.get_online_features(...).to_dict()`; on SQLite (a file of its own per materialisation) "
        f"and on Redis (`{opts.redis_url or REDIS_URL}`).",
        "",
        machine_line(mach, peers),
        DOCS_END,
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The harness's command line (plus the hidden subprocess modes)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="small", help="small (default) or full")
    p.add_argument("--only", choices=["steward", "feast"], help="run one system only")
    p.add_argument(
        "--repeats",
        type=int,
        default=REPEATS,
        help=f"fresh processes per case (default {REPEATS}; Feast's full-scale training set runs once)",
    )
    p.add_argument(
        "--redis-url",
        default=REDIS_URL,
        help=f"Redis database for Steward's Redis cases (default {REDIS_URL})",
    )
    p.add_argument("--no-redis", action="store_true", help="skip Steward's Redis cases")
    p.add_argument("--max-wait", type=float, default=MAX_WAIT, help="seconds to wait for a quiet machine")
    p.add_argument(
        "--src",
        default="HEAD",
        help="the commit whose src/ Steward runs (default HEAD), or "
        "'worktree' for the repository's src/ as it is now",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"raw results (default {DEFAULT_JSON})")
    p.add_argument(
        "--write-docs", action="store_true", help="update the feature store section of docs/benchmarks.md"
    )
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help="keep the work directory (stores, results)")
    # Subprocess modes.
    p.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--steward-case", choices=sorted(STEWARD_CASES), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--online", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON and optionally update the docs."""
    args = parse_args(argv)
    if args.generate:
        print(json.dumps(generate(args.generate, args.scale)), flush=True)
        return 0
    if args.steward_case:
        if not (args.data and args.home):
            raise SystemExit("--steward-case needs --data and --home")
        return steward_case_main(args)
    if args.write_docs and (args.only or args.scale != "full"):
        raise SystemExit("--write-docs needs a full run of both systems: --scale full, no --only")
    systems = ["steward", "feast"] if args.only is None else [args.only]
    if "feast" in systems and not (FEAST_VENV / "bin" / "python").exists():
        print(
            f"{FEAST_VENV} missing: run `bash benchmarks/setup_peers.sh feast` to compare with Feast.",
            file=sys.stderr,
        )
        systems.remove("feast")

    tmp = Path(tempfile.mkdtemp(prefix="steward-bench-features-"))
    if args.src == "worktree":
        commit = machine_info(None)["commit"]
        src, label = (
            ROOT / "src",
            f"`{commit}`" + (" plus uncommitted changes in src/" if src_dirty() else ""),
        )
    else:
        src, commit = export_src(args.src, tmp / "steward-src")
        label = f"`{commit}`"
    redis_url = None if args.no_redis else args.redis_url
    opts = Options(args.scale, args.repeats, args.max_wait, systems, redis_url, tmp, src, label)
    opts.log(f"work directory: {tmp}; Steward from {src} ({label})")
    try:
        info = ensure_data(opts)
        runner = Runner(opts, info)
        if "feast" in systems:
            runner.feast()
        if "steward" in systems:
            runner.steward()
        runner.checks()
        results = runner.results
    finally:
        if args.keep:
            opts.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = table_rows(results, args.scale)
    entity_rows, view_rows = SCALES[args.scale]
    title = f"Feature store: Steward vs Feast ({args.scale}: {entity_rows:,} entity rows, {view_rows:,}-row "
    title += "views)"
    print_table(rows, title, HEADERS)
    print("\n".join(notes(results, info, opts)))
    for key, res in results.items():
        for r in res if isinstance(res, list) else [res]:
            if isinstance(r, dict) and "error" in r:
                print(f"\n{key} failed:\n{r['error']}", file=sys.stderr)

    mach = machine_info(None)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": mach, "scale": args.scale, "data": info, "commit": label, "results": results}
    args.json.write_text(json.dumps(payload, indent=2, default=str))
    opts.log(f"wrote {args.json}")
    if args.write_docs:
        command = shlex.join(
            [".venv/bin/python", "benchmarks/features.py", *(argv if argv is not None else sys.argv[1:])]
        )
        section = render_docs(rows, results, info, mach, command, opts)
        write_docs(section, args.docs_path, DOCS_BEGIN, DOCS_END, after=DATA_DOCS_END)
        print(f"wrote the feature store section of {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
