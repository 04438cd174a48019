"""Data benchmark: Steward's ingestion, validation and profiling against pandera, GX Core and pandas.

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/data.py              # full run, 10,000,000 rows (10-15 minutes)
    .venv/bin/python benchmarks/data.py --quick      # smoke run, 200,000 rows, one repeat
    .venv/bin/python benchmarks/data.py --write-docs # full run, then update docs/benchmarks.md

The peers come from their own venvs, made by ``bash benchmarks/setup_peers.sh``: pandas and pandera in
``benchmarks/.peers/pandera`` (which also runs the pandas profile and the pandas read), GX Core in
``benchmarks/.peers/gx``; their side is ``benchmarks/peer_data.py``. Without a venv its column says n/a.
The table and the checks are defined in ``data_setup.py``, the report in ``data_report.py``.

The table is generated once, from a fixed seed, into a Parquet file in a temporary directory that every
case reads: 10,000,000 rows by 20 columns (``id``, a unique int; ``f0``-``f9`` floats, three with nulls;
``i1``-``i4`` ints; ``s0``-``s4`` strings of 10-12 values each, ``s2`` codes like ``AB-1234``, ``s3`` with
nulls). It passes all ten checks, so every system does the whole work. A second file with a known number
of failing rows per check is validated once by each system, to confirm that they count the same failures.

The ten checks (``CHECKS``, written to ``checks.json`` for both sides): ranges on ``f0``, ``f1``, ``f2``,
``f3``, ``i1`` (inclusive, nulls ignored); not-null on ``f4`` and ``s1``; allowed values on ``s0``; unique
``id``; a full-match regex on ``s2``. Steward: ``validate(table, DatasetSchema.from_dict(...))``,
``profile_table(table)``, and ``DataService(platform).ingest(path, "bench", expectations=...)`` on a fresh
SQLite home per repeat (read, validate, Parquet write into the blob store, profile, PII scan, metadata).
Steward runs from ``src/`` as committed at ``--src`` (HEAD by default, exported with ``git archive``), so the
figures belong to the commit they are recorded with; ``--src worktree`` measures uncommitted edits.

Every case runs in a fresh process that loads the data untimed (except the read cases, which time it), then
runs the case ``--repeats`` times (3) and reports the median. Memory is the RSS high-water mark during the
repeats above the RSS once the data is loaded (freed reader buffers are handed back to the OS first, and the
mark is reset through ``/proc/self/clear_refs``), so the data itself is not counted: native DuckDB and Arrow
memory is included, which tracemalloc would miss. The machine may be shared: before each timed repeat the
case process waits (up to ``--max-wait`` seconds) until other work uses at most 15 % of the CPUs, and the
busiest start seen is reported with the figures. Nothing is pinned unless ``--pin`` is given (every system
gets both cores; pandas and pandera use one); Steward's validate and profile also run pinned to one core,
reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
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
    machine_info,
    peak_rss_bytes,
    pinned,
    print_table,
    release_memory,
    reset_peak_rss,
    rss_bytes,
    run_json,
    steward_env,
    steward_version,
    wait_quiet,
    write_docs,
)
from data_report import DOCS_BEGIN, DOCS_END, HEADERS, notes, render_docs, table_rows
from data_setup import BUSY_LIMIT, QUICK_ROWS, ROWS, generate, steward_expectations
from registry import DOCS_END as REGISTRY_DOCS_END

PEER_SCRIPT = BENCH_DIR / "peer_data.py"
PANDERA_VENV = BENCH_DIR / ".peers" / "pandera"
GX_VENV = BENCH_DIR / ".peers" / "gx"

REPEATS = 3
MAX_WAIT = 60.0


# --------------------------------------------------------------------------------------------
# Steward's side: one function per case, run in a fresh subprocess (``--steward-case``)
# --------------------------------------------------------------------------------------------


def _steward_schema(checks: dict[str, Any]) -> Any:
    from steward.data.expectations import DatasetSchema

    return DatasetSchema.from_dict(steward_expectations(checks))


def _steward_counts(report: Any) -> dict[str, int]:
    return {r.column: int(r.failing_rows or 0) for r in report.failures if r.check != "required"}


def _load(path: str) -> tuple[Any, int, int]:
    """The Arrow table, the RSS it added, and the RSS after loading (the high-water mark reset there)."""

    import pyarrow.parquet as pq

    before = rss_bytes()
    table = pq.read_table(path)
    release_memory()
    after = rss_bytes()
    reset_peak_rss()
    return table, after - before, after


_WAIT = {"max": MAX_WAIT}
_BUSY: list[float] = []  # the busy share of the machine seen before each timed repeat


def _quiet() -> None:
    """Before a timed repeat: wait for other work on the machine to calm down; record how busy it was."""
    busy = wait_quiet(_WAIT["max"], BUSY_LIMIT)
    if busy is not None:
        _BUSY.append(round(busy, 3))


def _repeat(repeats: int, call: Callable[[], Any]) -> tuple[list[float], Any]:
    import gc

    times, out = [], None
    for _ in range(repeats):
        out = None
        gc.collect()
        _quiet()
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
    return times, out


def steward_read(data: str, checks: dict[str, Any], repeats: int, workdir: Path) -> dict[str, Any]:
    """Steward's file connector reading the Parquet file into one Arrow table."""
    import gc

    import pyarrow as pa

    from steward.data.connectors import connector_for

    def read() -> Any:
        return pa.concat_tables([b.table for b in connector_for(data).batches()])

    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    times, table = _repeat(repeats, read)
    peak = peak_rss_bytes()
    release_memory()
    data_bytes = rss_bytes() - base
    return {
        "times": times,
        "data_bytes": data_bytes,
        "peak_extra_bytes": max(0, peak - base - data_bytes),
        "arrow_bytes": table.nbytes,
    }


