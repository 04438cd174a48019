"""Registry benchmark: Steward against MLflow on the same scikit-learn model, the same way.

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/registry.py              # full run (2-3 minutes, most of it MLflow's)
    .venv/bin/python benchmarks/registry.py --quick      # smoke run, every N shrunk
    .venv/bin/python benchmarks/registry.py --write-docs # full run, then update docs/benchmarks.md

MLflow comes from its own venv, made by ``bash benchmarks/setup_peers.sh``; without it only
Steward's column is filled. Its side is ``benchmarks/peer_mlflow_registry.py``, which runs in that venv.

The model is ``make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))`` fitted on
scikit-learn's breast-cancer frame, with a signature inferred from the frame and ``predict_proba``'s
output, built in each process before anything is timed. Every case runs in a fresh subprocess pinned
to core 0 (``taskset -c 0``) against its own embedded store in a fresh temporary directory (MLflow:
SQLite tracking and registry plus local artifacts; Steward: ``STEWARD_HOME``). Each process first
registers a throwaway model ``warmup`` the default way, so imports (Steward's skops pulls in torch),
store creation and per-process caches are never timed; that first registration is reported apart.

Cases (medians):

- ``register_default``: one registered version with requirements captured, in a run started before
  the timing. Steward: ``steward.register_model("bench", model, signature=sig,
  predict_fn="predict_proba")`` (requirements pinned from what is installed). MLflow:
  ``mlflow.sklearn.log_model(model, name="model", signature=sig, registered_model_name="bench")``
  with its default requirement inference.
- ``register_given_requirements``: the same, with MLflow given ``pip_requirements=`` (the very list
  it inferred for ``warmup``), its fast path. Steward's call does not change.
- ``load_cold``: K versions are registered first; after one warm-up load of ``warmup``, each version
  is loaded once, so no version is ever loaded twice in a process. ``steward.load_model`` against
  ``mlflow.pyfunc.load_model`` (both enforce the signature on predict).
- ``resolve_alias``: ``steward.get_model_version("models:/bench@champion")`` against
  ``MlflowClient().get_model_version_by_alias("bench", "champion")`` (one client, made before the
  timing), after a few warm-up calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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
    PEER_PYTHON,
    PEER_VENV,
    STEWARD_PYTHON,
    can_pin,
    fmt_ratio,
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
    write_docs,
)
from tracking import DOCS_END as TRACKING_DOCS_END

PEER_SCRIPT = BENCH_DIR / "peer_mlflow_registry.py"
DOCS_BEGIN = "<!-- BEGIN registry benchmark (written by benchmarks/registry.py --write-docs) -->"
DOCS_END = "<!-- END registry benchmark -->"

MODEL = "bench"
WARMUP_MODEL = "warmup"
ALIAS = "champion"
EXPERIMENT = "bench-registry"
ALIAS_VERSIONS = 10  # versions registered before resolve_alias (the alias is on the last)
ALIAS_WARMUP_CALLS = 10
SAMPLES_KEPT = 200  # longer series report their median and extremes only


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark case, run by both systems under the same name; its figure is a median time."""

    name: str
    label: str
    steward_n: int
    mlflow_n: int
    quick_steward_n: int
    quick_mlflow_n: int
    goal_seconds: float | None  # Steward's median must be below this
    min_ratio: float | None  # ... and at least this many times faster than MLflow's
    goal_text: str

    def n(self, system: str, quick: bool) -> int:
        """The size of the case for ``system`` ("steward" or "mlflow")."""
        if system == "steward":
            return self.quick_steward_n if quick else self.steward_n
        return self.quick_mlflow_n if quick else self.mlflow_n


CASES: list[Case] = [
    Case(
        name="register_default",
        label="register a version, requirements captured (MLflow: inferred, its default)",
        steward_n=200,
        mlflow_n=10,
        quick_steward_n=20,
        quick_mlflow_n=2,
        goal_seconds=0.050,
        min_ratio=50.0,
        goal_text="< 50 ms and ≥ 50x MLflow",
    ),
    Case(
        name="register_given_requirements",
        label="register a version, MLflow given pip_requirements",
        steward_n=200,
        mlflow_n=30,
        quick_steward_n=20,
        quick_mlflow_n=3,
        goal_seconds=None,
        min_ratio=None,
        goal_text="—",
    ),
    Case(
        name="load_cold",
        label="load a version cold (models:/bench/<version>)",
        steward_n=100,
        mlflow_n=30,
        quick_steward_n=10,
        quick_mlflow_n=3,
        goal_seconds=0.020,
        min_ratio=None,
        goal_text="< 20 ms",
    ),
    Case(
        name="resolve_alias",
        label="resolve an alias (models:/bench@champion)",
        steward_n=1000,
        mlflow_n=1000,
        quick_steward_n=50,
        quick_mlflow_n=50,
        goal_seconds=0.001,
        min_ratio=None,
        goal_text="< 1 ms",
    ),
]
CASES_BY_NAME = {c.name: c for c in CASES}


