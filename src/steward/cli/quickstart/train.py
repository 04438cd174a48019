"""The "track" stage: train a classifier on the protected dataset version inside a tracked run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn

import steward
from steward.cli.quickstart.state import (
    DATASET_NAME,
    EXPERIMENT,
    ID_COLUMN,
    RUN_NAME,
    TARGET,
    TARGET_NAMES,
    Array,
    Demo,
    Splits,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def load_data(frame: pd.DataFrame, seed: int, test_size: float = 0.25, val_size: float = 0.2) -> Splits:
    """Split a dataset version's rows into features and target, then into train, validation and test.

    Args:
        frame: The rows, as ``steward.get_dataset(…, format="pandas")`` returns them; every column but
            the patient id and the target is a feature.
        seed: Seeds the splits.
        test_size: Share of all rows held out for the final metrics.
        val_size: Share of the remaining rows scored after each epoch.
    """
    from sklearn.model_selection import train_test_split

    features = frame.drop(columns=[ID_COLUMN, TARGET])
    x, y = features.to_numpy(dtype=np.float64), frame[TARGET].to_numpy()
    x_dev, x_test, y_dev, y_test = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_dev, y_dev, test_size=val_size, stratify=y_dev, random_state=seed
    )
    return Splits(
        x_train, y_train, x_val, y_val, x_test, y_test, [str(c) for c in features.columns], TARGET_NAMES
    )


def track(demo: Demo) -> None:
    """Stage "track": train an SGD logistic regression on the protected data and record it in a run."""
    if demo.dataset is None:
        raise RuntimeError("the track stage needs the ingest stage's dataset version")
    version = demo.dataset
    frame = steward.get_dataset(DATASET_NAME, version=version.number, format="pandas")
    data = load_data(frame, demo.seed)
    params: dict[str, Any] = {
        "model": "SGDClassifier", "loss": "log_loss", "alpha": 1e-3, "epochs": 20, "cv_folds": 5,
        "scaler": "StandardScaler", "seed": demo.seed, "test_size": 0.25, "val_size": 0.2,
        "n_features": len(data.feature_names), "n_train": len(data.y_train), "n_test": len(data.y_test),
    }  # fmt: skip
    tags = {
        "demo": "quickstart",
        "dataset": version.ref,
        "dataset_version_id": version.id,
        "dataset_source": "sklearn.datasets.load_breast_cancer",
        "framework": "scikit-learn",
    }
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with (
        Progress(*columns, console=demo.console) as progress,
        steward.start_run(experiment=EXPERIMENT, run_name=RUN_NAME, tags=tags) as run,
    ):
        steward.log_params(params)
        total = params["epochs"] + params["cv_folds"] + 2
        task = progress.add_task("training", total=total)
        model, curve = _train(data, params, progress, task)
        progress.update(task, description="cross-validating")
        cv_scores = _cross_validate(data, params, progress, task)
        progress.update(task, description="evaluating on the held-out test set")
        final = _evaluate(model, data)
        final.update(cv_accuracy_mean=float(np.mean(cv_scores)), cv_accuracy_std=float(np.std(cv_scores)))
        steward.log_metrics(final)
        progress.advance(task)
        progress.update(task, description="saving the model, plots and predictions")
        _log_artifacts(model, data, curve)
        progress.update(task, description="done", completed=total)
    demo.run_id, demo.data, demo.model = run.id, data, model
    demo.notes += [
        f"History: train_loss, train_accuracy, val_loss and val_accuracy have one point per epoch "
        f"({params['epochs']}), cv_fold_accuracy one per fold ({params['cv_folds']}); read them with "
        f"steward.get_metric_history({run.id!r}, 'val_loss').",
        "The model is model.skops, saved with skops rather than pickle: loading it checks every type "
        "against a trusted list instead of running whatever the file says.",
    ]
    demo.next_steps += [
        (f"steward runs show {run.id}", "everything this run recorded"),
        (f"steward runs list {EXPERIMENT}", "the runs of this experiment"),
        ("steward server", "the REST API; then open http://127.0.0.1:8080/docs"),
    ]


def _train(
    data: Splits, params: dict[str, Any], progress: Progress, task: TaskID
) -> tuple[Any, list[dict[str, float]]]:
    """Fit scaler + SGD classifier one epoch at a time, logging loss and accuracy per epoch."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(data.x_train)
    x_train, x_val = scaler.transform(data.x_train), scaler.transform(data.x_val)
    classifier = SGDClassifier(loss="log_loss", alpha=params["alpha"], random_state=params["seed"])
    classes = np.unique(data.y_train)
    rng = np.random.default_rng(params["seed"])
    curve: list[dict[str, float]] = []
    for epoch in range(1, params["epochs"] + 1):
        order = rng.permutation(len(x_train))
        classifier.partial_fit(x_train[order], data.y_train[order], classes=classes)
        scores: dict[str, float] = {}
        for split, x, y in (("train", x_train, data.y_train), ("val", x_val, data.y_val)):
            scores[f"{split}_loss"] = float(log_loss(y, classifier.predict_proba(x), labels=classes))
            scores[f"{split}_accuracy"] = float(accuracy_score(y, classifier.predict(x)))
        steward.log_metrics(scores, step=epoch)
        curve.append(scores)
        progress.update(task, advance=1, description=f"epoch {epoch}: val_loss {scores['val_loss']:.4f}")
    return Pipeline([("scaler", scaler), ("classifier", classifier)]), curve


