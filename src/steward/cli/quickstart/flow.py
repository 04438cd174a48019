"""The quickstart's training pipeline: ingest → validate → split → train → evaluate → register.

Module-level steps, so the ``processes`` executor's workers find them by name. Each step is a child run
of the pipeline run; the train step's run holds the params, the per-epoch and per-fold metrics, the
model file and the learning curve; the evaluate step's run the test metrics, the ROC curve and the
predictions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import steward
from steward import pipeline, step
from steward.cli.quickstart.ingest import PRIVACY, expectations, patient_table
from steward.cli.quickstart.state import DATASET_NAME, ID_COLUMN, MODEL_NAME, TARGET
from steward.cli.quickstart.train import cross_validate, evaluate_model, log_artifacts, train_epochs

CARD_SECTIONS = {
    "intended_use": "A demonstration of Steward's lifecycle: scores breast-cancer biopsy features "
    "(Wisconsin diagnostic data) as malignant or benign. Not for clinical use.",
    "training_data": f"The protected copy of the {DATASET_NAME} dataset (steward data show {DATASET_NAME}): "
    "scikit-learn's bundled load_breast_cancer, 569 biopsies with 30 numeric features, ingested with "
    "synthetic patient ids (pseudonymised) and e-mails (dropped); a stratified 60/15/25 split into "
    "train, validation and test.",
    "limitations": "Trained on one small, old, single-site dataset; accuracy elsewhere is unknown. "
    "A linear model: it cannot capture interactions between features.",
}


@step(cache=False)
def ingest(seed: int) -> tuple[steward.DatasetVersion, steward.DatasetVersion]:
    """Publish the patients table: its checked raw version and its protected copy (reused if unchanged).

    Raises:
        StewardError: If the data fails its checks (the batch is then in quarantine).
    """
    table = patient_table(seed)
    features = [c for c in table.columns if c not in (ID_COLUMN, TARGET, "contact_email")]
    with tempfile.TemporaryDirectory(prefix="steward-quickstart-") as folder:
        path = Path(folder) / "breast-cancer.csv"
        table.to_csv(path, index=False)
        result = steward.ingest(
            path,
            DATASET_NAME,
            schema=expectations(features),
            privacy=PRIVACY,
            description="Breast-cancer biopsies, one row per patient (steward quickstart).",
        )
    if not result.versions:
        ids = ", ".join(b.id for b in result.quarantined)
        raise steward.StewardError(f"the data failed its checks and is in quarantine: {ids}")
    return result.raw[-1], result.versions[-1]


@step
def validate(raw: steward.DatasetVersion, protected: steward.DatasetVersion) -> steward.DatasetVersion:
    """Run the dataset's checks on the stored raw version; pass its protected copy on only if they pass."""
    report = steward.default_connection().data.validate_version(DATASET_NAME, number=raw.number)
    print(f"{raw.ref}: {report.summary()}")
    if not report.passed:
        raise steward.StewardError(f"{raw.ref} fails its checks: {report.summary()}")
    return protected


@step
def dataset_version(number: int) -> steward.DatasetVersion:
    """The stored version ``number`` of the quickstart's dataset."""
    return steward.get_dataset_version(DATASET_NAME, number)