# --------------------------------------------------------------------------------------------
# Steward's side: one function per case, run in a pinned subprocess (``--steward-case``)
# --------------------------------------------------------------------------------------------


def build_model() -> tuple[Any, Any, Any]:
    """The fitted pipeline, its Steward signature and the training frame (none of it timed)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import steward

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return model, steward.infer_signature(x, model.predict_proba(x)), x


def _register(model: Any, sig: Any, name: str) -> Any:
    """Register ``model`` as a new version of ``name`` (in the active run); return the version."""
    import steward

    return steward.register_model(name, model, signature=sig, predict_fn="predict_proba")


def _check_sklearn_pinned(version: Any) -> None:
    """Fail unless the version's manifest pins the installed scikit-learn."""
    import sklearn

    requirements = list(version.manifest.get("requirements") or ())
    pin = f"scikit-learn=={sklearn.__version__}"
    if pin not in requirements:
        raise RuntimeError(f"{pin} is not among {version.uri}'s requirements {requirements}")


def _warm_up(model: Any, sig: Any) -> float:
    """Register ``warmup`` once (imports, store, caches); return how long that first call took."""
    t0 = time.perf_counter()
    version = _register(model, sig, WARMUP_MODEL)
    first = time.perf_counter() - t0
    _check_sklearn_pinned(version)
    return first


def _summary(times: list[float]) -> dict[str, Any]:
    """Median, extremes and (for short series) every sample, in seconds."""
    summary: dict[str, Any] = {
        "n": len(times),
        "seconds": statistics.median(times),
        "min": min(times),
        "max": max(times),
    }
    if len(times) <= SAMPLES_KEPT:
        summary["samples"] = times
    return summary


def steward_register(n: int, workdir: Path) -> dict[str, Any]:
    """Time ``n`` ``steward.register_model`` calls in one run started before the timing."""
    import steward

    steward.configure(home=str(workdir))
    model, sig, _ = build_model()
    with steward.start_run(experiment=EXPERIMENT, run_name="register"):
        first = _warm_up(model, sig)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            version = _register(model, sig, MODEL)
            times.append(time.perf_counter() - t0)
    _check_sklearn_pinned(version)
    return {
        **_summary(times),
        "first_seconds": first,
        "requirements": list(version.manifest["requirements"]),
        "last_version": version.version,
    }


def _register_versions(model: Any, sig: Any, count: int) -> tuple[float, list[str]]:
    """Register ``warmup`` then ``count`` versions of ``bench`` in one run; return their URIs."""
    import steward

    with steward.start_run(experiment=EXPERIMENT, run_name="setup"):
        first = _warm_up(model, sig)
        uris = [_register(model, sig, MODEL).uri for _ in range(count)]
    return first, uris


def steward_load_cold(n: int, workdir: Path) -> dict[str, Any]:
    """Load each of ``n`` versions once with ``steward.load_model``, after one warm-up load."""
    import steward

    steward.configure(home=str(workdir))
    model, sig, x = build_model()
    first, uris = _register_versions(model, sig, n)
    t0 = time.perf_counter()
    steward.load_model(f"models:/{WARMUP_MODEL}/1.0.0")
    first_load = time.perf_counter() - t0
    times = []
    loaded = None
    for uri in uris:
        t0 = time.perf_counter()
        loaded = steward.load_model(uri)
        times.append(time.perf_counter() - t0)
    assert loaded is not None
    shape = list(loaded.predict(x.head(5)).shape)
    if shape != [5, 2]:
        raise RuntimeError(f"the loaded model predicted shape {shape}, expected [5, 2] (predict_proba)")
    return {**_summary(times), "first_seconds": first, "first_load_seconds": first_load}