def _cross_validate(data: Splits, params: dict[str, Any], progress: Progress, task: TaskID) -> list[float]:
    """Score the same recipe with stratified k-fold CV on train + validation, one metric point per fold."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    folds = StratifiedKFold(n_splits=params["cv_folds"], shuffle=True, random_state=params["seed"])
    scores = []
    for fold, (fit_rows, score_rows) in enumerate(folds.split(x, y), start=1):
        # tol=None runs exactly `epochs` passes, like the training loop, and so never warns of convergence.
        classifier = SGDClassifier(
            loss="log_loss",
            alpha=params["alpha"],
            max_iter=params["epochs"],
            tol=None,
            random_state=params["seed"],
        )
        model = make_pipeline(StandardScaler(), classifier).fit(x[fit_rows], y[fit_rows])
        score = float(accuracy_score(y[score_rows], model.predict(x[score_rows])))
        steward.log_metric("cv_fold_accuracy", score, step=fold)
        scores.append(score)
        progress.advance(task)
    return scores


def _evaluate(model: Any, data: Splits) -> dict[str, float]:
    """Score the trained model on the held-out test set."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    proba = model.predict_proba(data.x_test)
    predicted = model.predict(data.x_test)
    return {
        "accuracy": float(accuracy_score(data.y_test, predicted)),
        "roc_auc": float(roc_auc_score(data.y_test, proba[:, 1])),
        "f1": float(f1_score(data.y_test, predicted)),
        "log_loss": float(log_loss(data.y_test, proba)),
    }


def _log_artifacts(model: Any, data: Splits, curve: list[dict[str, float]]) -> None:
    """Record the model (skops), the plots, the feature names and the test predictions."""
    import skops.io as sio

    with tempfile.TemporaryDirectory(prefix="steward-quickstart-") as folder:
        path = Path(folder) / "model.skops"
        sio.dump(model, path)  # skops stores the estimator without pickle, so loading it runs no code
        steward.log_artifact(path)
    proba = model.predict_proba(data.x_test)[:, 1]
    steward.log_figure(_roc_figure(data.y_test, proba), "plots/roc_curve.png")
    steward.log_figure(_learning_curve_figure(curve), "plots/learning_curve.png")
    steward.log_dict({"features": data.feature_names, "classes": data.target_names}, "features.json")
    predictions = pd.DataFrame(
        {"y_true": data.y_test, "y_pred": model.predict(data.x_test), f"p_{data.target_names[1]}": proba}
    )
    steward.log_table(predictions, "predictions.parquet")


def _roc_figure(y_true: Array, score: Array) -> Figure:
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y_true, score)
    figure = Figure(figsize=(5, 4.5))  # no pyplot: no global state, no GUI backend
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y_true, score):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve (test set)")
    axes.legend(loc="lower right")
    return figure


def _learning_curve_figure(curve: list[dict[str, float]]) -> Figure:
    from matplotlib.figure import Figure

    epochs = range(1, len(curve) + 1)
    figure = Figure(figsize=(9, 4))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for split in ("train", "val"):
        loss_axes.plot(epochs, [point[f"{split}_loss"] for point in curve], label=split)
        accuracy_axes.plot(epochs, [point[f"{split}_accuracy"] for point in curve], label=split)
    loss_axes.set(xlabel="epoch", ylabel="log loss", title="Loss per epoch")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy per epoch")
    loss_axes.legend()
    accuracy_axes.legend()
    return figure
