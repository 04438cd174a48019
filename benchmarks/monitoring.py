"""Drift benchmark: Steward's drift report against Evidently's ``DataDriftPreset`` (and NannyML's).

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/monitoring.py                          # small: 100,000 rows a table
    .venv/bin/python benchmarks/monitoring.py --scale full             # 1,000,000 rows a table
    .venv/bin/python benchmarks/monitoring.py --scale full --write-docs   # then update docs/benchmarks.md

The peers run in their own venvs, ``benchmarks/.peers/evidently`` and ``benchmarks/.peers/nannyml``
(``bash benchmarks/setup_peers.sh evidently nannyml``); their side is ``benchmarks/monitoring_peer.py``.
Without a venv its figures say n/a. The data (``monitoring_data.py``): a reference and a current table of
50 columns (40 numeric, 10 categorical of 8 values), the current one with 10 numeric columns shifted by
+0.3 standard deviations and 3 categorical distributions changed. It is generated once per scale into
``benchmarks/.data/monitoring/<scale>/`` and reused.

The cases, each in a fresh process:

- drift report: Steward's ``drift(reference, current)`` on two Arrow tables; Evidently's
  ``Report([DataDriftPreset()], include_tests=True).run(...)`` on two pandas DataFrames; NannyML's
  ``UnivariateDriftCalculator`` fitted on the reference and run on the current table (one chunk each).
  The tables are read before the timing (the read is timed apart). Time: the report alone (median of the
  repeats). Memory: the RSS high-water mark during the report above the RSS with the data loaded (freed
  reader buffers handed back to the OS first, the mark reset through ``/proc/self/clear_refs``). The
  columns each flags are checked against the 13 that changed.
- 30-day report: the reference summarised once (``reference_summary``) and the current table cut into
  720 hourly windows, each summarised against it (``summarize``; both untimed, reported apart); then
  ``merge`` of the 720 window summaries alone, and ``compare(reference, merge(windows))``, timed. Also
  from their stored JSON form (``json.loads`` + ``TableSummary.from_json`` of each window, merge, compare).

Steward runs from ``src/`` as committed at ``--src`` (HEAD by default, exported with ``git archive``);
``--src worktree`` measures uncommitted edits. Before each timed repeat the case waits (up to
``--max-wait`` seconds) until other work uses at most 15 % of the CPUs; the busiest start is reported.
Nothing is pinned: each system may use both cores (Evidently and NannyML use one); Steward's report also
runs pinned to one core (``taskset -c 0``), reported apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    CLIENT_CORE,
    DOCS_PATH,
    ROOT,
    STEWARD_PYTHON,
    can_pin,
    fmt_bytes,
    fmt_ratio,
    machine_info,
    machine_line,
    markdown_table,
    peak_rss_bytes,
    pinned,
    print_table,
    release_memory,
    reset_peak_rss,
    rss_bytes,
    run_json,
    steward_version,
    write_docs,
)
from data import export_src, peer_env, src_dirty, steward_src_env
from monitoring_data import BUSY_LIMIT, SCALES, generate, is_fresh, manifest, timed, verdict

DOCS_BEGIN = "<!-- BEGIN monitoring benchmark (written by benchmarks/monitoring.py --write-docs) -->"
DOCS_END = "<!-- END monitoring benchmark -->"
# The block goes after the first of these that docs/benchmarks.md has (else at the end).
DOCS_AFTER = ("<!-- END features benchmark -->", "<!-- END serving benchmark -->")
HEADERS = ["case", "Steward", "Evidently", "ratio", "Steward goal", "met?"]
DATA_ROOT = BENCH_DIR / ".data" / "monitoring"
PEER_SCRIPT = BENCH_DIR / "monitoring_peer.py"
PEER_VENVS = {"evidently": BENCH_DIR / ".peers" / "evidently", "nannyml": BENCH_DIR / ".peers" / "nannyml"}
DEFAULT_JSON = BENCH_DIR / "results" / "monitoring.json"
REPEATS = 3
MAX_WAIT = 60.0
CASE_TIMEOUT = 3 * 3600.0
WINDOWS = 720  # hourly windows over 30 days
GOAL_RATIO = 30.0
GOAL_SECONDS = 7.0
GOAL_MEMORY_SHARE = 1 / 3
GOAL_30DAY_SECONDS = 1.0

# --------------------------------------------------------------------------------------------
# Steward's side: one function per case, run in a fresh subprocess (``--steward-case``)
# --------------------------------------------------------------------------------------------

_BUSY: list[float] = []  # the busy share of the CPUs before each timed repeat
_OTHERS: list[float] = []  # the share other processes used during each


def _timed(repeats: int, max_wait: float, call: Callable[[], Any]) -> tuple[list[float], Any]:
    return timed(repeats, max_wait, call, _BUSY, _OTHERS)


def _load(data: Path) -> tuple[Any, Any, float, int, int]:
    """Both Arrow tables, the load time, the RSS they added and the RSS with them (high-water mark reset)."""
    import pyarrow.parquet as pq

    info = manifest(data)
    before = rss_bytes()
    t0 = time.perf_counter()
    ref = pq.read_table(data / info["reference"])
    cur = pq.read_table(data / info["current"])
    load_s = time.perf_counter() - t0
    release_memory()
    loaded = rss_bytes()
    reset_peak_rss()
    return ref, cur, load_s, loaded - before, loaded


def steward_drift(data: Path, repeats: int, max_wait: float) -> dict[str, Any]:
    """``drift(reference, current)`` on the two Arrow tables."""
    from steward.monitoring.drift import drift

    ref, cur, load_s, data_bytes, loaded = _load(data)
    times, report = _timed(repeats, max_wait, lambda: drift(ref, cur))
    peak = peak_rss_bytes()
    return {
        "load_s": load_s,
        "times": times,
        "data_bytes": data_bytes,
        "rss_loaded": loaded,
        "peak_rss": peak,
        "peak_extra_bytes": peak - loaded,
        "flagged": sorted(report.drifted_columns),
        "scores": {f.column: f.statistic for f in report.features},
        "methods": sorted({f"{f.test} ({f.kind}, threshold {f.threshold:g})" for f in report.features}),
    }


def steward_windows(data: Path, repeats: int, max_wait: float) -> dict[str, Any]:
    """A 30-day report from 720 hourly window summaries: merge, compare, and both from stored JSON."""
    from steward.monitoring.drift import compare
    from steward.monitoring.models import TableSummary
    from steward.monitoring.summaries import merge, reference_summary, summarize

    ref, cur, load_s, _, _ = _load(data)
    t0 = time.perf_counter()
    ref_summary = reference_summary(ref)
    reference_s = time.perf_counter() - t0
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    step = -(-cur.num_rows // WINDOWS)  # rows per window, rounded up
    t0 = time.perf_counter()
    windows = [
        summarize(
            cur.slice(i * step, step),
            ref_summary,
            start=start + dt.timedelta(hours=i),
            end=start + dt.timedelta(hours=i + 1),
        )
        for i in range(WINDOWS)
    ]
    summarize_s = time.perf_counter() - t0
    del ref, cur
    release_memory()
    stored = [json.dumps(w.to_json(compact=True)) for w in windows]  # as monitoring_windows keeps them

    def from_stored() -> Any:
        return compare(
            ref_summary, merge([TableSummary.from_json(json.loads(s), like=ref_summary) for s in stored])
        )

    merge_times, merged = _timed(repeats, max_wait, lambda: merge(windows))
    compare_times, report = _timed(repeats, max_wait, lambda: compare(ref_summary, merge(windows)))
    stored_times, stored_report = _timed(repeats, max_wait, from_stored)
    if sorted(stored_report.drifted_columns) != sorted(report.drifted_columns):
        raise RuntimeError("the report from stored summaries differs from the one from live summaries")
    return {
        "load_s": load_s,
        "windows": len(windows),
        "rows_per_window": step,
        "merged_rows": merged.rows,
        "reference_summary_s": reference_s,
        "summarize_s": summarize_s,
        "stored_bytes": sum(len(s) for s in stored),
        "merge_times": merge_times,
        "times": compare_times,
        "stored_times": stored_times,
        "flagged": sorted(report.drifted_columns),
    }


STEWARD_CASES: dict[str, Callable[[Path, int, float], dict[str, Any]]] = {
    "drift": steward_drift,
    "windows": steward_windows,
}


def steward_case_main(name: str, data: Path, repeats: int, max_wait: float) -> int:
    """Entry point of the ``--steward-case`` subprocess: run one case, print its JSON line."""
    import numpy
    import pyarrow

    result = STEWARD_CASES[name](data, repeats, max_wait)
    result |= {
        "case": name,
        "seconds": statistics.median(result["times"]),
        "version": steward_version(),
        "versions": {"pyarrow": pyarrow.__version__, "numpy": numpy.__version__},
        "busy": _BUSY,
        "others": _OTHERS,
    }
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    """What to run, parsed from the command line."""

    scale: str
    repeats: int
    peer_repeats: int
    max_wait: float
    systems: list[str]
    workdir: Path
    src: Path  # the Steward source tree the cases import (PYTHONPATH)
    commit: str = "unknown"  # what the docs say was measured: a commit, maybe "plus uncommitted src/"
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


def _describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR: " + str(result["error"]).partition("\n")[0]
    times = ", ".join(f"{t:.3g}" for t in result["times"])
    memory = f", +{fmt_bytes(max(0, result['peak_extra_bytes']))}" if "peak_extra_bytes" in result else ""
    flagged = result.get("verdict", {})
    check = "" if not flagged else (" exact" if flagged["exact"] else " MISMATCH")
    return f"{result['seconds']:.3g} s median ({times}){memory}, {len(result['flagged'])} flagged{check}"


def run_case(
    opts: Options, label: str, cmd: list[str], env: dict[str, str], truth: list[str]
) -> dict[str, Any]:
    """Run one case in a fresh process; its result (``{"error": ...}`` on failure) with its wall time."""
    opts.log(f"{label:<28} ...")
    t0 = time.perf_counter()
    result = run_json(cmd, env, opts.workdir / "cases" / label.replace(" ", "-"), timeout=CASE_TIMEOUT)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    if "error" not in result:
        result["verdict"] = verdict(result["flagged"], truth)
    opts.log(f"{label:<28} {_describe(result)} (process {result['wall_s']:.0f} s)")
    return result


def ensure_data(opts: Options) -> tuple[Path, dict[str, Any]]:
    """The scale's tables, generated (in a subprocess, so this process stays small) unless cached."""
    data = DATA_ROOT / opts.scale
    rows = SCALES[opts.scale]
    if not is_fresh(data, rows):
        opts.log(f"generating {rows:,} rows a table into {data} ...")
        cmd = [
            str(STEWARD_PYTHON),
            str(Path(__file__).resolve()),
            "--generate",
            str(data),
            "--rows",
            str(rows),
        ]
        info = run_json(cmd, peer_env(), ROOT)
        if "error" in info:
            raise SystemExit(f"generating the data failed: {info['error']}")
        opts.log(f"generated in {info['generated_s']:.0f} s: {fmt_bytes(info['file_bytes'])} of Parquet")
    return data, manifest(data)


