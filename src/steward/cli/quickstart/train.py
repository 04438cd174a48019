"""The quickstart's training recipe: SGD logistic regression epoch by epoch, cross-validation, test metrics,
and what is logged along the way (called by the pipeline's steps in ``flow.py``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import steward
from steward.cli.quickstart.state import TARGET_NAMES, Array

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def train_epochs(
    x_train: Array, y_train: Array, x_val: Array, y_val: Array, params: dict[str, Any]
) -> tuple[Any, list[dict[str, float]]]:
    """Fit scaler + SGD classifier one epoch at a time, logging loss and accuracy per epoch.

    Returns:
        The fitted scikit-learn pipeline and the per-epoch scores.
    """
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    x_fit, x_check = scaler.transform(x_train), scaler.transform(x_val)
    classifier = SGDClassifier(loss="log_loss", alpha=params["alpha"], random_state=params["seed"])
    classes = np.unique(y_train)
    rng = np.random.default_rng(params["seed"])
    curve: list[dict[str, float]] = []
    for epoch in range(1, params["epochs"] + 1):
        order = rng.permutation(len(x_fit))
        classifier.partial_fit(x_fit[order], y_train[order], classes=classes)
        scores: dict[str, float] = {}
        for split, x, y in (("train", x_fit, y_train), ("val", x_check, y_val)):
            scores[f"{split}_loss"] = float(log_loss(y, classifier.predict_proba(x), labels=classes))
            scores[f"{split}_accuracy"] = float(accuracy_score(y, classifier.predict(x)))
        steward.log_metrics(scores, step=epoch)
        curve.append(scores)
    return Pipeline([("scaler", scaler), ("classifier", classifier)]), curve


def cross_validate(x: Array, y: Array, params: dict[str, Any]) -> list[float]:
    """Score the same recipe with stratified k-fold CV, one ``cv_fold_accuracy`` point per fold."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    return scores


def evaluate_model(model: Any, x_test: Array, y_test: Array, plots: bool = True) -> dict[str, float]:
    """Score ``model`` on held-out rows; with ``plots``, log the ROC curve and the predictions too."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    proba = model.predict_proba(x_test)
    predicted = model.predict(x_test)
    if plots:
        steward.log_figure(_roc_figure(y_test, proba[:, 1]), "plots/roc_curve.png")
        predictions = pd.DataFrame(
            {"y_true": y_test, "y_pred": predicted, f"p_{TARGET_NAMES[1]}": proba[:, 1]}
        )
        steward.log_table(predictions, "predictions.parquet")
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "roc_auc": float(roc_auc_score(y_test, proba[:, 1])),
        "f1": float(f1_score(y_test, predicted)),
        "log_loss": float(log_loss(y_test, proba)),
    }


def log_artifacts(model: Any, features: list[str], curve: list[dict[str, float]]) -> None:
    """Record the model (skops, never pickle), the learning curve and the feature names."""
    import skops.io as sio

    with tempfile.TemporaryDirectory(prefix="steward-quickstart-") as folder:
        path = Path(folder) / "model.skops"
        sio.dump(model, path)  # skops stores the estimator without pickle, so loading it runs no code
        steward.log_artifact(path)
    steward.log_figure(_learning_curve_figure(curve), "plots/learning_curve.png")
    steward.log_dict({"features": features, "classes": TARGET_NAMES}, "features.json")


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
