"""What the pipeline's register step did: the version, its ``staging`` alias, its card and lineage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.markdown import Markdown

import steward
from steward.cli.lineage import lineage_tree
from steward.cli.quickstart.state import MODEL_NAME, TARGET, Demo


def show_registration(demo: Demo, version: steward.ModelVersion, test: pd.DataFrame, native: Any) -> None:
    """Print what the pipeline's register step did: the version, its alias, its card and lineage.

    Args:
        demo: The demo's state.
        version: The registered version.
        test: The held-out rows (features and target), to check the loaded model predicts the same.
        native: The trained model, as the train step returned it.
    """
    if demo.dataset is None:
        raise RuntimeError("show the ingestion before the registration")
    dataset = demo.dataset
    loaded = steward.load_model(f"models:/{MODEL_NAME}@staging")
    features = test.drop(columns=[TARGET])
    same = np.allclose(loaded.predict(features), native.predict_proba(features.to_numpy()))
    registry = steward.default_connection().registry
    signature = version.signature
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
        f"signature ({len(signature.inputs.columns) if signature else 0} named float columns).",
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
