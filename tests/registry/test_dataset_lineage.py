"""Lineage across the data layer: source → raw version → protected copy → model, in both directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import steward
from steward.cli.app import app


def test_a_model_on_a_protected_copy_leads_back_to_the_source_and_forward_from_the_raw_data(
    steward_home: Path, tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {"email": [f"u{i}@example.org" for i in range(8)], "x": np.arange(8.0), "y": [0, 1] * 4}
    )
    source = tmp_path / "people.csv"
    frame.to_csv(source, index=False)
    result = steward.ingest(str(source), "people", privacy={"by_tag": {"email": {"action": "drop"}}})
    raw, protected = result.raw[0], result.version
    assert protected is not None
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    steward.register_model("risk", model, flavor="sklearn", datasets={"train": protected.id})
    connection = steward.default_connection()

    chain = connection.registry.model_lineage("risk", "1.0.0")["datasets"][0]
    erasure = connection.registry.dataset_lineage(raw.id)
    tree = CliRunner().invoke(app, ["lineage", "model", "risk", "1.0.0"]).stdout
    table = CliRunner().invoke(app, ["lineage", "dataset", raw.id]).stdout

    assert (chain["ref"], [step["ref"] for step in chain["chain"]]) == ("people@2", ["people@2", "people@1"])
    assert chain["chain"][-1]["source"]["url"].endswith("people.csv")
    assert [(m["model"], m["version"], m["via"]["ref"]) for m in erasure] == [("risk", "1.0.0", "people@2")]
    assert connection.registry.dataset_lineage(protected.id)[0].get("via") is None
    assert "from people@1" in tree and "source: file" in tree
    assert "risk 1.0.0 was trained on people@2, derived from this version" in " ".join(table.split())