def run_all(opts: Options, data: Path, truth: list[str]) -> dict[str, dict[str, Any]]:
    """Every case of every available system, keyed ``system:case``."""
    results: dict[str, dict[str, Any]] = {}
    common = ["--data", str(data), "--max-wait", str(opts.max_wait)]
    if "steward" in opts.systems:
        me = [str(STEWARD_PYTHON), str(Path(__file__).resolve())]
        env = steward_src_env(opts.workdir / "steward-home", opts.src)
        steward = [*me, *common, "--repeats", str(opts.repeats), "--steward-case"]
        results["steward:drift"] = run_case(opts, "steward drift", [*steward, "drift"], env, truth)
        if can_pin():  # the same report on one core: what Steward's threads give
            cmd = pinned(CLIENT_CORE, [*steward, "drift"], True)
            results["steward1:drift"] = run_case(opts, "steward drift (1 core)", cmd, env, truth)
        results["steward:windows"] = run_case(opts, "steward 30-day", [*steward, "windows"], env, truth)
    for system, venv in PEER_VENVS.items():
        python = venv / "bin" / "python"
        if system not in opts.systems:
            continue
        if not python.exists():
            opts.log(f"{system}: {venv} missing (bash benchmarks/setup_peers.sh {system}), skipped")
            continue
        cmd = [str(python), str(PEER_SCRIPT), "--case", system, *common, "--repeats", str(opts.peer_repeats)]
        results[f"{system}:drift"] = run_case(opts, f"{system} drift", cmd, peer_env(), truth)
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ok(result: dict[str, Any] | None) -> bool:
    return result is not None and "error" not in result


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def _flags(result: dict[str, Any] | None) -> str:
    if not _ok(result) or result is None:
        return "n/a"
    v = result["verdict"]
    if v["exact"]:
        return f"{len(v['flagged'])}, the changed ones"
    missed, extra = ", ".join(v["missed"]) or "none", ", ".join(v["extra"]) or "none"
    return f"{len(v['flagged'])}: missed {missed}; extra {extra}"