def steward_validate(data: str, checks: dict[str, Any], repeats: int, workdir: Path) -> dict[str, Any]:
    """``validate(table, schema)``; the data must pass."""
    from steward.data.validation import validate

    schema = _steward_schema(checks)
    table, data_bytes, loaded = _load(data)
    times, report = _repeat(repeats, lambda: validate(table, schema))
    if not report.passed:
        raise RuntimeError(f"Steward says the passing data fails: {report.summary()}")
    return {"times": times, "data_bytes": data_bytes, "peak_extra_bytes": max(0, peak_rss_bytes() - loaded)}


def steward_profile(data: str, checks: dict[str, Any], repeats: int, workdir: Path) -> dict[str, Any]:
    """``profile_table(table)``."""
    from steward.data.profile import profile_table

    table, data_bytes, loaded = _load(data)
    times, _ = _repeat(repeats, lambda: profile_table(table))
    return {"times": times, "data_bytes": data_bytes, "peak_extra_bytes": max(0, peak_rss_bytes() - loaded)}


def steward_profile_validate(
    data: str, checks: dict[str, Any], repeats: int, workdir: Path
) -> dict[str, Any]:
    """``validate`` then ``profile_table``, timed together."""
    from steward.data.profile import profile_table
    from steward.data.validation import validate

    schema = _steward_schema(checks)
    table, data_bytes, loaded = _load(data)
    times, _ = _repeat(repeats, lambda: (validate(table, schema), profile_table(table)))
    return {"times": times, "data_bytes": data_bytes, "peak_extra_bytes": max(0, peak_rss_bytes() - loaded)}


