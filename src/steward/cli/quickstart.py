"""``steward quickstart``: the end-to-end demo, as a list of small stages.

Each stage is a function of the shared ``Demo`` state and appears in ``STAGES``; later stages (register
the model, serve it, monitor it) are added by appending to that list. The "track" stage trains a
classifier on scikit-learn's bundled breast-cancer data (no downloads) inside ``steward.start_run`` and
records params, per-epoch and per-fold metrics, final metrics, tags, the model (skops, never pickle),
plots and a table of test predictions. The "register" stage registers that model with its signature
and training data, points the alias ``staging`` at it, loads it back through the alias, and prints its
model card and lineage.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import typer
from rich.columns import Columns
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn

import steward
from steward.cli.lineage import lineage_tree
from steward.cli.output import (
    artifact_table,
    console,
    format_duration,
    format_number,
    key_value_table,
    styled_status,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXPERIMENT = "quickstart"
RUN_NAME = "sgd-logistic-regression"
MODEL_NAME = "breast-cancer"
Array = npt.NDArray[Any]


@dataclass
class Demo:
    """What the stages share: where to print, the seed, and what earlier stages produced.

    Attributes:
        console: Where stages print.
        seed: Seeds every random choice, so a rerun reproduces the numbers.
        env_prefix: Prefix for the commands shown at the end (``STEWARD_HOME=… `` with ``--home``).
        run_id: The run the "track" stage recorded.
        data: The split data the "track" stage trained on.
        model: The fitted model the "track" stage trained.
        model_version: The version the "register" stage registered.
        notes: Sentences about what was recorded, printed at the end.
        next_steps: ``(command, what it shows)`` pairs printed at the end.
    """

    console: Console
    seed: int = 42
    env_prefix: str = ""
    run_id: str | None = None
    data: Dataset | None = None
    model: Any = None
    model_version: str | None = None
    notes: list[str] = field(default_factory=list)
    next_steps: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One step of the demo: a name, a one-line title, and the function that does it."""

    name: str
    title: str
    run: Callable[[Demo], None]


@dataclass(frozen=True)
class Dataset:
    """The demo's data, split into train, validation (per-epoch scores) and held-out test sets."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    feature_names: list[str]
    target_names: list[str]


def load_data(seed: int, test_size: float = 0.25, val_size: float = 0.2) -> Dataset:
    """Load scikit-learn's bundled breast-cancer data and split it, stratified.

    Args:
        seed: Seeds the splits.
        test_size: Share of all rows held out for the final metrics.
        val_size: Share of the remaining rows scored after each epoch.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x_dev, x_test, y_dev, y_test = train_test_split(
        bunch.data, bunch.target, test_size=test_size, stratify=bunch.target, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_dev, y_dev, test_size=val_size, stratify=y_dev, random_state=seed
    )
    return Dataset(
        x_train, y_train, x_val, y_val, x_test, y_test,
        [str(name) for name in bunch.feature_names], [str(name) for name in bunch.target_names],
    )  # fmt: skip