def _same_flags(steward: dict[str, Any] | None, peer: dict[str, Any] | None) -> bool | None:
    """Whether Steward flagged exactly the changed columns (and, when the peer ran, the same as it)."""
    if not _ok(steward) or steward is None:
        return None
    exact = bool(steward["verdict"]["exact"])
    return exact and (not _ok(peer) or peer is None or set(peer["flagged"]) == set(steward["flagged"]))


def table_rows(results: dict[str, dict[str, Any]], info: dict[str, Any]) -> list[list[str]]:
    """The rows of the result table: case | Steward | Evidently | ratio | Steward goal | met?"""
    st, ev, win = results.get("steward:drift"), results.get("evidently:drift"), results.get("steward:windows")
    st_ok, ev_ok = _ok(st), _ok(ev)
    s_sec = st["seconds"] if st_ok and st else None
    e_sec = ev["seconds"] if ev_ok and ev else None
    ratio = e_sec / s_sec if s_sec and e_sec else None
    s_mem = max(0, st["peak_extra_bytes"]) if st_ok and st else None
    e_mem = max(0, ev["peak_extra_bytes"]) if ev_ok and ev else None
    n = info["rows"]
    rows = [
        [
            f"drift report, {n:,} rows x 50 columns (reference and current)",
            _s(s_sec),
            _s(e_sec),
            fmt_ratio(ratio),
            f"≥ {GOAL_RATIO:.0f}x faster than Evidently (under ~{GOAL_SECONDS:.0f} s)",
            _met(None if ratio is None else ratio >= GOAL_RATIO),
        ],
        [
            "memory beyond the data during the report",
            fmt_bytes(s_mem),
            fmt_bytes(e_mem),
            fmt_ratio(e_mem / s_mem) if s_mem and e_mem else "n/a",
            "≤ 1/3 of Evidently's",
            _met(None if s_mem is None or e_mem is None else s_mem <= e_mem * GOAL_MEMORY_SHARE),
        ],
        [
            f"columns flagged ({len(info['drifted'])} changed)",
            _flags(st),
            _flags(ev),
            "",
            f"the same {len(info['drifted'])} columns",
            _met(_same_flags(st, ev)),
        ],
    ]
    if _ok(win) and win is not None:
        total, stored = win["seconds"], statistics.median(win["stored_times"])
        rows += [
            [
                f"30-day report from {win['windows']} hourly summaries: compare(reference, merge(windows))",
                _s(total),
                "n/a",
                "",
                f"< {GOAL_30DAY_SECONDS:.0f} s",
                _met(total < GOAL_30DAY_SECONDS),
            ],
            [f"merge of the {win['windows']} summaries alone (timed apart)",
             _s(statistics.median(win["merge_times"])), "n/a", "", "none (context)", "n/a"],
            [
                f"30-day report from the {win['windows']} summaries stored as JSON (decode, merge, compare)",
                _s(stored),
                "n/a",
                "",
                f"< {GOAL_30DAY_SECONDS:.0f} s",
                _met(stored < GOAL_30DAY_SECONDS),
            ],
            ["30-day report: columns flagged", _flags(win), "n/a", "", f"the same {len(info['drifted'])}",
             _met(win["verdict"]["exact"])],
        ]  # fmt: skip
    s_load = st["load_s"] if st_ok and st else None
    e_load = ev["load_s"] if ev_ok and ev else None
    rows.append(
        [
            "reading both Parquet files (not in the report's time)",
            _s(s_load) + " (Arrow)",
            _s(e_load) + " (pandas)",
            fmt_ratio(e_load / s_load) if s_load and e_load else "n/a",
            "none (context)",
            "n/a",
        ]
    )
    return rows


