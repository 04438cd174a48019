"""MLflow side of the registry benchmark (``benchmarks/registry.py`` drives it).

Runs INSIDE the isolated MLflow venv made by ``benchmarks/setup_peers.sh``, never in Steward's venv::

    benchmarks/.peers/mlflow/bin/python benchmarks/peer_mlflow_registry.py --case load_cold --workdir /tmp/x

Prints one JSON line: ``{"case": ..., "n": n, "seconds": median, "samples": [...], ...}``.

The model is ``make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))`` fitted on
scikit-learn's breast-cancer frame, with a signature inferred from that frame and ``predict_proba``'s
output; it is built before anything is timed. The store is ``sqlite:///<workdir>/mlflow.db`` (tracking
and registry) with artifacts under ``<workdir>/artifacts``. Each case starts with one registration of
a throwaway model ``warmup`` made the default way, which imports what registering and loading need,
creates the database, and gives the requirements MLflow infers for this model; its time is reported
as ``first_seconds`` and counted nowhere else.

Cases:

- ``register_default``: N times ``mlflow.sklearn.log_model(model, name="model", signature=sig,
  registered_model_name="bench", pyfunc_predict_fn="predict_proba")`` in one run started before the
  timing (MLflow infers the pip requirements: it loads the saved model in a subprocess to see what it
  imports); the median seconds per call.
- ``register_given_requirements``: the same with ``pip_requirements=`` set to the list inferred for
  ``warmup`` (MLflow's fast path, identical requirements).
- ``load_cold``: ``mlflow.pyfunc.load_model("models:/bench/<v>")`` once for each of N versions
  (registered first with the given requirements, outside the timing), after one warm-up load of
  ``warmup``; the median.
- ``resolve_alias``: ``MlflowClient().get_model_version_by_alias("bench", "champion")`` N times on
  one client, after a few warm-up calls, with ``champion`` on the last of ``--versions`` versions; the
  median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import MLFLOW_QUIET_ENV

os.environ.update(MLFLOW_QUIET_ENV)  # before mlflow is imported

MODEL = "bench"
WARMUP_MODEL = "warmup"
ALIAS = "champion"
EXPERIMENT = "bench-registry"
ALIAS_WARMUP_CALLS = 10

CASES = ("register_default", "register_given_requirements", "load_cold", "resolve_alias")
DEFAULT_N = {
    "register_default": 10,
    "register_given_requirements": 30,
    "load_cold": 30,
    "resolve_alias": 1000,
}


def build_model() -> tuple[Any, Any, Any]:
    """The fitted pipeline, its MLflow signature and the training frame (none of it timed)."""
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return model, infer_signature(x, model.predict_proba(x)), x


def _log_model(model: Any, sig: Any, name: str, requirements: list[str] | None) -> str:
    """Log and register ``model`` as a new version of ``name`` in the active run; return the version."""
    import mlflow.sklearn

    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=sig,
        registered_model_name=name,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=requirements,
    )
    return str(info.registered_model_version)


def requirements_of(name: str, version: str) -> list[str]:
    """The pip requirements recorded with a registered version (its ``requirements.txt``)."""
    import mlflow.pyfunc

    path = mlflow.pyfunc.get_model_dependencies(f"models:/{name}/{version}")
    lines = Path(path).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith(("#", "-"))]


def _check_sklearn_pinned(requirements: list[str]) -> None:
    import sklearn

    pin = f"scikit-learn=={sklearn.__version__}"
    if pin not in requirements:
        raise RuntimeError(f"{pin} is not among the recorded requirements {requirements}")


def _warm_up(model: Any, sig: Any) -> tuple[float, list[str]]:
    """Register ``warmup`` the default way; return its time and the requirements MLflow inferred."""
    t0 = time.perf_counter()
    version = _log_model(model, sig, WARMUP_MODEL, None)
    first = time.perf_counter() - t0
    inferred = requirements_of(WARMUP_MODEL, version)
    _check_sklearn_pinned(inferred)
    return first, inferred


def _summary(times: list[float]) -> dict[str, Any]:
    """Median, extremes and (for short series) every sample, in seconds."""
    summary: dict[str, Any] = {
        "n": len(times),
        "seconds": statistics.median(times),
        "min": min(times),
        "max": max(times),
    }
    if len(times) <= 200:
        summary["samples"] = times
    return summary


def case_register(n: int, given: bool) -> dict[str, Any]:
    """Time ``n`` registrations of the model (requirements inferred, or given when ``given``)."""
    import mlflow

    model, sig, _ = build_model()
    with mlflow.start_run(run_name="register"):
        first, inferred = _warm_up(model, sig)
        requirements = inferred if given else None
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            version = _log_model(model, sig, MODEL, requirements)
            times.append(time.perf_counter() - t0)
    recorded = requirements_of(MODEL, version)
    _check_sklearn_pinned(recorded)
    return {
        **_summary(times),
        "first_seconds": first,
        "requirements": recorded,
        "requirements_given": given,
    }


def _register_versions(model: Any, sig: Any, count: int) -> tuple[float, list[str]]:
    """``warmup`` the default way, then ``count`` versions of ``bench`` with its requirements given."""
    import mlflow

    with mlflow.start_run(run_name="setup"):
        first, inferred = _warm_up(model, sig)
        versions = [_log_model(model, sig, MODEL, inferred) for _ in range(count)]
    return first, versions


def case_load_cold(n: int) -> dict[str, Any]:
    """Load each of ``n`` registered versions once with ``mlflow.pyfunc.load_model``."""
    import mlflow.pyfunc

    model, sig, x = build_model()
    first, versions = _register_versions(model, sig, n)
    t0 = time.perf_counter()
    mlflow.pyfunc.load_model(f"models:/{WARMUP_MODEL}/1")
    first_load = time.perf_counter() - t0
    times = []
    loaded = None
    for version in versions:
        t0 = time.perf_counter()
        loaded = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        times.append(time.perf_counter() - t0)
    assert loaded is not None
    shape = list(loaded.predict(x.head(5)).shape)
    if shape != [5, 2]:
        raise RuntimeError(f"the loaded model predicted shape {shape}, expected [5, 2] (predict_proba)")
    return {**_summary(times), "first_seconds": first, "first_load_seconds": first_load}


def case_resolve_alias(n: int, versions: int) -> dict[str, Any]:
    """Resolve ``models:/bench@champion`` ``n`` times on one ``MlflowClient``."""
    from mlflow import MlflowClient

    model, sig, _ = build_model()
    first, registered = _register_versions(model, sig, versions)
    client = MlflowClient()
    client.set_registered_model_alias(MODEL, ALIAS, registered[-1])
    for _ in range(ALIAS_WARMUP_CALLS):
        client.get_model_version_by_alias(MODEL, ALIAS)
    times = []
    resolved = None
    for _ in range(n):
        t0 = time.perf_counter()
        resolved = client.get_model_version_by_alias(MODEL, ALIAS)
        times.append(time.perf_counter() - t0)
    assert resolved is not None
    if str(resolved.version) != registered[-1]:
        raise RuntimeError(f"{ALIAS} resolved to {resolved.version}, expected {registered[-1]}")
    return {**_summary(times), "first_seconds": first, "versions": versions}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one case and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", required=True, choices=CASES)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--n", type=int, help="timed calls (registrations, loads or alias lookups)")
    parser.add_argument("--versions", type=int, default=10, help="resolve_alias: versions registered first")
    args = parser.parse_args(argv)

    import mlflow

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # anything MLflow writes relative to the cwd lands in the workdir
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp_id = mlflow.create_experiment(EXPERIMENT, artifact_location=(workdir / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp_id)
    n = args.n if args.n is not None else DEFAULT_N[args.case]

    if args.case == "register_default":
        result = case_register(n, given=False)
    elif args.case == "register_given_requirements":
        result = case_register(n, given=True)
    elif args.case == "load_cold":
        result = case_load_cold(n)
    else:
        result = case_resolve_alias(n, args.versions)
    out = {"case": args.case, **result, "unit": "s", "system": "mlflow", "version": mlflow.__version__}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