def steward_ingest(data: str, checks: dict[str, Any], repeats: int, workdir: Path) -> dict[str, Any]:
    """``DataService.ingest`` of the file into a fresh SQLite home per repeat (its setup untimed)."""

    from steward.config import load_settings
    from steward.data.service import DataService
    from steward.store.platform import Platform

    expectations = steward_expectations(checks)
    arrow_bytes = _arrow_bytes(data)
    times: list[float] = []
    base = 0
    for k in range(repeats):
        platform = Platform.from_settings(load_settings(home=workdir / f"home-{k}"))
        service = DataService(platform)
        release_memory()
        if k == 0:
            base = rss_bytes()
            reset_peak_rss()
        _quiet()
        t0 = time.perf_counter()
        result = service.ingest(data, "bench", expectations=expectations)
        times.append(time.perf_counter() - t0)
        if result.quarantined or len(result.versions) != 1 or result.reused[0]:
            raise RuntimeError(f"ingest did not publish one new version: {result}")
        platform.close()
        shutil.rmtree(workdir / f"home-{k}", ignore_errors=True)
    peak = peak_rss_bytes() - base
    return {
        "times": times,
        "peak_bytes": peak,
        "peak_extra_bytes": peak - arrow_bytes,
        "arrow_bytes": arrow_bytes,
    }


def _arrow_bytes(path: str) -> int:
    """The in-memory size of the file's Arrow table, read in a throwaway subprocess (keeps RSS clean)."""
    code = "import sys, pyarrow.parquet as pq; print(pq.read_table(sys.argv[1]).nbytes)"
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def steward_failing(data: str, checks: dict[str, Any], repeats: int, workdir: Path) -> dict[str, Any]:
    """One validation of the failing file; its failure counts."""
    from steward.data.validation import validate

    schema = _steward_schema(checks)
    table, _, _ = _load(data)
    times, report = _repeat(1, lambda: validate(table, schema))
    return {"times": times, "counts": _steward_counts(report)}


STEWARD_CASES: dict[str, Callable[[str, dict[str, Any], int, Path], dict[str, Any]]] = {
    "read": steward_read,
    "validate": steward_validate,
    "profile": steward_profile,
    "profile_validate": steward_profile_validate,
    "ingest": steward_ingest,
    "failing": steward_failing,
}


def steward_case_main(
    name: str, data: str, checks_path: Path, repeats: int, workdir: Path, max_wait: float
) -> int:
    """Entry point of the ``--steward-case`` subprocess: run one case, print its JSON line."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    checks = json.loads(checks_path.read_text())
    _WAIT["max"] = max_wait
    result = STEWARD_CASES[name](data, checks, repeats, workdir)
    result |= {"case": name, "seconds": statistics.median(result["times"]), "version": steward_version()}
    result["busy"] = _BUSY
    import duckdb
    import pyarrow

    result["versions"] = {"duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__}
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    """What to run, parsed from the command line."""

    quick: bool
    pin: bool
    repeats: int
    max_wait: float
    systems: list[str]
    workdir: Path
    src: Path  # the Steward source tree the cases import (PYTHONPATH)
    commit: str = "unknown"  # what the docs say was measured: a commit, maybe "plus uncommitted src/"
    busy: list[float] = field(default_factory=list)
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


def steward_src_env(home: Path, src: Path) -> dict[str, str]:
    """``steward_env`` with ``src`` (an exported commit's ``src/``, or the repository's) first on the path."""
    env = steward_env(home)
    rest = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and p != str(ROOT / "src")]
    env["PYTHONPATH"] = os.pathsep.join([str(src), *rest])
    return env


def export_src(rev: str, into: Path) -> tuple[Path, str]:
    """Export ``src/`` as committed at ``rev`` into ``into``; return it and the short commit id.

    So the figures belong to the commit they are recorded with, not to whatever is being edited in the
    working tree while the benchmark runs.
    """
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src", commit


def src_dirty() -> bool:
    """Whether ``src/`` has uncommitted changes (so worktree figures belong to no commit)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True
    )
    return out.returncode != 0 or bool(out.stdout.strip())


def peer_env() -> dict[str, str]:
    """Environment for the peer venvs: nothing of Steward's venv leaking in, GX quiet and offline."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    env |= {"GX_ANALYTICS_ENABLED": "false", "TQDM_DISABLE": "1"}
    return env


def peer_python(venv: Path) -> Path | None:
    """The venv's interpreter, or None when ``setup_peers.sh`` has not made it."""
    python = venv / "bin" / "python"
    return python if python.exists() else None