def steward_resolve_alias(n: int, workdir: Path) -> dict[str, Any]:
    """Resolve ``models:/bench@champion`` ``n`` times with ``steward.get_model_version``."""
    import steward

    steward.configure(home=str(workdir))
    model, sig, _ = build_model()
    first, uris = _register_versions(model, sig, ALIAS_VERSIONS)
    target = uris[-1].rsplit("/", 1)[1]
    steward.set_alias(MODEL, ALIAS, target)
    reference = f"models:/{MODEL}@{ALIAS}"
    for _ in range(ALIAS_WARMUP_CALLS):
        steward.get_model_version(reference)
    times = []
    resolved = None
    for _ in range(n):
        t0 = time.perf_counter()
        resolved = steward.get_model_version(reference)
        times.append(time.perf_counter() - t0)
    assert resolved is not None
    if resolved.version != target:
        raise RuntimeError(f"{reference} resolved to {resolved.version}, expected {target}")
    return {**_summary(times), "first_seconds": first, "versions": ALIAS_VERSIONS}


STEWARD_CASES: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "register_default": steward_register,
    "register_given_requirements": steward_register,  # Steward always pins without loading the model
    "load_cold": steward_load_cold,
    "resolve_alias": steward_resolve_alias,
}


def steward_case_main(name: str, workdir: Path, n: int) -> int:
    """Entry point of the ``--steward-case`` subprocess: run one case, print its JSON line."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    result = STEWARD_CASES[name](n, workdir)
    out = {"case": name, **result, "unit": "s", "system": "steward", "version": steward_version()}
    out["torch_imported"] = "torch" in sys.modules  # by skops, during the untimed first registration
    print(json.dumps(out), flush=True)
    return 0


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
    workdir: Path
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


def _describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR: " + result["error"].splitlines()[0] if result["error"] else "ERROR"
    return (
        f"{fmt_seconds(result['seconds'])} median of {result['n']:,} "
        f"(first registration in the process: {result['first_seconds']:.2f} s)"
    )


def run_system(opts: Options, system: str) -> dict[str, dict[str, Any]]:
    """Run the selected cases with ``system`` ("steward" or "mlflow"), each in a fresh pinned process."""
    results: dict[str, dict[str, Any]] = {}
    for case in opts.cases:
        workdir = opts.workdir / system / case.name
        n = str(case.n(system, opts.quick))
        if system == "mlflow":
            cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--case", case.name, "--workdir", str(workdir)]
            cmd += ["--n", n, "--versions", str(ALIAS_VERSIONS)]
            env = mlflow_env()
        else:
            cmd = [str(STEWARD_PYTHON), str(Path(__file__).resolve()), "--steward-case", case.name]
            cmd += ["--workdir", str(workdir), "--n", n]
            env = steward_env(workdir)
        opts.log(f"{system:<7} {case.name:<27} ...")
        result = run_json(pinned(CLIENT_CORE, cmd, opts.pin), env, workdir)
        results[case.name] = result
        opts.log(f"{system:<7} {case.name:<27} {_describe(result)}")
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_seconds(seconds: float) -> str:
    """A duration as ``3.70 s``, ``15.2 ms`` or ``0.41 ms``."""
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:,.1f} ms"


def fmt_cell(result: dict[str, Any] | None) -> str:
    """One system's median for a case as shown in the table."""
    if result is None:
        return "n/a"
    if "error" in result:
        return "error"
    return fmt_seconds(float(result["seconds"]))


def speedup(steward: dict[str, Any] | None, mlflow: dict[str, Any] | None) -> float | None:
    """How many times faster Steward's median is than MLflow's (None if either is missing)."""
    if not steward or not mlflow or "error" in steward or "error" in mlflow:
        return None
    return float(mlflow["seconds"]) / float(steward["seconds"])


def goal_met(case: Case, steward: dict[str, Any] | None, mlflow: dict[str, Any] | None) -> str:
    """``yes``/``no`` for Steward's goal on ``case``; ``—`` without a goal, ``n/a`` without figures."""
    if case.goal_seconds is None and case.min_ratio is None:
        return "—"
    if not steward or "error" in steward:
        return "n/a"
    ok = case.goal_seconds is None or float(steward["seconds"]) < case.goal_seconds
    if case.min_ratio is not None:
        ratio = speedup(steward, mlflow)
        if ratio is None:
            return "n/a (no MLflow figure)" if ok else "no"
        ok = ok and ratio >= case.min_ratio
    return "yes" if ok else "no"


