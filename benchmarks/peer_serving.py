"""The models of the serving benchmark, and the peers' side of it (``benchmarks/serving.py`` drives it).

``train_models`` is the one definition of the two models; ``serving.py`` imports it in Steward's venv,
and this script runs it INSIDE a peer's venv (made by ``benchmarks/setup_peers.sh``)::

    benchmarks/.peers/mlflow/bin/python benchmarks/peer_serving.py --system mlflow --workdir /tmp/x
    benchmarks/.peers/bentoml/bin/python benchmarks/peer_serving.py --system bentoml --workdir /tmp/x

It trains both models, saves them the way the peer serves them, and prints one JSON line:
``{"system": ..., "version": ..., "models": {"lr": {...}, "gb": {...}}}``, where each model names what
the driver needs to start a server for it (a model directory, or a service file and its class) and
the probabilities the model gives for the benchmark's row (the driver checks the server against them).

Only the standard library is imported at module level, so Steward's venv can import ``train_models``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

MODEL_NAMES = ("lr", "gb")
MODEL_LABELS = {
    "lr": "logistic regression (StandardScaler + LogisticRegression)",
    "gb": "gradient boosting (200 trees)",
}
SAMPLE_ROW = 0  # the row of the breast-cancer frame every request sends

# Keep MLflow off the network and free of background work before it is imported.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "BENTOML_DO_NOT_TRACK": "true",
}


def train_models() -> tuple[Any, dict[str, Any]]:
    """The breast-cancer frame (30 float columns) and the two fitted models, ``{"lr": ..., "gb": ...}``.

    Deterministic: the same scikit-learn version gives the same models in every venv.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = load_breast_cancer(as_frame=True)
    x, y = frame.data, frame.target
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    gb = GradientBoostingClassifier(n_estimators=200, random_state=0).fit(x, y)
    return x, {"lr": lr, "gb": gb}


def sample(x: Any) -> tuple[list[str], list[float]]:
    """The benchmark row: the column names and the 30 values."""
    return [str(c) for c in x.columns], [float(v) for v in x.iloc[SAMPLE_ROW]]


def prepare_mlflow(workdir: Path) -> dict[str, Any]:
    """Save both models with ``mlflow.sklearn.save_model``: predict_proba, signature, pinned requirements."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    x, models = train_models()
    out: dict[str, Any] = {}
    for name, model in models.items():
        path = workdir / "mlflow_models" / name
        proba = model.predict_proba(x)
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=infer_signature(x, proba),
            pyfunc_predict_fn="predict_proba",
            # Given, so MLflow does not load the model again in a subprocess to infer them.
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            # Trained here, so trusted: skops asks for the trees' node storage to be named.
            skops_trusted_types=["sklearn.tree._tree.Tree"] if name == "gb" else None,
        )
        out[name] = {"path": str(path), "expected": proba[SAMPLE_ROW].tolist()}
    return {"system": "mlflow", "version": mlflow.__version__, "models": out}


BENTO_SERVICE = '''"""BentoML service of the serving benchmark (written by benchmarks/peer_serving.py)."""

import warnings

import bentoml
import numpy as np

# The models were fitted on a frame; requests come as arrays, which scikit-learn would warn about.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


def _service(model_tag: str) -> type:
    @bentoml.service(name=f"bench-{model_tag.split(':')[0]}", workers=1)
    class Service:
        model_ref = bentoml.models.BentoModel(model_tag)

        def __init__(self) -> None:
            self.model = bentoml.sklearn.load_model(self.model_ref)

        @bentoml.api
        def predict(self, input: np.ndarray) -> np.ndarray:
            return self.model.predict_proba(input)

    return Service


LR = _service("lr:latest")
GB = _service("gb:latest")
'''


def prepare_bentoml(workdir: Path) -> dict[str, Any]:
    """Save both models to a BentoML model store in ``workdir`` and write a service file beside it."""
    home = workdir / "bentoml_home"
    os.environ["BENTOML_HOME"] = str(home)
    import bentoml

    x, models = train_models()
    out: dict[str, Any] = {}
    for name, model in models.items():
        bentoml.sklearn.save_model(name, model)
        proba = model.predict_proba(x)
        out[name] = {
            "service_dir": str(workdir),
            "service": f"bento_service:{name.upper()}",
            "bentoml_home": str(home),
            "expected": proba[SAMPLE_ROW].tolist(),
        }
    (workdir / "bento_service.py").write_text(BENTO_SERVICE)
    return {"system": "bentoml", "version": bentoml.__version__, "models": out}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, save the models for one peer and print its JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", required=True, choices=["mlflow", "bentoml"])
    parser.add_argument("--workdir", required=True, type=Path)
    args = parser.parse_args(argv)
    os.environ.update(QUIET_ENV)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    result = prepare_mlflow(workdir) if args.system == "mlflow" else prepare_bentoml(workdir)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
