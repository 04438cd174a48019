"""Model cards: field checks, what the Markdown and HTML show, escaping, the chart, and stored round trips."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from steward.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from steward.errors import InvalidInput
from steward.registry.cards import CARD_FIELDS, MAX_FIELD_CHARS, check_card_fields, render_card
from steward.registry.models import ModelVersion, RegistryBackend, VersionSpec, VersionStatus
from steward.tracking.models import RunStatus, SystemInfo

if TYPE_CHECKING:
    from tests.registry.conftest import RegistryEnv, Upload

FILE_DIGEST = "c" * 64
MANIFEST_DIGEST = "a" * 64
SIGNATURE = Signature(
    inputs=Schema(columns=(ColumnSpec("tenure", "int64"), ColumnSpec("plan", "string", optional=True))),
    outputs=Schema(tensor=TensorSpec("float64", (-1,))),
)


def version(metrics: dict[str, float] | None = None, signature: Signature | None = SIGNATURE) -> ModelVersion:
    """A READY version ``churn 1.2.0`` with one file, recorded facts and the alias ``production``."""
    manifest: dict[str, Any] = {
        "files": [{"path": "model.skops", "digest": FILE_DIGEST, "size": 12345}],
        "signature": signature.to_dict() if signature else None,
        "requirements": ["scikit-learn==1.5.2", "numpy==2.1.0"],
        "python_version": "3.11.9",
        "metrics": {"auc": 0.91, "log_loss": 3.25} if metrics is None else metrics,
        "datasets": {"train": "ds-train-1"},
    }
    return ModelVersion(
        id="v-1",
        model="churn",
        version="1.2.0",
        status=VersionStatus.READY,
        flavor="sklearn",
        run_id="run-1",
        description="Predicts which customers leave.",
        created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        created_by="alice",
        archived_at=None,
        manifest_digest=MANIFEST_DIGEST,
        manifest=manifest,
        aliases=("production",),
    )


LINEAGE: dict[str, Any] = {
    "run": {
        "id": "run-1",
        "name": "lr-baseline",
        "experiment": "churn-exp",
        "status": "FINISHED",
        "git_commit": "0123abcd",
        "git_dirty": True,
        "params": {"C": "0.5", "note": "a|b\nc"},
    },
    "datasets": [{"role": "train", "id": "ds-train-1"}, {"role": "holdout", "id": "ds-holdout-2"}],
}


# -- check_card_fields -----------------------------------------------------------------------------


def test_known_fields_are_returned_trimmed() -> None:
    checked = check_card_fields({"intended_use": "  Retention campaigns.\n", "caveats": ""})

    assert checked == {"intended_use": "Retention campaigns.", "caveats": ""}
    assert {"intended_use", "out_of_scope_use", "training_data", "evaluation", "limitations"} <= set(
        CARD_FIELDS
    )
    assert {"ethical_considerations", "caveats"} <= set(CARD_FIELDS)


def test_an_unknown_field_is_named_and_the_known_ones_listed() -> None:
    with pytest.raises(InvalidInput) as info:
        check_card_fields({"intended_use": "ok", "intended_usage": "typo"})

    assert "'intended_usage'" in info.value.message
    assert "limitations" in info.value.message
    assert info.value.details["field"] == "intended_usage"
    assert info.value.details["known"] == list(CARD_FIELDS)


@pytest.mark.parametrize("value", [42, None, ["a"], b"bytes"])
def test_a_field_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_card_fields({"limitations": value})

    assert "'limitations'" in info.value.message
    assert info.value.details["field"] == "limitations"


def test_text_over_the_limit_is_refused() -> None:
    assert check_card_fields({"evaluation": "x" * MAX_FIELD_CHARS}) == {"evaluation": "x" * MAX_FIELD_CHARS}
    with pytest.raises(InvalidInput) as info:
        check_card_fields({"evaluation": "x" * (MAX_FIELD_CHARS + 1)})

    assert "20,000" in info.value.message
    assert info.value.details["field"] == "evaluation"


# -- render_card -----------------------------------------------------------------------------------


def test_markdown_holds_the_written_sections_and_marks_the_gaps() -> None:
    markdown, _ = render_card(version(), LINEAGE, {"intended_use": "Retention campaigns.\n\nNot pricing."})

    assert markdown.startswith("# Model card: churn 1.2.0\n")
    assert "Predicts which customers leave." in markdown
    for fact in ("READY", "production", "sklearn", "models:/churn/1.2.0", "2026-03-04 05:06:07 UTC", "alice"):
        assert fact in markdown
    assert "## Intended use\n\nRetention campaigns.\n\nNot pricing.\n" in markdown
    for heading in CARD_FIELDS.values():
        assert f"## {heading}\n" in markdown
    assert markdown.count("**Not provided.**") == len(CARD_FIELDS) - 1
    assert "steward models card churn 1.2.0 --ethical-considerations TEXT" in markdown


def test_markdown_holds_the_recorded_facts() -> None:
    markdown, _ = render_card(version(), LINEAGE, {})

    assert "| auc | 0.91 |" in markdown
    assert "| log_loss | 3.25 |" in markdown
    assert "- tenure: int64\n- plan: string (optional)\n" in markdown
    assert "- tensor float64 [-1]" in markdown
    assert "3.11.9" in markdown
    assert "scikit-learn==1.5.2" in markdown
    assert "numpy==2.1.0" in markdown
    assert "lr-baseline" in markdown
    assert "run-1" in markdown
    assert "churn-exp" in markdown
    assert "`0123abcd` (dirty" in markdown
    assert "| C | 0.5 |" in markdown
    assert "| train | `ds-train-1` |" in markdown
    assert "| holdout | `ds-holdout-2` |" in markdown
    assert f"| model | model.skops | 12,345 B | `{FILE_DIGEST}` |" in markdown
    assert MANIFEST_DIGEST in markdown


def test_markdown_table_cells_hold_no_pipe_or_line_break() -> None:
    markdown, _ = render_card(version(metrics={"a|b": 0.5}), LINEAGE, {})

    assert "| note | a&#124;b c |" in markdown
    assert "| a&#124;b | 0.5 |" in markdown
    tables = re.findall(r"(?:^\|.*\n)+", markdown, flags=re.MULTILINE)
    assert len(tables) == 4  # metrics, params, datasets, files
    for table in tables:
        rows = table.splitlines()
        assert {row.count("|") for row in rows} == {rows[0].count("|")}  # every pipe is a cell border


def test_missing_facts_are_said_not_left_blank() -> None:
    bare = version(metrics={}, signature=None)

    markdown, html = render_card(bare, {"run": None, "datasets": []}, {})

    for text in (markdown, html):
        assert "No metrics recorded." in text
        assert "No signature recorded" in text
        assert "No run recorded" in text
    assert "| train | `ds-train-1` |" in markdown  # the manifest's datasets when lineage has none


def test_html_is_self_contained_and_holds_the_facts() -> None:
    _, html = render_card(version(), LINEAGE, {"limitations": "Weak on new plans."})

    assert html.startswith("<!DOCTYPE html>")
    assert "<style>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no external assets
    for fact in (
        "Model card: churn 1.2.0",
        "Weak on new plans.",
        "0.91",
        "tenure: int64",
        "tensor float64 [-1]",
        "scikit-learn==1.5.2",
        "lr-baseline",
        "0123abcd",
        "ds-holdout-2",
        FILE_DIGEST,
        MANIFEST_DIGEST,
    ):
        assert fact in html
    assert html.count("Not provided.") == len(CARD_FIELDS) - 1


def test_html_escapes_user_text() -> None:
    hostile = "<script>alert('x')</script> & <b>bold</b>"

    markdown, html = render_card(version(), LINEAGE, {"intended_use": hostile})

    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert hostile in markdown  # Markdown keeps what was written


def test_the_chart_shows_only_metrics_between_0_and_1() -> None:
    _, with_unit = render_card(version(metrics={"auc": 0.91, "recall": 0.0, "rmse": 14.2}), LINEAGE, {})
    _, without = render_card(version(metrics={"rmse": 14.2, "loss": -1.0}), LINEAGE, {})
    _, empty = render_card(version(metrics={}), LINEAGE, {})

    chart = with_unit[with_unit.index("<svg") : with_unit.index("</svg>")]
    assert "auc" in chart
    assert "recall" in chart
    assert "rmse" not in chart
    assert 'width="236.6"' in chart  # 0.91 of the 260-pixel bar
    assert "<svg" not in without
    assert "<svg" not in empty


def test_rendering_is_deterministic() -> None:
    assert render_card(version(), LINEAGE, {"caveats": "x"}) == render_card(
        version(), LINEAGE, {"caveats": "x"}
    )


# -- stored cards ----------------------------------------------------------------------------------


def test_a_saved_card_round_trips_and_fields_merge_across_saves(
    registry_env: RegistryEnv, upload: Upload
) -> None:
    registry: RegistryBackend = registry_env.registry
    tracking = registry_env.tracking
    run = tracking.create_run("churn-exp", "lr", system=SystemInfo(git_commit="feedc0de", git_dirty=False))
    tracking.log_params(run.id, {"C": 0.5})
    tracking.end_run(run.id, RunStatus.FINISHED)
    spec = VersionSpec(
        flavor="sklearn", files=[upload()], run_id=run.id, datasets={"train": "ds-1"}, metrics={"auc": 0.9}
    )
    registry.create_version("churn", spec)

    first = registry.save_card("churn", "1.0.0", {"intended_use": "Retention.", "limitations": "Old data."})
    second = registry.save_card("churn", "1.0.0", {"limitations": "Only EU customers.", "caveats": ""})
    markdown = registry.get_card("churn", "1.0.0")
    html = registry.get_card("churn", "1.0.0", "html")

    assert first["fields"] == {"intended_use": "Retention.", "limitations": "Old data."}
    assert second["fields"] == {
        "intended_use": "Retention.",
        "limitations": "Only EU customers.",
        "caveats": "",
    }
    assert second["markdown_digest"] != first["markdown_digest"]
    assert "Retention." in markdown
    assert "Only EU customers." in markdown
    assert "Old data." not in markdown
    assert "## Caveats and recommendations\n\n> **Not provided.**" in markdown
    for fact in ("| auc | 0.9 |", "lr", "churn-exp", "feedc0de", "| C | 0.5 |", "`ds-1`"):
        assert fact in markdown
    assert "Only EU customers." in html
    assert "<svg" in html


def test_a_card_never_saved_is_rendered_on_first_read(registry: RegistryBackend, upload: Upload) -> None:
    registry.create_version("churn", VersionSpec(flavor="sklearn", files=[upload()]))

    markdown = registry.get_card("churn", "1.0.0")

    assert markdown.count("**Not provided.**") == len(CARD_FIELDS)
    assert "No run recorded" in markdown


def test_saving_an_unknown_field_changes_nothing(registry: RegistryBackend, upload: Upload) -> None:
    registry.create_version("churn", VersionSpec(flavor="sklearn", files=[upload()]))
    registry.save_card("churn", "1.0.0", {"evaluation": "Holdout AUC."})

    with pytest.raises(InvalidInput):
        registry.save_card("churn", "1.0.0", {"evaluation": "changed", "bogus": "x"})

    assert "Holdout AUC." in registry.get_card("churn", "1.0.0")
