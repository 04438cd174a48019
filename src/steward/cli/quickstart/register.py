"""The "register" stage: register the model, alias it ``staging``, show its card and lineage."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.markdown import Markdown

import steward
from steward.cli.lineage import lineage_tree
from steward.cli.quickstart.state import (
    DATASET_NAME,
    MODEL_NAME,
    Demo,
)

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