def notes(results: dict[str, dict[str, Any]], info: dict[str, Any], opts: Options) -> list[str]:
    """The lines under the table."""
    r = results.get
    st, ev, nml = r("steward:drift"), r("evidently:drift"), r("nannyml:drift")
    st1, win = r("steward1:drift"), r("steward:windows")
    out = [
        f"Data (`benchmarks/monitoring_data.py`, seed {info['seed']}): two tables of {info['rows']:,} rows, "
        "40 float64 columns (normal, log-normal, uniform, exponential and gamma in turn, each with its own "
        "location and scale) and 10 string columns of 8 values with skewed probabilities; in the current "
        f"table {', '.join(f'`{c}`' for c in info['shifted_numeric'])} are shifted by "
        f"+{info['shift_sigmas']} standard deviations "
        f"and the probabilities of {', '.join(f'`{c}`' for c in info['changed_categorical'])} move one value "
        f"along (Jensen-Shannon distance 0.22). Both tables: {fmt_bytes(info['file_bytes'])} of Parquet, "
        f"{fmt_bytes(info['arrow_bytes'])} of Arrow buffers"
        + (
            f"; once read they add {fmt_bytes(st['data_bytes'])} of RSS as Arrow tables"
            if _ok(st) and st
            else ""
        )
        + (f", {fmt_bytes(ev['data_bytes'])} as pandas DataFrames" if _ok(ev) and ev else "")
        + ".",
        "Steward: `steward.monitoring.drift.drift(reference, current)` on the Arrow tables, defaults"
        + (f" ({'; '.join(st['methods'])})" if _ok(st) and st else "")
        + ". Evidently: `Report([DataDriftPreset()], include_tests=True).run(current_data=cur, "
        "reference_data=ref)` on pandas DataFrames, every default"
        + (f" ({'; '.join(ev['methods'])})" if _ok(ev) and ev else "")
        + "; the verdicts are its per-column `ValueDrift` tests (FAIL = drift), read from `snapshot.dict()` "
        "after the timing.",
        "Time: the report alone, the data already in memory; "
        f"Steward the median of {opts.repeats} repeats in one process, the peers {opts.peer_repeats} "
        "repeat(s). Memory: the RSS high-water mark during the report above the RSS with the data loaded "
        "(freed reader buffers handed back first, the mark reset through `/proc/self/clear_refs`), so the "
        "tables themselves are not counted; native (Arrow, numpy) memory is.",
    ]
    if _ok(st) and st:
        out.append(f"Steward's repeats: {', '.join(_s(t) for t in st['times'])}.")
    if _ok(st1) and st1:
        out.append(
            f"Steward's report on one core (`taskset -c {CLIENT_CORE}`): {_s(st1['seconds'])}"
            + (f", {fmt_ratio(ev['seconds'] / st1['seconds'])} Evidently's speed" if _ok(ev) and ev else "")
            + f", +{fmt_bytes(max(0, st1['peak_extra_bytes']))}. The table's figure lets Steward use both "
            "cores; Evidently uses one."
        )
    if _ok(nml) and nml:
        out.append(
            f"NannyML {nml['version']} (`UnivariateDriftCalculator`, one chunk per table, fit and calculate "
            "timed; Wasserstein divided by the reference's standard deviation and Jensen-Shannon, both held "
            f"to 0.1 as Evidently does): {_s(nml['seconds'])}, +{fmt_bytes(max(0, nml['peak_extra_bytes']))} "
            f"beyond the data, flagged {_flags(nml)}"
            + (f"; Steward is {fmt_ratio(nml['seconds'] / st['seconds'])} faster" if _ok(st) and st else "")
            + "."
        )
    elif nml is not None:
        out.append("NannyML: failed (see the JSON).")
    else:
        out.append("NannyML: not run (its venv is missing: `bash benchmarks/setup_peers.sh nannyml`).")
    if _ok(win) and win:
        out.append(
            "30-day report: the reference summarised once (`reference_summary`, "
            f"{_s(win['reference_summary_s'])}), the current table cut into {win['windows']} windows of "
            f"{win['rows_per_window']:,} rows, each counted into the reference's bins with `summarize` "
            f"({_s(win['summarize_s'])} for all, untimed in the row); stored as JSON they take "
            f"{fmt_bytes(win['stored_bytes'])}. Timed: "
            f"`compare(ref, merge(windows))`, median of {len(win['times'])} repeats; the stored variant adds "
            "`json.loads` and `TableSummary.from_json` of every window."
        )
    if _ok(ev) and ev:
        out.append(f"Evidently's process ran {ev['wall_s']:.0f} s in all (imports, reading, report, result).")
    out.append(load_line(results, opts))
    for key, res in results.items():
        if not _ok(res):
            out.append(f"{key}: failed ({res['error'].splitlines()[0] if res['error'] else 'no output'}).")
    return out