def _describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR: " + (result["error"].splitlines() or [""])[0]
    times = ", ".join(f"{t:.2f}" for t in result["times"])
    memory = f", +{fmt_bytes(max(0, result['peak_extra_bytes']))}" if "peak_extra_bytes" in result else ""
    busy = f", machine busy before repeats: max {max(result['busy']):.0%}" if result.get("busy") else ""
    return f"{result['seconds']:.2f} s median ({times}){memory}{busy}"


def run_case(
    opts: Options, system: str, case: str, data: Path, cmd_prefix: list[str], env: dict[str, str], pin: bool
) -> dict[str, Any]:
    """Run one case in a fresh process; its result (``{"error": ...}`` on failure)."""
    checks = data.parent / "checks.json"
    repeats = 1 if case.startswith("failing") else opts.repeats
    label = f"{system} {case}{' (1 core)' if pin and not opts.pin else ''}"
    opts.log(f"{label:<34} ...")
    workdir = opts.workdir / "cases" / f"{system}-{case}"
    args = ["--data", str(data), "--checks", str(checks), "--repeats", str(repeats)]
    args += ["--max-wait", str(opts.max_wait)]
    result = run_json(pinned(CLIENT_CORE, [*cmd_prefix, *args], pin), env, workdir)
    opts.busy += result.get("busy") or []
    opts.log(f"{label:<34} {_describe(result)}")
    return result