@step
def split(
    dataset: steward.DatasetVersion, seed: int, test_size: float = 0.25, val_size: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read the protected version; split its rows (features and target) into train, validation and test."""
    from sklearn.model_selection import train_test_split

    frame = steward.get_dataset(DATASET_NAME, version=dataset.number, format="pandas")
    frame = frame.drop(columns=[ID_COLUMN])
    dev, test = train_test_split(frame, test_size=test_size, stratify=frame[TARGET], random_state=seed)
    train, val = train_test_split(dev, test_size=val_size, stratify=dev[TARGET], random_state=seed)
    return train, val, test


def _xy(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return frame.drop(columns=[TARGET]).to_numpy(dtype=np.float64), frame[TARGET].to_numpy()


@step(environment=["scikit-learn"])
def train(
    train_df: pd.DataFrame, val_df: pd.DataFrame, alpha: float, epochs: int, seed: int, cv_folds: int = 5
) -> tuple[steward.Model, str]:
    """Fit scaler + SGD logistic regression epoch by epoch, then cross-validate; log it all to this step's
    run. Returns the model and the run's id (the registered version points at it)."""
    x_train, y_train = _xy(train_df)
    x_val, y_val = _xy(val_df)
    params: dict[str, Any] = {
        "model": "SGDClassifier", "loss": "log_loss", "alpha": alpha, "epochs": epochs, "cv_folds": cv_folds,
        "scaler": "StandardScaler", "seed": seed, "n_features": x_train.shape[1], "n_train": len(y_train),
    }  # fmt: skip
    steward.log_params(params)
    steward.set_tags({"demo": "quickstart", "framework": "scikit-learn"})
    model, curve = train_epochs(x_train, y_train, x_val, y_val, params)
    scores = cross_validate(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]), params)
    steward.log_metrics(
        {"cv_accuracy_mean": float(np.mean(scores)), "cv_accuracy_std": float(np.std(scores))}
    )
    features = [str(c) for c in train_df.columns if c != TARGET]
    log_artifacts(model, features, curve)
    run = steward.active_run()
    return steward.Model(
        model, flavor="sklearn", options={"predict_fn": "predict_proba"}
    ), run.id if run else ""


@step
def evaluate(model: steward.Model, test_df: pd.DataFrame, plots: bool = True) -> dict[str, float]:
    """Score the model on ``test_df``; log the metrics (and the ROC curve and predictions) to this run."""
    x_test, y_test = _xy(test_df)
    metrics = evaluate_model(model.native, x_test, y_test, plots=plots)
    steward.log_metrics(metrics)
    return metrics


@step(cache=False)
def register(
    model: steward.Model,
    train_run: str,
    metrics: dict[str, float],
    dataset: steward.DatasetVersion,
    test_df: pd.DataFrame,
) -> steward.ModelVersion:
    """Register the model with its signature, metrics and training data; alias it ``staging``."""
    features = test_df.drop(columns=[TARGET])
    signature = steward.infer_signature(features, model.native.predict_proba(features.to_numpy()))
    version = steward.register_model(
        MODEL_NAME,
        model.native,
        flavor="sklearn",
        run_id=train_run,
        signature=signature,
        datasets={"train": dataset.id},
        metrics=metrics,
        description="SGD logistic regression on the breast-cancer data (quickstart).",
        predict_fn="predict_proba",
    )
    steward.set_alias(MODEL_NAME, "staging", version.version, reason="quickstart: first candidate")
    steward.default_connection().registry.save_card(MODEL_NAME, version.version, CARD_SECTIONS)
    return version


@pipeline
def training(seed: int = 42, alpha: float = 1e-3, epochs: int = 20) -> Any:
    """The quickstart's lifecycle as a DAG: ingest → validate → split → train → evaluate → register."""
    raw, protected = ingest(seed)
    checked = validate(raw, protected)
    train_df, val_df, test_df = split(checked, seed)
    model, run_id = train(train_df, val_df, alpha, epochs, seed)
    metrics = evaluate(model, test_df)
    return register(model, run_id, metrics, checked, test_df)


@pipeline
def tuning(dataset: int = 2, data_seed: int = 42, alpha: float = 1e-3, epochs: int = 20) -> Any:
    """What a tuning trial runs: dataset version and split (both cached after the first trial) → train →
    evaluate on the validation rows (the test rows stay unseen)."""
    train_df, val_df, _test_df = split(dataset_version(dataset), data_seed)
    model, _run_id = train(train_df, val_df, alpha, epochs, data_seed)
    return evaluate(model, val_df, plots=False)