LABELS = {
    "steward:drift": "Steward's report",
    "steward1:drift": "Steward's on one core",
    "steward:windows": "the 30-day cases",
    "evidently:drift": "Evidently's report",
    "nannyml:drift": "NannyML's",
}


def load_line(results: dict[str, dict[str, Any]], opts: Options) -> str:
    """How busy other work kept the machine before and during the timed calls, per case."""
    during = [
        f"{label} {max(res['others']):.0%}"
        for key, label in LABELS.items()
        if _ok(res := results.get(key)) and res and res.get("others")
    ]
    crowded = [
        f"{label} ({max(res['busy']):.0%})"
        for key, label in LABELS.items()
        if _ok(res := results.get(key)) and res and max(res.get("busy") or [0]) > BUSY_LIMIT
    ]
    text = (
        f"This machine is shared. Before each timed repeat the case waited (up to {opts.max_wait:.0f} s) for "
        f"other work to drop below {BUSY_LIMIT:.0%} of the CPUs; "
        + (f"it had not for {', '.join(crowded)}. " if crowded else "it always had. ")
        + (
            "The most of both CPUs that other processes used during a timed call: " + ", ".join(during) + "."
            if during
            else ""
        )
    )
    return text.rstrip()


def _peer_versions(results: dict[str, dict[str, Any]]) -> str:
    parts = []
    for system, name in (("evidently", "Evidently"), ("nannyml", "NannyML")):
        res = results.get(f"{system}:drift")
        if _ok(res) and res:
            v = res["versions"]
            parts.append(
                f"{name} {res['version']} (pandas {v['pandas']}, numpy {v['numpy']}, scipy {v['scipy']})"
            )
    peers = " and ".join(parts) or "no peer"
    return f"{peers} in their own venvs (`benchmarks/setup_peers.sh`)"


