"""``steward quickstart``: the end-to-end demo, as a list of small stages.

Each stage is a function of the shared ``Demo`` state and appears in ``STAGES``; later stages (serve the
model, monitor it) are added by appending to that list.

- "ingest" turns scikit-learn's bundled breast-cancer data (no downloads) into a table of patients, with
  a synthetic ``patient_id`` and ``contact_email`` per row (drawn from the seed, so a rerun writes the
  same bytes), writes it to a CSV file and ingests it with ``steward.ingest``: checked against the
  dataset's expectations, profiled, scanned for PII, and published as the raw version ``breast-cancer@1``
  followed by its protected copy ``breast-cancer@2`` (patient ids pseudonymised, e-mails dropped), whose
  parent is the raw one. The same content is the same version, so a rerun publishes nothing new.
- "track" reads the protected version back with ``steward.get_dataset``, trains a classifier on it inside
  ``steward.start_run`` and records params, per-epoch and per-fold metrics, final metrics, tags, the
  model (skops, never pickle), plots and a table of test predictions.
- "register" registers that model with its signature and the protected dataset version it was trained
  on, points the alias ``staging`` at it, loads it back through the alias, and prints its model card and
  lineage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
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
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn
from rich.table import Column, Table

import steward
from steward.cli.lineage import lineage_tree
from steward.cli.output import (
    artifact_table,
    console,
    format_duration,
    format_number,
    key_value_table,
    new_table,
    sparkline,
    styled_status,
)
from steward.core.time import from_ms, now_ms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from steward.data.models import QuarantinedBatch

EXPERIMENT = "quickstart"
RUN_NAME = "sgd-logistic-regression"
MODEL_NAME = "breast-cancer"
DATASET_NAME = "breast-cancer"
ID_COLUMN = "patient_id"
TARGET = "target"
TARGET_NAMES = ["malignant", "benign"]
"""What ``target`` 0 and 1 mean (scikit-learn's ``load_breast_cancer().target_names``)."""
Array = npt.NDArray[Any]


@dataclass
class Demo:
    """What the stages share: where to print, the seed, and what earlier stages produced.

    Attributes:
        console: Where stages print.
        seed: Seeds every random choice, so a rerun reproduces the data and the numbers.
        env_prefix: Prefix for the commands shown at the end (``STEWARD_HOME=… `` with ``--home``).
        raw: The raw dataset version the "ingest" stage published.
        dataset: Its protected copy, which the "track" stage trains on.
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
    raw: steward.DatasetVersion | None = None
    dataset: steward.DatasetVersion | None = None
    run_id: str | None = None
    data: Splits | None = None
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
class Splits:
    """The demo's data, split into train, validation (per-epoch scores) and held-out test sets."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    feature_names: list[str]
    target_names: list[str]


def patient_table(seed: int) -> pd.DataFrame:
    """Return the breast-cancer biopsies as a table of patients: an id, the 30 features, target, an e-mail.

    The ids (``P-000123``) and e-mails (``patient123@example.org``) are synthetic: a permutation of the
    row numbers drawn from ``seed``, so the same seed always gives the same table, byte for byte.

    Args:
        seed: Seeds which number each row gets.
    """
    from sklearn.datasets import load_breast_cancer

    table: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    numbers = np.random.default_rng(seed).permutation(len(table)) + 1
    table.insert(0, ID_COLUMN, [f"P-{n:06d}" for n in numbers])
    table["contact_email"] = [f"patient{n}@example.org" for n in numbers]
    return table


def expectations(features: list[str]) -> dict[str, Any]:
    """Return the checks every ingestion of the dataset must pass (``DatasetSchema``'s dict form).

    Args:
        features: The names of the numeric feature columns: measurements, so never negative.
    """
    columns: dict[str, Any] = {
        ID_COLUMN: {"type": "string", "nullable": False, "unique": True, "regex": r"P-[0-9]{6}"}
    }
    columns |= {name: {"type": "float64", "min": 0} for name in features}
    columns["mean radius"] |= {"max": 100}  # mm: a radius beyond 10 cm is a unit or entry error
    columns["mean area"] |= {"max": 10_000}
    columns[TARGET] = {"type": "int64", "nullable": False, "allowed": [0, 1]}
    columns["contact_email"] = {"type": "string", "regex": r"[^@\s]+@[^@\s]+\.[a-z]+"}
    return {
        "columns": columns,
        "min_rows": 500,
        "sql_checks": {"worst_radius_at_least_mean": '"worst radius" >= "mean radius"'},
    }


PRIVACY: dict[str, Any] = {
    "by_column": {ID_COLUMN: {"action": "pseudonymize"}},
    "by_tag": {"email": {"action": "drop"}},
}
"""The dataset's privacy policy (``PrivacyPolicy``'s dict form): the patient id becomes a keyed hash,
which still joins but cannot be reversed without this installation's key; e-mail addresses are dropped."""


def ingest(demo: Demo) -> None:
    """Stage "ingest": publish the patients table as a checked raw version and its protected copy."""
    table = patient_table(demo.seed)
    features = [c for c in table.columns if c not in (ID_COLUMN, TARGET, "contact_email")]
    started = from_ms(now_ms())  # what versions record, to the millisecond: older ones were reused
    with (
        demo.console.status("Ingesting: validating, profiling, scanning for personal data …"),
        tempfile.TemporaryDirectory(prefix="steward-quickstart-") as folder,
    ):
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
            _print_quarantined(demo.console, result.quarantined)
            raise typer.Exit(code=1)
        raw, protected = result.raw[-1], result.versions[-1]
        # The ingestion's own report is not returned: run the same checks on what it stored, to count them.
        service = steward.default_connection().data
        checks = service.validate_version(DATASET_NAME, number=raw.number) if service else None
    out = demo.console
    what = checks.summary() if checks is not None else "its checks passed"
    out.print(f"Ingested {path.name} ({len(raw.arrow_schema)} columns): {what}.")
    out.print(_versions_table(raw, protected, raw.created_at < started, result.reused[-1]))
    found = raw.pii_tags
    pii = ", ".join(f"{escape(c)} → {escape(', '.join(t))}" for c, t in found.items()) or "none"
    out.print(f"Personal data found in {raw.ref}: {pii}.")
    out.print(f"Privacy policy: {_policy_effects(raw, found)}; every other column kept.")
    out.print(_profile_table(protected, ["mean radius", "mean area", TARGET]))
    demo.raw, demo.dataset = raw, protected
    demo.notes.append(
        f"{protected.ref} is {raw.ref} with the policy applied: pseudonyms are HMAC-SHA-256 under this "
        f"home's key, so they still join but cannot be reversed. Ingesting the same file again publishes "
        f"nothing new: the same content is the same version."
    )
    demo.next_steps += [
        ("steward data list", "every dataset and its latest version"),
        (f"steward data show {DATASET_NAME}", "the protected version: rows, digest, columns, source"),
        (f"steward data profile {DATASET_NAME}", "per-column statistics, with histograms"),
        (f"steward data scan {DATASET_NAME} --version {raw.number}", "the personal data in the raw version"),
    ]


def _print_quarantined(out: Console, batches: Sequence[QuarantinedBatch]) -> None:
    for batch in batches:
        failed = [r for r in batch.report.get("results", ()) if not r.get("passed")]
        names = ", ".join(f"{r.get('check')}({r.get('column') or r.get('name') or ''})" for r in failed)
        out.print(
            f"[red]The data failed {len(failed)} check(s): {escape(names)}[/red]. It is kept in "
            f"quarantine: steward data quarantine show {batch.id}"
        )


def _versions_table(
    raw: steward.DatasetVersion, protected: steward.DatasetVersion, raw_reused: bool, reused: bool
) -> Table:
    table = new_table(
        Column("Version", no_wrap=True),
        "Kind",
        "Parent",
        Column("Rows", justify="right"),
        Column("Content digest", no_wrap=True),
        Column("", no_wrap=True),
    )
    parent = raw.ref if protected.parent_id == raw.id else str(protected.parent_id)
    for version, kind, source, again in (
        (raw, "raw", "-", raw_reused),
        (protected, "protected", parent, reused),
    ):
        state = "[dim]reused[/dim]" if again else "[green]new[/green]"
        digest = f"{version.content_digest[:12]}…"
        table.add_row(version.ref, kind, source, f"{version.rows:,}", digest, state)
    return table


def _policy_effects(raw: steward.DatasetVersion, found: Mapping[str, list[str]]) -> str:
    """Say what the policy did to each column it did not keep, and which rule made it do so."""
    from steward.data.privacy import PrivacyPolicy

    policy = PrivacyPolicy.from_dict(PRIVACY)
    done = {"drop": "dropped", "pseudonymize": "pseudonymised", "mask": "masked", "generalize": "generalised"}
    effects = []
    for name in (str(c["name"]) for c in raw.arrow_schema):
        rule = policy.rule_for(name, found.get(name, ()))
        if rule.action != "keep":
            why = "its column rule" if name in policy.by_column else f"tag {', '.join(found.get(name, ()))}"
            effects.append(f"{escape(name)} {done[rule.action]} ({why})")
    return ", ".join(effects) or "nothing to do"


def _profile_table(version: steward.DatasetVersion, columns: list[str]) -> Table:
    table = new_table(
        Column("Column", no_wrap=True),
        Column("Min", justify="right"),
        Column("Max", justify="right"),
        Column("Mean", justify="right"),
        Column("Distribution", no_wrap=True),
        title=f"Profile of {version.ref} (a glance; steward data profile shows every column)",
    )
    profiles = {str(c["name"]): c for c in version.profile.get("columns", ())}
    for name in columns:
        stats = profiles.get(name, {})
        counts = (stats.get("histogram") or {}).get("counts") or ()
        table.add_row(
            escape(name),
            format_number(stats.get("min"), digits=4),
            format_number(stats.get("max"), digits=4),
            format_number(stats.get("mean"), digits=4),
            f"[cyan]{sparkline(counts)}[/cyan]",
        )
    return table


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


def register(demo: Demo) -> None:
    """Stage "register": register the model, alias it staging, load it back, print card and lineage."""
    if demo.data is None or demo.model is None or demo.run_id is None or demo.dataset is None:
        raise RuntimeError("the register stage needs the ingest stage's data and the track stage's model")
    data, model, dataset = demo.data, demo.model, demo.dataset
    features = pd.DataFrame(data.x_train, columns=data.feature_names)
    signature = steward.infer_signature(features, model.predict_proba(data.x_train))
    version = steward.register_model(
        MODEL_NAME,
        model,
        flavor="sklearn",
        run_id=demo.run_id,
        signature=signature,
        datasets={"train": dataset.id},
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
    source = f", the protected copy of {demo.raw.ref}" if demo.raw is not None else ""
    out.print(f"The train dataset {dataset.id} is {dataset.ref}{source}.")
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
        (f"steward lineage dataset {dataset.id}", f"every model trained on {dataset.ref}"),
    ]


STAGES: list[Stage] = [
    Stage("ingest", "ingest the data: validate, profile, scan for PII, protect", ingest),
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
    """Run the end-to-end demo: ingest bundled data, train and track a model on it, register it."""
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
