"""Model cards: a version's documentation, half written by people and half by the registry.

In the spirit of Mitchell et al., "Model Cards for Model Reporting" (2019), and of Hugging Face model
cards. People write the sections only they can know (:data:`CARD_FIELDS`: intended use, limitations,
ethical considerations …); the registry writes the facts it recorded (metrics, signature, requirements,
the producing run and its code commit, the dataset versions, the bundle's digests), so those cannot
drift from the model. A section nobody wrote is shown as "Not provided" rather than left out, so a
reviewer sees the gap.

:func:`render_card` returns Markdown (for repositories and terminals) and a self-contained HTML page
(inline CSS and an inline SVG chart of the metrics in [0, 1]; no external assets), from the Jinja2
templates in ``registry/templates/``. Rendering is deterministic: the same facts and text give the same
bytes, hence the same stored digest.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2

from steward.errors import InvalidInput
from steward.registry.models import ModelVersion

CARD_FIELDS: dict[str, str] = {
    "intended_use": "Intended use",
    "out_of_scope_use": "Out-of-scope use",
    "training_data": "Training data",
    "evaluation": "Evaluation",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
    "caveats": "Caveats and recommendations",
}
"""The sections people write, by field name, with their headings, in card order."""

MAX_FIELD_CHARS = 20_000
"""The longest text one section may hold."""

_BAR_WIDTH = 260  # pixels of a bar at value 1.0
_LABEL_WIDTH = 190
_ROW_HEIGHT = 24
_MAX_LABEL = 28  # characters of a metric name shown in the chart (the table shows it whole)


def check_card_fields(fields: Mapping[str, object]) -> dict[str, str]:
    """Check user-written card sections and return them as plain strings, trimmed.

    Args:
        fields: Section name (a key of :data:`CARD_FIELDS`) to text. An empty text clears a section.

    Returns:
        The sections, each stripped of surrounding whitespace.

    Raises:
        InvalidInput: For an unknown section (the message lists the known ones), a value that is not a
            string, or a text longer than :data:`MAX_FIELD_CHARS`; ``details["field"]`` names it.
    """
    if not isinstance(fields, Mapping):
        raise InvalidInput("card fields must be a mapping of section name to text", {"field": "fields"})
    checked: dict[str, str] = {}
    for name, text in fields.items():
        if name not in CARD_FIELDS:
            known = ", ".join(CARD_FIELDS)
            raise InvalidInput(
                f"unknown card field {name!r}: use one of {known}",
                {"field": str(name), "known": list(CARD_FIELDS)},
            )
        if not isinstance(text, str):
            raise InvalidInput(
                f"card field {name!r} must be text, got {type(text).__name__}", {"field": name}
            )
        if len(text) > MAX_FIELD_CHARS:
            raise InvalidInput(
                f"card field {name!r} is {len(text):,} characters long: the limit is {MAX_FIELD_CHARS:,}",
                {"field": name},
            )
        checked[name] = text.strip()
    return checked


def render_card(
    version: ModelVersion, lineage: Mapping[str, Any], fields: Mapping[str, str]
) -> tuple[str, str]:
    """Render a version's model card as Markdown and as a self-contained HTML page.

    Args:
        version: The version the card describes; its manifest supplies the recorded facts.
        lineage: What ``RegistryBackend.model_lineage`` returns for it (run, experiment, datasets).
        fields: The user-written sections (keys of :data:`CARD_FIELDS`); missing or empty ones are
            marked "Not provided".

    Returns:
        ``(markdown, html)``. User text is escaped in the HTML; in the Markdown it is kept as written,
        except in table cells, which never hold ``|`` or line breaks.
    """
    context = _context(version, lineage, fields)
    markdown, html = _templates()
    return markdown.render(context), html.render(context)


def _context(version: ModelVersion, lineage: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    manifest = version.manifest
    signature = version.signature
    found = lineage.get("run") or None
    run = None
    if found:
        run = {key: found.get(key) for key in ("id", "name", "experiment", "git_commit", "git_dirty")}
    metrics = sorted(version.metrics.items())
    datasets = [(str(d["role"]), str(d["id"])) for d in lineage.get("datasets") or ()]
    if not datasets:
        datasets = sorted(version.datasets.items())
    files = [("model", f.path, f.size, f.digest) for f in version.files]
    for fmt, fmt_manifest in sorted(version.formats.items()):
        files += [(fmt, f["path"], int(f["size"]), f["digest"]) for f in fmt_manifest.get("files", ())]
    return {
        "title": f"{version.model} {version.version}",
        "model": version.model,
        "version": version.version,
        "status": version.status.value,
        "aliases": ", ".join(version.aliases) or "none",
        "flavor": version.flavor,
        "formats": ", ".join(["model", *sorted(version.formats)]),
        "uri": version.uri,
        "created_at": version.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "created_by": version.created_by or "unknown",
        "description": version.description.strip(),
        "sections": [
            (heading, (fields.get(name) or "").strip(), "--" + name.replace("_", "-"))
            for name, heading in CARD_FIELDS.items()
        ],
        "metrics": [(name, f"{value:.6g}") for name, value in metrics],
        "chart": _chart(metrics),
        "inputs": signature.inputs.describe() if signature else [],
        "outputs": signature.outputs.describe() if signature and signature.outputs else [],
        "python_version": str(manifest.get("python_version") or ""),
        "requirements": [str(r) for r in manifest.get("requirements") or ()],
        "run": run,
        "params": sorted((found.get("params") or {}).items()) if found else [],
        "datasets": datasets,
        "files": [(fmt, path, f"{size:,} B", digest) for fmt, path, size, digest in files],
        "manifest_digest": version.manifest_digest,
    }


def _chart(metrics: list[tuple[str, float]]) -> dict[str, Any] | None:
    """The geometry of a horizontal bar chart of the metrics in [0, 1], or None if there are none."""
    unit = [(name, value) for name, value in metrics if 0.0 <= value <= 1.0]
    if not unit:
        return None
    bars = [
        {
            "label": name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…",
            "name": name,
            "value": f"{value:.4g}",
            "y": 8 + i * _ROW_HEIGHT,
            "width": round(value * _BAR_WIDTH, 1),
        }
        for i, (name, value) in enumerate(unit)
    ]
    return {
        "bars": bars,
        "label_width": _LABEL_WIDTH,
        "bar_width": _BAR_WIDTH,
        "width": _LABEL_WIDTH + _BAR_WIDTH + 70,
        "height": 16 + len(bars) * _ROW_HEIGHT,
    }


def _md_cell(value: object) -> str:
    """Markdown table cell text: line breaks folded to spaces and ``|`` written as an entity."""
    return re.sub(r"\s+", " ", str(value)).strip().replace("|", "&#124;")


@functools.cache
def _templates() -> tuple[jinja2.Template, jinja2.Template]:
    """The Markdown and HTML templates (``registry/templates/card.*.j2``), loaded on first use."""
    options: dict[str, Any] = {
        "loader": jinja2.PackageLoader("steward.registry", "templates"),
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": True,
        "undefined": jinja2.StrictUndefined,
    }
    markdown = jinja2.Environment(autoescape=False, **options)
    markdown.filters["cell"] = _md_cell
    html = jinja2.Environment(autoescape=True, **options)
    return markdown.get_template("card.md.j2"), html.get_template("card.html.j2")
