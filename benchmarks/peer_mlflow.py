"""MLflow side of the tracking benchmark (``benchmarks/tracking.py`` drives it).

Runs INSIDE the isolated MLflow venv made by ``benchmarks/setup_peers.sh``, never in Steward's venv::

    benchmarks/.peers/mlflow/bin/python benchmarks/peer_mlflow.py --case single_embedded --workdir /tmp/x

Prints one JSON line: ``{"case": ..., "points": n, "seconds": s, "rate": r, "unit": ...}``.

Cases (the backend store is ``sqlite:///<workdir>/mlflow.db`` unless ``--tracking-uri`` is given):

- ``single_embedded`` / ``single_http``: N ``mlflow.log_metric`` calls in one run; points/s.
- ``batch_embedded`` / ``batch_http``: N points through ``MlflowClient.log_batch`` in batches of
  1,000 metrics (MLflow's per-request maximum); points/s.
- ``create_runs``: N runs in one experiment, each with 3 params and 3 metrics; runs/s.
- ``search_runs``: ``mlflow.search_runs`` with one metric and one param filter over the runs that
  ``create_runs`` made in the same workdir; the median of ``--repeats`` calls after one warm-up.

Logging timings start after the run exists and end after the run is ended (the final write).
The values are drawn from a seeded RNG outside the timed region; building MLflow's ``Metric``
objects is inside it, since a user has to do that too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Keep MLflow off the network and free of background work before it is imported.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}
os.environ.update(QUIET_ENV)

BATCH_SIZE = 1000  # MLflow's MAX_METRICS_PER_BATCH
SEARCH_EXPERIMENT = "bench-runs"
SEARCH_FILTER = "metrics.m0 > 0.5 and params.p0 = 'a'"

DEFAULT_N = {
    "single_embedded": 2_000,
    "batch_embedded": 100_000,
    "single_http": 200,
    "batch_http": 100_000,
    "create_runs": 5_000,
    "search_runs": 0,
}
HTTP_CASES = {"single_http", "batch_http"}


def run_values(i: int, rng: random.Random) -> tuple[dict[str, Any], dict[str, float]]:
    """Params and metrics of the ``i``-th run of ``create_runs``.

    ``p0`` is ``'a'`` for every other run and ``m0`` is uniform in [0, 1), so the search filter
    ``metrics.m0 > 0.5 and params.p0 = 'a'`` matches about a quarter of the runs.
    Keep in sync with ``run_values`` in ``benchmarks/tracking.py``.
    """
    params: dict[str, Any] = {"p0": "a" if i % 2 == 0 else "b", "p1": i, "p2": round(rng.random(), 6)}
    metrics = {"m0": rng.random(), "m1": rng.random(), "m2": rng.random()}
    return params, metrics


def _experiment_id(name: str, workdir: Path, embedded: bool) -> str:
    """Create the experiment ``name`` (artifacts under ``workdir`` when embedded); return its id."""
    import mlflow

    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    if embedded:
        return str(mlflow.create_experiment(name, artifact_location=(workdir / "artifacts").as_uri()))
    return str(mlflow.create_experiment(name))


def _verify(run_id: str, n: int) -> None:
    """Fail the case unless all ``n`` points of ``loss`` were stored (checked after timing)."""
    from mlflow.tracking import MlflowClient

    stored = len(MlflowClient().get_metric_history(run_id, "loss"))
    if stored != n:
        raise RuntimeError(f"run {run_id} has {stored} points of 'loss', expected {n}")


def case_single(n: int, workdir: Path, embedded: bool) -> dict[str, Any]:
    """Log ``n`` points one ``mlflow.log_metric`` call at a time into one run."""
    import mlflow

    exp_id = _experiment_id("bench-single", workdir, embedded)
    values = [1.0 / (i + 1) for i in range(n)]
    run_id = mlflow.start_run(experiment_id=exp_id, run_name="single").info.run_id
    t0 = time.perf_counter()
    for i, v in enumerate(values):
        mlflow.log_metric("loss", v, step=i)
    mlflow.end_run()
    seconds = time.perf_counter() - t0
    _verify(run_id, n)
    return {"points": n, "seconds": seconds, "rate": n / seconds, "unit": "points/s"}


def case_batch(n: int, workdir: Path, embedded: bool) -> dict[str, Any]:
    """Log ``n`` points of one key through ``MlflowClient.log_batch``, 1,000 per call."""
    from mlflow.entities import Metric, RunStatus
    from mlflow.tracking import MlflowClient

    exp_id = _experiment_id("bench-batch", workdir, embedded)
    client = MlflowClient()
    rng = random.Random(0)
    values = [rng.random() for _ in range(n)]
    run_id = client.create_run(exp_id, run_name="batch").info.run_id
    t0 = time.perf_counter()
    for start in range(0, n, BATCH_SIZE):
        ts = int(time.time() * 1000)
        metrics = [Metric("loss", values[j], ts, j) for j in range(start, min(n, start + BATCH_SIZE))]
        client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    seconds = time.perf_counter() - t0
    _verify(run_id, n)
    return {"points": n, "seconds": seconds, "rate": n / seconds, "unit": "points/s"}


def case_create_runs(n: int, workdir: Path, embedded: bool) -> dict[str, Any]:
    """Create ``n`` runs in one experiment, each with 3 params and 3 metrics."""
    import mlflow

    if mlflow.get_experiment_by_name(SEARCH_EXPERIMENT) is not None:
        raise SystemExit(f"{SEARCH_EXPERIMENT!r} already exists in {workdir}: use a fresh --workdir")
    exp_id = _experiment_id(SEARCH_EXPERIMENT, workdir, embedded)
    rng = random.Random(42)
    rows = [run_values(i, rng) for i in range(n)]
    t0 = time.perf_counter()
    for i, (params, metrics) in enumerate(rows):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"run-{i}"):
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
    seconds = time.perf_counter() - t0
    return {"points": n, "seconds": seconds, "rate": n / seconds, "unit": "runs/s"}


def case_search_runs(repeats: int, max_results: int | None) -> dict[str, Any]:
    """Time ``mlflow.search_runs`` over the ``create_runs`` experiment: median of ``repeats``."""
    import mlflow

    if mlflow.get_experiment_by_name(SEARCH_EXPERIMENT) is None:
        raise SystemExit(f"no {SEARCH_EXPERIMENT!r} experiment: run --case create_runs in this workdir first")
    kwargs: dict[str, Any] = {"experiment_names": [SEARCH_EXPERIMENT], "filter_string": SEARCH_FILTER}
    if max_results is not None:
        kwargs["max_results"] = max_results
    df = mlflow.search_runs(**kwargs)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        df = mlflow.search_runs(**kwargs)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return {
        "points": len(df),
        "rows": len(df),
        "seconds": seconds,
        "rate": 1.0 / seconds,
        "unit": "calls/s",
        "samples": times,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one case and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", required=True, choices=sorted(DEFAULT_N))
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--tracking-uri", help="default: sqlite:///<workdir>/mlflow.db")
    parser.add_argument("--n", type=int, help="points (logging cases) or runs (create_runs)")
    parser.add_argument("--repeats", type=int, default=5, help="search_runs: timed calls after a warm-up")
    parser.add_argument(
        "--max-results", type=int, help="search_runs: max_results (default: MLflow's own, 100,000)"
    )
    args = parser.parse_args(argv)

    import mlflow

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # anything MLflow writes relative to the cwd lands in the workdir
    uri = args.tracking_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    if args.case in HTTP_CASES and not uri.startswith("http"):
        parser.error(f"{args.case} needs --tracking-uri http://...")
    mlflow.set_tracking_uri(uri)
    embedded = not uri.startswith("http")
    n = args.n if args.n is not None else DEFAULT_N[args.case]

    if args.case in ("single_embedded", "single_http"):
        result = case_single(n, workdir, embedded)
    elif args.case in ("batch_embedded", "batch_http"):
        result = case_batch(n, workdir, embedded)
    elif args.case == "create_runs":
        result = case_create_runs(n, workdir, embedded)
    else:
        result = case_search_runs(args.repeats, args.max_results)
    out = {"case": args.case, **result, "system": "mlflow", "version": mlflow.__version__}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