def run_all(opts: Options, data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every case of every available system, keyed ``system:case``."""
    results: dict[str, dict[str, Any]] = {}
    passing, failing = data_dir / "data.parquet", data_dir / "failing.parquet"
    if "steward" in opts.systems:
        me = [str(STEWARD_PYTHON), str(Path(__file__).resolve())]
        env = steward_src_env(opts.workdir / "steward-home", opts.src)
        for case in ("read", "validate", "profile", "profile_validate", "ingest", "failing"):
            cmd = [*me, "--steward-case", case, "--workdir", str(opts.workdir / "cases" / f"steward-{case}")]
            source = failing if case == "failing" else passing
            results[f"steward:{case}"] = run_case(opts, "steward", case, source, cmd, env, opts.pin)
        if can_pin() and not opts.pin:  # the same work on one core: what DuckDB's second thread gives
            for case in ("validate", "profile"):
                cmd = [
                    *me,
                    "--steward-case",
                    case,
                    "--workdir",
                    str(opts.workdir / "cases" / f"steward1-{case}"),
                ]
                results[f"steward1:{case}"] = run_case(opts, "steward", case, passing, cmd, env, True)
    peers = (
        ("pandera", PANDERA_VENV, ("read", "validate_pandera", "profile_pandas", "failing_pandera")),
        ("gx", GX_VENV, ("validate_gx", "failing_gx")),
    )
    for system, venv, cases in peers:
        python = peer_python(venv)
        if system not in opts.systems or python is None:
            continue
        for case in cases:
            cmd = [str(python), str(PEER_SCRIPT), "--case", case]
            source = failing if case.startswith("failing") else passing
            results[f"{system}:{case}"] = run_case(opts, system, case, source, cmd, peer_env(), opts.pin)
    return results


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The harness's command line (plus the hidden subprocess modes)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help=f"{QUICK_ROWS:,} rows and one repeat, for a smoke run"
    )
    p.add_argument("--write-docs", action="store_true", help="update the data section of docs/benchmarks.md")
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)
    p.add_argument("--only", choices=["steward", "pandera", "gx"], help="run one system only")
    p.add_argument("--repeats", type=int, help=f"repeats per case (default {REPEATS}; --quick: 1)")
    p.add_argument("--pin", action="store_true", help="pin every process to core 0")
    p.add_argument(
        "--max-wait", type=float, default=MAX_WAIT, help="seconds to wait for a quiet machine before a repeat"
    )
    p.add_argument(
        "--src",
        default="HEAD",
        help="the commit whose src/ Steward's cases run (exported with git archive; default HEAD), "
        "or 'worktree' for the repository's src/ as it is now, uncommitted edits included",
    )
    p.add_argument("--json", type=Path, help="also write the raw results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (data, stores)")
    # Subprocess modes.
    p.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--steward-case", choices=sorted(STEWARD_CASES), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--checks", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and optionally update the docs."""
    args = parse_args(argv)
    if args.generate:
        print(json.dumps(generate(args.generate, args.rows or ROWS)), flush=True)
        return 0
    if args.steward_case:
        if not (args.data and args.checks and args.workdir):
            raise SystemExit("--steward-case needs --data, --checks and --workdir")
        repeats = args.repeats or REPEATS
        return steward_case_main(
            args.steward_case, args.data, args.checks, repeats, args.workdir, args.max_wait
        )

    if args.write_docs and (args.quick or args.only):
        raise SystemExit("--write-docs needs a full run: drop --quick and --only")
    systems = ["steward", "pandera", "gx"] if args.only is None else [args.only]
    for system, venv in (("pandera", PANDERA_VENV), ("gx", GX_VENV)):
        if system in systems and peer_python(venv) is None:
            print(
                f"{venv} missing: run `bash benchmarks/setup_peers.sh` to compare with {system}.",
                file=sys.stderr,
            )
    pin = args.pin and can_pin()
    if args.pin and not pin:
        print("warning: taskset or cores 0 and 1 unavailable, running unpinned", file=sys.stderr)
    repeats = args.repeats or (1 if args.quick else REPEATS)
    rows_n = QUICK_ROWS if args.quick else ROWS

    tmp = Path(tempfile.mkdtemp(prefix="steward-bench-data-"))
    if args.src == "worktree":
        commit = machine_info(None)["commit"]
        src, label = (
            ROOT / "src",
            f"`{commit}`" + (" plus uncommitted changes in src/" if src_dirty() else ""),
        )
    else:
        src, commit = export_src(args.src, tmp / "steward-src")
        label = f"`{commit}`"
    opts = Options(args.quick, pin, repeats, args.max_wait, systems, tmp, src, label)
    opts.log(f"work directory: {tmp}; Steward from {src} ({label})")
    try:
        opts.log(f"generating {rows_n:,} rows ...")
        t0 = time.perf_counter()
        gen_cmd = [
            str(STEWARD_PYTHON),
            str(Path(__file__).resolve()),
            "--generate",
            str(tmp / "data"),
            "--rows",
            str(rows_n),
        ]
        info = run_json(gen_cmd, steward_src_env(tmp / "steward-home", opts.src), tmp)
        if "error" in info:
            raise SystemExit(f"generating the data failed: {info['error']}")
        opts.log(f"generated in {time.perf_counter() - t0:.0f} s: {fmt_bytes(info['file_bytes'])} of Parquet")
        results = run_all(opts, tmp / "data")
    finally:
        if args.keep:
            opts.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = table_rows(results)
    title = f"Data: Steward vs pandera, Great Expectations and pandas ({rows_n:,} rows)"
    if args.quick:
        title += " (QUICK run, not for the record)"
    print_table(rows, title, HEADERS)
    print("ratio = how many times faster (memory: smaller) Steward is.")
    print("\n".join(ln for ln in notes(results, info, opts) if ln))
    for key, res in results.items():
        if "error" in res:
            print(f"\n{key} failed:\n{res['error']}", file=sys.stderr)

    mach = machine_info(None)
    if args.json:
        payload = {"machine": mach, "data": info, "quick": args.quick, "results": results}
        args.json.write_text(json.dumps(payload, indent=2))
    if args.write_docs:
        command = shlex.join(
            [".venv/bin/python", "benchmarks/data.py", *(argv if argv is not None else sys.argv[1:])]
        )
        section = render_docs(rows, results, info, mach, command, opts)
        write_docs(section, args.docs_path, DOCS_BEGIN, DOCS_END, after=REGISTRY_DOCS_END)
        print(f"wrote the data section of {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