def render_docs(
    rows: list[list[str]],
    results: dict[str, dict[str, Any]],
    info: dict[str, Any],
    command: str,
    opts: Options,
) -> str:
    """The monitoring section of ``docs/benchmarks.md``, between its markers."""
    lines = [
        DOCS_BEGIN,
        "## Monitoring: Steward vs Evidently (and NannyML)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit {opts.commit} with:",
        "",
        "```",
        command,
        "```",
        "",
        *markdown_table(rows, HEADERS),
        "",
        "ratio: how many times faster Steward is than Evidently (for memory: how many times less it needs).",
        "",
        *(f"- {n}" for n in notes(results, info, opts)),
        "",
        machine_line(machine_info(None), _peer_versions(results)),
        DOCS_END,
    ]
    return "\n".join(lines) + "\n"


def _docs_after(path: Path) -> str | None:
    text = path.read_text() if path.exists() else ""
    return next((m for m in DOCS_AFTER if m in text), None)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command line (plus the hidden subprocess modes)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--scale", choices=sorted(SCALES), default="small", help="small: 100,000 rows; full: 1,000,000"
    )
    p.add_argument(
        "--systems", default="steward,evidently,nannyml", help="comma-separated: steward,evidently,nannyml"
    )
    p.add_argument(
        "--repeats", type=int, default=REPEATS, help=f"Steward's repeats per case (default {REPEATS})"
    )
    p.add_argument("--peer-repeats", type=int, default=1, help="the peers' repeats (default 1)")
    p.add_argument(
        "--max-wait", type=float, default=MAX_WAIT, help="seconds to wait for a quiet machine before a repeat"
    )
    p.add_argument(
        "--src",
        default="HEAD",
        help="the commit whose src/ Steward's cases run (exported with git archive; default HEAD), "
        "or 'worktree' for the repository's src/ as it is now, uncommitted edits included",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"raw results (default {DEFAULT_JSON})")
    p.add_argument(
        "--write-docs",
        nargs="?",
        type=Path,
        const=DOCS_PATH,
        help="update the monitoring section of this docs page",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    # Subprocess modes.
    p.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--steward-case", choices=sorted(STEWARD_CASES), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON and optionally the docs section."""
    args = parse_args(argv)
    if args.generate:
        print(json.dumps(generate(args.generate, args.rows or SCALES["small"])), flush=True)
        return 0
    if args.steward_case:
        if not args.data:
            raise SystemExit("--steward-case needs --data")
        return steward_case_main(args.steward_case, args.data, args.repeats, args.max_wait)
    if args.write_docs and args.scale != "full":
        raise SystemExit("--write-docs needs --scale full")

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="steward-bench-monitoring-"))
    if args.src == "worktree":
        commit = machine_info(None)["commit"]
        src, label = (
            ROOT / "src",
            f"`{commit}`" + (" plus uncommitted changes in src/" if src_dirty() else ""),
        )
    else:
        src, commit = export_src(args.src, tmp / "steward-src")
        label = f"`{commit}`"
    systems = [s for s in args.systems.split(",") if s]
    opts = Options(args.scale, args.repeats, args.peer_repeats, args.max_wait, systems, tmp, src, label)
    opts.log(f"work directory: {tmp}; Steward from {src} ({label})")
    try:
        data, info = ensure_data(opts)
        results = run_all(opts, data, info["drifted"])
    finally:
        if args.keep:
            opts.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = table_rows(results, info)
    title = f"Drift: Steward vs Evidently ({info['rows']:,} rows a table)"
    if args.scale != "full":
        title += " (small scale: the goals are for --scale full)"
    print_table(rows, title, HEADERS)
    print("ratio = how many times faster (memory: smaller) Steward is.")
    print("\n".join(f"- {n}" for n in notes(results, info, opts)))
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    payload = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": total,
        "machine": machine_info(None),
        "commit": label,
        "scale": args.scale,
        "data": info,
        "rows": rows,
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"raw results: {args.json}")
    if args.write_docs:
        command = shlex.join(
            [".venv/bin/python", "benchmarks/monitoring.py", *(argv if argv is not None else sys.argv[1:])]
        )
        section = render_docs(rows, results, info, command, opts)
        write_docs(section, args.write_docs, DOCS_BEGIN, DOCS_END, after=_docs_after(args.write_docs))
        print(f"wrote the monitoring section of {args.write_docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