def table_rows(
    cases: list[Case], steward: dict[str, dict[str, Any]], mlflow: dict[str, dict[str, Any]] | None
) -> list[list[str]]:
    """The rows of the result table: case | Steward | MLflow | ratio | Steward goal | met?"""
    rows = []
    for case in cases:
        s = steward.get(case.name)
        m = mlflow.get(case.name) if mlflow is not None else None
        rows.append(
            [
                case.label,
                fmt_cell(s),
                fmt_cell(m),
                fmt_ratio(speedup(s, m)),
                case.goal_text,
                goal_met(case, s, m),
            ]
        )
    return rows


def sizes_note(cases: list[Case], quick: bool) -> list[str]:
    """One line per case on how much work each system did."""
    lines = []
    for c in cases:
        s, m = c.n("steward", quick), c.n("mlflow", quick)
        if c.name.startswith("register"):
            what = f"Steward {s:,} versions, MLflow {m:,}, one run each, median per registration"
        elif c.name == "load_cold":
            what = f"Steward {s:,} versions, MLflow {m:,}, each loaded once after a warm-up load"
        else:
            calls = f"{s:,} calls each" if s == m else f"Steward {s:,} calls, MLflow {m:,}"
            what = f"{calls} after {ALIAS_WARMUP_CALLS} warm-up calls, {ALIAS_VERSIONS} versions registered"
        lines.append(f"- {c.name}: {what}")
    return lines


def _ok(result: dict[str, Any] | None) -> bool:
    return bool(result) and "error" not in (result or {})


def mlflow_time_note(mlflow: dict[str, dict[str, Any]] | None) -> str:
    """What MLflow's default registration spends its time on, from cases 1 and 2 (or ``""``)."""
    if mlflow is None:
        return ""
    default, given = mlflow.get("register_default"), mlflow.get("register_given_requirements")
    if not _ok(default) or not _ok(given):
        return ""
    assert default is not None and given is not None
    total, rest = float(default["seconds"]), float(given["seconds"])
    inference = max(total - rest, 0.0)
    return (
        f"Where MLflow's default registration goes: {total:.2f} s a version, of which {inference:.2f} s "
        f"({inference / total:.0%}) is inferring the pip requirements (case 1 minus case 2, identical "
        "requirements recorded either way): MLflow saves the model, then loads it again in a fresh "
        "Python subprocess to see which packages it imports. Given the list, it registers in "
        f"{fmt_seconds(rest)}. Steward pins requirements from the flavor's packages and the modules "
        "named in the saved file, at the versions installed, without loading the model."
    )


def first_call_note(steward: dict[str, dict[str, Any]], mlflow: dict[str, dict[str, Any]] | None) -> str:
    """The first (untimed) registration in each process, which pays for imports and store creation."""
    firsts = {
        "Steward": [float(r["first_seconds"]) for r in steward.values() if _ok(r)],
        "MLflow": [float(r["first_seconds"]) for r in (mlflow or {}).values() if _ok(r)],
    }
    parts = [f"{who} {statistics.median(values):.1f} s" for who, values in firsts.items() if values]
    if not parts:
        return ""
    torch = any(r.get("torch_imported") for r in steward.values() if _ok(r))
    return (
        "Not in the figures: each process first registers a throwaway model the default way, which "
        "imports what registering and loading need and creates the store (MLflow's also infers its "
        "requirements); that first call took "
        + " and ".join(parts)
        + " (median over the case processes)."
        + (
            " Most of Steward's is importing skops, which imports torch when it is installed, as it "
            "is in Steward's venv."
            if torch
            else ""
        )
    )