def track(demo: Demo) -> None:
    """Stage "track": train an SGD logistic regression and record everything about it in a run."""
    data = load_data(demo.seed)
    params: dict[str, Any] = {
        "model": "SGDClassifier", "loss": "log_loss", "alpha": 1e-3, "epochs": 20, "cv_folds": 5,
        "scaler": "StandardScaler", "seed": demo.seed, "test_size": 0.25, "val_size": 0.2,
        "n_features": len(data.feature_names), "n_train": len(data.y_train), "n_test": len(data.y_test),
    }  # fmt: skip
    tags = {
        "demo": "quickstart",
        "dataset": "sklearn.datasets.load_breast_cancer",
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
    data: Dataset, params: dict[str, Any], progress: Progress, task: TaskID
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


def _cross_validate(data: Dataset, params: dict[str, Any], progress: Progress, task: TaskID) -> list[float]:
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


def _evaluate(model: Any, data: Dataset) -> dict[str, float]:
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


def _log_artifacts(model: Any, data: Dataset, curve: list[dict[str, float]]) -> None:
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


def dataset_id(data: Dataset) -> str:
    """A stable id for the training split: its source and the digest of its bytes.

    The data layer will register real dataset versions; until then the digest makes the lineage exact.
    """
    digest = hashlib.sha256(data.x_train.tobytes() + data.y_train.tobytes()).hexdigest()
    return f"breast-cancer-train@sha256:{digest[:16]}"


CARD_SECTIONS = {
    "intended_use": "A demonstration of Steward's lifecycle: scores breast-cancer biopsy features "
    "(Wisconsin diagnostic data) as malignant or benign. Not for clinical use.",
    "training_data": "scikit-learn's bundled load_breast_cancer: 569 biopsies, 30 numeric features; "
    "a stratified 60/15/25 split into train, validation and test.",
    "limitations": "Trained on one small, old, single-site dataset; accuracy elsewhere is unknown. "
    "A linear model: it cannot capture interactions between features.",
}


def register(demo: Demo) -> None:
    """Stage "register": register the model, alias it staging, load it back, print card and lineage."""
    if demo.data is None or demo.model is None or demo.run_id is None:
        raise RuntimeError("the register stage needs the track stage's model")
    data, model = demo.data, demo.model
    features = pd.DataFrame(data.x_train, columns=data.feature_names)
    signature = steward.infer_signature(features, model.predict_proba(data.x_train))
    version = steward.register_model(
        MODEL_NAME,
        model,
        flavor="sklearn",
        run_id=demo.run_id,
        signature=signature,
        datasets={"train": dataset_id(data)},
        description="SGD logistic regression on the breast-cancer data (quickstart).",
        predict_fn="predict_proba",
    )
    steward.set_alias(MODEL_NAME, "staging", version.version, reason="quickstart: first candidate")
    loaded = steward.load_model(f"models:/{MODEL_NAME}@staging")
    test = pd.DataFrame(data.x_test, columns=data.feature_names)
    same = np.allclose(loaded.predict(test), model.predict_proba(data.x_test))
    registry = steward.default_connection().registry
    registry.save_card(MODEL_NAME, version.version, CARD_SECTIONS)
    demo.model_version = version.version
    out = demo.console
    out.print(
        f"Registered [bold]{MODEL_NAME} {version.version}[/bold] ({version.flavor}, "
        f"{len(version.files)} file(s), manifest sha256 {version.manifest_digest[:12]}…); alias "
        f"[cyan]staging[/cyan] → {version.version}. Loaded back through models:/{MODEL_NAME}@staging: "
        f"{'same predictions on the test set' if same else '[red]predictions differ[/red]'}."
    )
    out.rule("model card")
    out.print(Markdown(registry.get_card(MODEL_NAME, version.version, "md")))
    out.rule("lineage")
    out.print(lineage_tree(registry.model_lineage(MODEL_NAME, version.version)))
    demo.notes += [
        f"The model version's files are content-addressed and listed with their SHA-256 in "
        f"steward-model.yaml; load_model checks every digest, and predict checks inputs against the "
        f"signature ({len(signature.inputs.columns)} named float columns).",
    ]
    demo.next_steps += [
        (f"steward models versions {MODEL_NAME}", "the registered versions and their aliases"),
        (
            f"steward models card {MODEL_NAME} {version.version} --format html -o card.html",
            "the card as HTML",
        ),
        (f"steward lineage model {MODEL_NAME} {version.version}", "run, params, commit and data behind it"),
        (f"steward lineage dataset {dataset_id(data)}", "every model trained on that data"),
    ]


STAGES: list[Stage] = [
    Stage("track", "train a classifier and track the run", track),
    Stage("register", "register the model, alias it staging, show its card and lineage", register),
]
"""The demo's stages, in order; add a stage by appending to this list."""


def report(demo: Demo) -> None:
    """Print what the demo recorded and the commands to look at it.

    Args:
        demo: The state after every stage ran.
    """
    out = demo.console
    if demo.run_id is not None:
        run = steward.get_run(demo.run_id)
        artifacts = steward.list_artifacts(demo.run_id)
        seconds = (run.end_time - run.start_time).total_seconds() if run.end_time else 0.0
        out.rule("recorded")
        out.print(f"Run id: {run.id}")
        out.print(
            f"Run [bold]{run.name}[/bold] in experiment [bold]{EXPERIMENT}[/bold]: "
            f"{styled_status(run.status)} in {format_duration(seconds)}"
        )
        metrics = {key: format_number(value) for key, value in run.metrics.items()}
        out.print(
            Columns(
                [
                    key_value_table(run.params, title="Params"),
                    key_value_table(metrics, title="Metrics (latest)"),
                ],
                padding=(0, 4),
            )
        )
        out.print(artifact_table(artifacts, title="Artifacts"))
    for note in demo.notes:
        out.print(note, soft_wrap=False)
    out.rule("next")
    for command, what in demo.next_steps:
        out.print(f"  [bold]{demo.env_prefix}{command}[/bold]  [dim]# {what}[/dim]")


def quickstart(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            file_okay=False,
            help="Record into this Steward home instead of STEWARD_HOME (~/.steward).",
        ),
    ] = None,
) -> None:
    """Run the end-to-end demo: train a model on bundled data and track it, in well under a minute."""
    demo = Demo(console)
    if home is not None:
        home = home.expanduser().resolve()
        # uri="" also leaves any STEWARD_URI aside: an explicit home means embedded.
        steward.configure(home=home, uri="")
        demo.env_prefix = f"STEWARD_HOME={home} "
    connection = steward.default_connection()
    where = connection.settings.uri if connection.remote else str(connection.settings.home)
    console.print(f"Steward quickstart, recording to [bold]{where}[/bold]")
    for number, stage in enumerate(STAGES, start=1):
        console.rule(f"{number}/{len(STAGES)} {stage.name}: {stage.title}")
        stage.run(demo)
    report(demo)
