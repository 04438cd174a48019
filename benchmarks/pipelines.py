"""Pipelines benchmark: Steward's pipeline engine against Prefect 3 on the same machine, the same DAGs.

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/pipelines.py               # full run (Prefect's part: 6-13 min on 2 cores)
    .venv/bin/python benchmarks/pipelines.py --skip-peers  # Steward only
    .venv/bin/python benchmarks/pipelines.py --out results.json --write-docs

Prefect comes from its own venv, made by ``bash benchmarks/setup_peers.sh``; its side is
``benchmarks/peer_prefect.py`` (see its docstring for the flows and Prefect's settings). Without the
venv, or with ``--skip-peers``, only Steward's column is filled.

The DAGs, the same on both sides, with trivial steps:

- ``chain10``: 10 steps in a linear chain, ``x + 1`` from 0.
- ``dag500``: one source (``1``), 498 parallel steps each taking the source's output and its own
  index ``i`` (``x + i``), one sink taking all 498 results (``sum``). Steward runs it with the
  ``processes`` executor; Prefect with ``ThreadPoolTaskRunner`` and with ``ProcessPoolTaskRunner``, and
  the faster of the two is the figure Steward is compared with.
- ``dag500_cached_rerun``: the 500-step DAG with caching on, run once to fill the cache, then timed
  on fully cached reruns.
- ``flow_overhead``: an empty pipeline/flow (no goal; for context).

Every figure is the best of ``--repeats`` runs of the whole pipeline/flow in one process, after a
warm-up run (Prefect's ephemeral API server starts in the warm-up, reported apart as its start-up).
Nothing is pinned unless ``--pin`` is given: both systems use process pools, and Prefect's API server is
a subprocess that Prefect starts itself, so it cannot be given a core of its own. With ``--pin`` every
process of both systems shares core 0 (``taskset -c 0``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from _common import (
    BENCH_DIR,
    CLIENT_CORE,
    DOCS_PATH,
    can_pin,
    fmt_ratio,
    machine_info,
    machine_line,
    markdown_table,
    pinned,
    print_table,
    run_json,
    steward_version,
    write_docs,
)
from data_report import DOCS_END as DATA_DOCS_END

PREFECT_VENV = BENCH_DIR / ".peers" / "prefect"
PREFECT_PYTHON = PREFECT_VENV / "bin" / "python"
PEER_SCRIPT = BENCH_DIR / "peer_prefect.py"
DOCS_BEGIN = "<!-- BEGIN pipelines benchmark (written by benchmarks/pipelines.py --write-docs) -->"
DOCS_END = "<!-- END pipelines benchmark -->"
HEADERS = ["case", "Steward", "Prefect best", "ratio", "goal", "met?"]

REPEATS = 3
MAX_WAIT = 30.0  # seconds the Prefect process waits for a quiet machine before a timed repeat
PREFECT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Case:
    """One row of the table: Steward's figure ``name`` against the best of Prefect's ``prefect``."""

    name: str
    label: str
    prefect: tuple[str, ...]  # peer_prefect.py keys; the best (lowest) of them is Prefect's figure
    goal: float | None  # Steward's seconds at most (strictly below)
    goal_text: str
    min_ratio: float | None = None  # and at least this many times faster than Prefect's best


CASES: list[Case] = [
    Case("dag500", "500-step DAG (1 source, 498 parallel, 1 sink)", ("dag500_threads", "dag500_processes"),
         0.5, "< 0.5 s and ≥ 10x Prefect", 10.0),
    Case("chain10", "10-step linear chain", ("chain10",), 0.05, "< 50 ms"),
    Case("dag500_cached_rerun", "500-step DAG, fully cached rerun", ("dag500_cached_rerun",), 0.3, "< 0.3 s"),
    Case("flow_overhead", "smallest pipeline (per-run overhead)", ("flow_overhead",), None, "none (context)"),
]  # fmt: skip
PREFECT_LABELS = {
    "dag500_threads": "threads",
    "dag500_processes": "processes",
    "default": "defaults",
    "heartbeats_off": "heartbeats off",
}


# --------------------------------------------------------------------------------------------
# Steward's side
# --------------------------------------------------------------------------------------------


STEWARD_SCRIPT = BENCH_DIR / "steward_pipelines.py"


def run_steward(repeats: int, pin: bool = False) -> dict[str, Any]:
    """Run ``steward_pipelines.py`` with Steward's venv (this interpreter) in a fresh working folder and
    return its JSON object: per case ``{"seconds": best, "times": [...]}`` (``{"error": ...}`` on failure).
    """
    cmd = [sys.executable, str(STEWARD_SCRIPT), "--repeats", str(repeats)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    workdir = Path(tempfile.mkdtemp(prefix="steward-bench-pipelines-steward-"))
    try:
        return run_json(pinned(CLIENT_CORE, cmd, pin), env, workdir, timeout=PREFECT_TIMEOUT)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Prefect's side
# --------------------------------------------------------------------------------------------


def prefect_env() -> dict[str, str]:
    """Environment for the Prefect venv: nothing of Steward's venv nor of any Prefect profile leaking in
    (``peer_prefect.py`` sets its own ``PREFECT_*`` settings, with no ``PREFECT_API_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    return env


def prefect_version() -> str | None:
    """The Prefect version in the peer venv, or None if the venv is missing or broken."""
    if not PREFECT_PYTHON.exists():
        return None
    out = subprocess.run(
        [str(PREFECT_PYTHON), "-c", "import importlib.metadata as m; print(m.version('prefect'))"],
        capture_output=True,
        text=True,
        env=prefect_env(),
        timeout=60,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def run_prefect(repeats: int, pin: bool = False, max_wait: float = MAX_WAIT) -> dict[str, Any]:
    """Run ``peer_prefect.py`` in the Prefect venv and return its JSON object (``{"error": ...}`` on failure).

    With ``pin`` the whole process tree (the flows, Prefect's API server, its process pool) is pinned
    to core 0.
    """
    if not PREFECT_PYTHON.exists():
        return {"error": f"no Prefect venv at {PREFECT_VENV}: run `bash benchmarks/setup_peers.sh`"}
    cmd = [str(PREFECT_PYTHON), str(PEER_SCRIPT), "--repeats", str(repeats), "--max-wait", str(max_wait)]
    workdir = Path(tempfile.mkdtemp(prefix="steward-bench-pipelines-prefect-"))
    try:
        return run_json(pinned(CLIENT_CORE, cmd, pin), prefect_env(), workdir, timeout=PREFECT_TIMEOUT)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ok(result: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(result, dict) and "error" not in result and result.get("seconds") is not None


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def prefect_best(case: Case, prefect: dict[str, Any] | None) -> tuple[float, str] | None:
    """Prefect's best figure for ``case`` and what gave it (runner, settings), or None."""
    if not prefect or "error" in prefect:
        return None
    found = [(float(prefect[k]["seconds"]), k) for k in case.prefect if _ok(prefect.get(k))]
    if not found:
        return None
    seconds, key = min(found)
    how = [PREFECT_LABELS[key]] if key in PREFECT_LABELS else []
    if config := prefect[key].get("best_config"):
        how.append(PREFECT_LABELS.get(config, config))
    return seconds, ", ".join(how)


def _steward(case: Case, steward: dict[str, Any]) -> float | None:
    result = steward.get(case.name)
    return float(result["seconds"]) if _ok(result) else None


def ratio(case: Case, steward: dict[str, Any], prefect: dict[str, Any] | None) -> float | None:
    """How many times faster Steward is than Prefect's best on ``case`` (None if either is missing)."""
    s, p = _steward(case, steward), prefect_best(case, prefect)
    return p[0] / s if s and p else None


def goal_met(case: Case, steward: dict[str, Any], prefect: dict[str, Any] | None) -> str:
    """``yes``, ``no`` or ``n/a``; ``yes (no ratio)`` if the time is met but Prefect's figure is missing."""
    s = _steward(case, steward)
    if case.goal is None or s is None:
        return "n/a"
    if s >= case.goal:
        return "no"
    if case.min_ratio is None:
        return "yes"
    r = ratio(case, steward, prefect)
    if r is None:
        return "yes (no ratio)"
    return "yes" if r >= case.min_ratio else "no"


def table_rows(steward: dict[str, Any], prefect: dict[str, Any] | None) -> list[list[str]]:
    """The rows: case | Steward | Prefect best | ratio | goal | met?"""
    rows = []
    for case in CASES:
        s = steward.get(case.name)
        p = prefect_best(case, prefect)
        if _ok(s):
            steward_cell = _fmt_seconds(float(s["seconds"]))
        else:
            steward_cell = "error" if isinstance(s, dict) and "error" in s else "n/a"
        if p is not None:
            prefect_cell = f"{_fmt_seconds(p[0])} ({p[1]})" if p[1] else _fmt_seconds(p[0])
        else:
            prefect_cell = (
                "error" if prefect and any("error" in prefect.get(k, {}) for k in case.prefect) else "n/a"
            )
        rows.append(
            [
                case.label,
                steward_cell,
                prefect_cell,
                fmt_ratio(ratio(case, steward, prefect)),
                case.goal_text,
                goal_met(case, steward, prefect),
            ]
        )
    return rows


def _repeats(result: dict[str, Any]) -> str:
    return ", ".join(_fmt_seconds(t) for t in result.get("times", []))


def notes(results: dict[str, Any]) -> list[str]:
    """What goes under the table: Prefect's start-up and settings, every repeat of both systems."""
    steward, prefect = results.get("steward") or {}, results.get("prefect")
    lines = []
    if prefect and "error" not in prefect:
        lines.append(
            f"- Prefect {prefect.get('version')} (FastAPI {prefect.get('fastapi')}) on its ephemeral local "
            f"API (SQLite in a fresh `PREFECT_HOME`, no `PREFECT_API_URL`, analytics off, log level WARNING, "
            f"no logs sent to the API): `import prefect` {prefect['import']:.2f} s, first flow call (starts "
            f"the API server) {prefect['startup']:.2f} s, not counted below. Thread pool "
            f"`max_workers` {_workers(prefect.get('thread_pool_max_workers'))}, process pool "
            f"{prefect.get('process_pool_max_workers')} on {prefect.get('cpus')} CPUs."
        )
        lines.append(
            "- Prefect 3.8 spends about 1 s of every flow run joining its heartbeat thread (it sleeps in 1 s "
            "steps), so each Prefect case ran with its defaults and with heartbeats off "
            "(`PREFECT_FLOWS_HEARTBEAT_FREQUENCY` None, through `temporary_settings`); the table has the "
            "faster (the process-pool DAG ran with defaults only: one second is noise there)."
        )
        busy = [
            b
            for r in prefect.values()
            if isinstance(r, dict)
            for c in ("default", "heartbeats_off")
            if isinstance(r.get(c), dict)
            for b in r[c].get("busy", [])
        ]
        if busy:
            lines.append(
                "- Before each timed Prefect repeat its process waited (up to "
                f"{results.get('max_wait', MAX_WAIT):.0f} s) for the machine to be at most 15 % busy; "
                f"the busiest start seen: {max(busy):.0%}."
            )
        if warm := prefect.get("dag500_cached_warm"):
            lines.append(
                f"- Prefect's cached DAG: the run that filled the cache took {_fmt_seconds(warm['seconds'])}."
            )
        for key in ("flow_overhead", "chain10", "dag500_threads", "dag500_processes", "dag500_cached_rerun"):
            r = prefect.get(key)
            if not isinstance(r, dict):
                continue
            if "error" in r and not any(isinstance(r.get(c), dict) for c in PREFECT_LABELS):
                lines.append(f"- Prefect `{key}`: error: {r['error'].splitlines()[0]}")
                continue
            parts = []
            for config in ("default", "heartbeats_off"):
                c = r.get(config)
                if isinstance(c, dict):
                    parts.append(
                        f"{PREFECT_LABELS[config]}: "
                        + (f"error: {c['error'].splitlines()[0]}" if "error" in c else _repeats(c))
                    )
            lines.append(f"- Prefect `{key}` repeats: " + "; ".join(parts))
    elif prefect:
        lines.append(f"- Prefect failed: {prefect['error'].splitlines()[0] if prefect['error'] else 'error'}")
    for case in CASES:
        r = steward.get(case.name)
        if isinstance(r, dict) and "error" in r:
            lines.append(f"- Steward `{case.name}`: error: {(str(r['error']).splitlines() or [''])[0]}")
        elif isinstance(r, dict) and "times" in r:
            lines.append(f"- Steward `{case.name}` repeats: {_repeats(r)}")
    return lines


def _workers(n: Any) -> str:
    return "unbounded (one thread per task)" if isinstance(n, int) and n >= 2**31 else str(n)


def print_results(results: dict[str, Any]) -> None:
    """The table on stdout, with the notes under it."""
    version = (results.get("prefect") or {}).get("version") or "(not run)"
    print_table(
        table_rows(results["steward"], results.get("prefect")),
        f"Pipelines: Steward vs Prefect {version}",
        HEADERS,
    )
    print("ratio = how many times faster Steward is than Prefect's best.")
    print("\n".join(notes(results)))


def markdown(results: dict[str, Any]) -> str:
    """The pipelines section of ``docs/benchmarks.md``, between its markers."""
    prefect = results.get("prefect") or {}
    info = results["machine"]
    peers = (
        f"Prefect {prefect['version']} in its own venv (`benchmarks/setup_peers.sh`)"
        if prefect.get("version")
        else "Prefect not run"
    )
    lines = [
        DOCS_BEGIN,
        "## Pipelines: Steward vs Prefect",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{info['commit']}` with:",
        "",
        "```",
        results.get("command", ".venv/bin/python benchmarks/pipelines.py"),
        "```",
        "",
        *markdown_table(table_rows(results["steward"], results.get("prefect")), HEADERS),
        "",
        f"Best of {results['repeats']} runs of the whole pipeline in one process, after a warm-up run. "
        "ratio: how many times faster Steward is than Prefect's best (for the DAG: the faster of Prefect's "
        "thread and process pools; Steward on its `processes` executor). Trivial steps on both sides: "
        "`x + 1` for the chain; for the DAG a source returning 1, 498 steps `x + i` on its output, a sink "
        "summing them.",
        "",
        *notes(results),
        "",
        machine_line(info, peers),
        "",
        "Pinning: every process of both systems on core 0 (`taskset -c 0`)."
        if results.get("pin")
        else "Pinning: none (both systems run process pools; Prefect starts its API server itself).",
        DOCS_END,
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run both systems, print the table, optionally write the JSON results and the docs section."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--repeats", type=int, default=REPEATS, help=f"timed runs per case, best reported ({REPEATS})"
    )
    p.add_argument("--skip-peers", action="store_true", help="run Steward only")
    p.add_argument("--out", type=Path, help="write the raw results to this JSON file")
    p.add_argument(
        "--write-docs", action="store_true", help="update the pipelines section of docs/benchmarks.md"
    )
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)
    p.add_argument("--pin", action="store_true", help="pin every process of both systems to core 0")
    p.add_argument(
        "--max-wait", type=float, default=MAX_WAIT, help="Prefect: seconds to wait for a quiet machine"
    )
    args = p.parse_args(argv)
    pin = args.pin and can_pin()
    if args.pin and not pin:
        print("warning: taskset or core 0 unavailable, running unpinned", file=sys.stderr)

    steward = run_steward(args.repeats, pin=pin)
    if "error" in steward:
        print(f"Steward's side failed: {steward['error']}", file=sys.stderr)
    prefect: dict[str, Any] | None = None
    if not args.skip_peers:
        if prefect_version() is None:
            print(
                f"Prefect venv missing at {PREFECT_VENV}: run `bash benchmarks/setup_peers.sh`.",
                file=sys.stderr,
            )
        else:
            msg = "running Prefect (6-13 minutes on 2 cores, most of it the process-pool DAG) ..."
            print(msg, file=sys.stderr, flush=True)
            prefect = run_prefect(args.repeats, pin=pin, max_wait=args.max_wait)

    info = machine_info(None)
    info.pop("mlflow", None)
    info["prefect"] = (prefect or {}).get("version") or "not run"
    results: dict[str, Any] = {
        "machine": info,
        "repeats": args.repeats,
        "pin": pin,
        "max_wait": args.max_wait,
        "command": shlex.join([".venv/bin/python", "benchmarks/pipelines.py", *(argv or sys.argv[1:])]),
        "steward": steward,
        "steward_version": steward_version(),
        "prefect": prefect,
    }
    print_results(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    if args.write_docs:
        write_docs(markdown(results), args.docs_path, DOCS_BEGIN, DOCS_END, after=DATA_DOCS_END)
        print(f"wrote the pipelines section of {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