def render_docs(
    rows: list[list[str]],
    info: dict[str, str],
    command: str,
    cases: list[Case],
    pin: bool,
    steward: dict[str, dict[str, Any]],
    mlflow: dict[str, dict[str, Any]] | None,
) -> str:
    """The registry section of ``docs/benchmarks.md``, between its markers."""
    notes = [n for n in (mlflow_time_note(mlflow), first_call_note(steward, mlflow)) if n]
    lines = [
        DOCS_BEGIN,
        "## Registry: Steward vs MLflow",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{info['commit']}` with:",
        "",
        "```",
        command,
        "```",
        "",
        *markdown_table(rows),
        "",
        "Figures are medians per call. ratio: how many times faster Steward is than MLflow. The model "
        "is `make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))` fitted on scikit-learn's "
        "breast-cancer frame (30 columns), registered with a signature inferred from the frame and "
        "`predict_proba`'s output; both systems store it with skops. Steward: "
        '`steward.register_model("bench", model, signature=sig, predict_fn="predict_proba")`, '
        "`steward.load_model`, `steward.get_model_version`. MLflow: `mlflow.sklearn.log_model(model, "
        'name="model", signature=sig, registered_model_name="bench", pyfunc_predict_fn="predict_proba")`'
        " (with `pip_requirements=` in case 2), `mlflow.pyfunc.load_model`, "
        "`MlflowClient.get_model_version_by_alias`.",
        "",
        "Sizes:",
        "",
        *sizes_note(cases, quick=False),
        "",
        *(line for note in notes for line in (note, "")),
        machine_line(info),
        "",
        (
            "Pinning: every case runs in a fresh process pinned to core 0 (`taskset -c 0`), including "
            "MLflow's requirement-inference subprocess, which inherits the pinning. "
            if pin
            else "Pinning: taskset or a second core was missing, so nothing was pinned. "
        )
        + "Both systems use embedded stores in fresh directories (MLflow: SQLite tracking and registry, "
        "local artifacts; Steward: its default SQLite home) and register inside a run started before "
        "the timing. Cold loads load each version once per process; Steward's bundles are "
        "content-addressed, so its versions of this one model share their stored bytes, while "
        "MLflow keeps a copy per version (both read from the page cache).",
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
        "--write-docs", action="store_true", help="update the registry section of docs/benchmarks.md"
    )
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)
    p.add_argument("--cases", help="comma-separated subset of: " + ", ".join(CASES_BY_NAME))
    p.add_argument("--only", choices=["steward", "mlflow"], help="run one system only")
    p.add_argument("--json", type=Path, help="also write the raw results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (stores, artifacts)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to a core")
    # Subprocess mode: run one Steward case and print its JSON line.
    p.add_argument("--steward-case", choices=sorted(STEWARD_CASES), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and optionally update the docs."""
    args = parse_args(argv)
    if args.steward_case:
        if args.workdir is None or args.n is None:
            raise SystemExit("--steward-case needs --workdir and --n")
        return steward_case_main(args.steward_case, args.workdir.resolve(), args.n)

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

    tmp = Path(tempfile.mkdtemp(prefix="steward-bench-registry-"))
    opts = Options(args.quick, pin, cases, systems, tmp)
    opts.log(f"work directory: {tmp}")
    mlflow_results: dict[str, dict[str, Any]] | None = None
    steward_results: dict[str, dict[str, Any]] = {}
    try:
        if "mlflow" in systems:
            mlflow_results = run_system(opts, "mlflow")
        if "steward" in systems:
            steward_results = run_system(opts, "steward")
    finally:
        if args.keep:
            opts.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = table_rows(cases, steward_results, mlflow_results)
    title = f"Registry: Steward vs MLflow {version or '(not installed)'}"
    if args.quick:
        title += " (QUICK run, not for the record)"
    print_table(rows, title)
    print("ratio = how many times faster Steward is (medians). Sizes:")
    print("\n".join(sizes_note(cases, args.quick)))
    for note in (mlflow_time_note(mlflow_results), first_call_note(steward_results, mlflow_results)):
        if note:
            print(note)
    for system, res in (("steward", steward_results), ("mlflow", mlflow_results or {})):
        for name, r in res.items():
            if "error" in r:
                print(f"\n{system} {name} failed:\n{r['error']}", file=sys.stderr)

    info = machine_info(version)
    if args.json:
        payload = {"machine": info, "quick": args.quick, "steward": steward_results, "mlflow": mlflow_results}
        args.json.write_text(json.dumps(payload, indent=2))
    if args.write_docs:
        command = shlex.join([".venv/bin/python", "benchmarks/registry.py", *(argv or sys.argv[1:])])
        section = render_docs(rows, info, command, cases, pin, steward_results, mlflow_results)
        write_docs(section, args.docs_path, DOCS_BEGIN, DOCS_END, after=TRACKING_DOCS_END)
        print(f"wrote the registry section of {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
