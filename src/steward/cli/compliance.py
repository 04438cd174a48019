"""``steward compliance report``: one model version's compliance report, as JSON, HTML or PDF.

The report gathers the version's lineage (run, code commit, params, metrics, training datasets and their
derivation chains), the validation, quarantine history, PII handling and residency of each training
dataset version, the verdicts of the policies protecting its model's aliases, its approval requests, the
audit entries about it and the verification of the audit trail (``steward.registry.compliance``).

JSON goes to stdout unless ``--output`` names a file; HTML and PDF go to ``--output``, or to
``<model>-<version>-compliance.<ext>`` in the current directory. It works embedded and against a server
(``STEWARD_URI``), which builds the report (``GET /api/v1/models/…/compliance``) and needs a token with
``audit:read``. PDF needs fpdf2 where the report is built: ``pip install 'steward-ml[pdf]'``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from steward.cli.output import console, err_console
from steward.config import Settings, load_settings
from steward.errors import InvalidInput

app = typer.Typer(
    help="Compliance reports: everything recorded about a model version, in one document for an auditor.",
    no_args_is_help=True,
)


class ReportFormat(StrEnum):
    """The formats ``report`` writes."""

    json = "json"
    html = "html"
    pdf = "pdf"


def _remote(settings: Settings, model: str, version: str, fmt: str) -> bytes:
    from steward.client.http import HttpClient, segment

    path = f"/models/{segment(model)}/versions/{segment(version)}/compliance"
    with HttpClient.from_settings(settings) as http:
        return http.request("GET", path, params={"format": fmt}).content


def _embedded(settings: Settings, model: str, version: str, fmt: str) -> bytes:
    from steward.registry.compliance import build_report
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform

    platform = Platform.from_settings(settings)
    try:
        return build_report(RegistryService(platform), model, version).render(fmt)
    finally:
        platform.close()


def build(model: str, version: str, fmt: str) -> bytes:
    """The report of ``model`` ``version`` in ``fmt``: built here, or by the ``STEWARD_URI`` server.

    Raises:
        NotFound: The model or version does not exist.
        InvalidInput: For a bad name, version or format, or ``pdf`` without fpdf2.
    """
    settings = load_settings()
    if settings.uri:
        return _remote(settings, model, version, fmt)
    return _embedded(settings, model, version, fmt)


@app.command("report")
def report(
    model: Annotated[str, typer.Argument(help="The registered model's name.")],
    version: Annotated[str, typer.Argument(help="The version, e.g. 1.1.0.")],
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="json (to stdout by default), html or pdf.")
    ] = ReportFormat.json,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            show_default=False,
            help="The file to write (html and pdf default to <model>-<version>-compliance.<ext> here).",
        ),
    ] = None,
) -> None:
    """Build the compliance report of MODEL VERSION: lineage, data validation, PII handling, residency,
    policy verdicts, approvals and the audit entries, with the audit trail's verification."""
    kind = fmt.value
    if output is None and kind != "json":
        output = Path(f"{model}-{version}-compliance.{kind}")
    if output is not None and output.parent != Path() and not output.parent.is_dir():
        raise InvalidInput(
            f"cannot write {output}: folder {output.parent} does not exist", {"field": "output"}
        )
    with err_console.status(f"Building the compliance report of {escape(model)} {escape(version)} …"):
        content = build(model, version, kind)
    if kind == "json":
        # The same indented JSON whether the report was built here or by a server.
        content = (json.dumps(json.loads(content), indent=2, ensure_ascii=False) + "\n").encode()
    if output is None:
        typer.echo(content.decode(), nl=False)
        return
    try:
        output.write_bytes(content)
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror or exc}", {"field": "output"}) from None
    console.print(
        f"Wrote the {kind.upper()} compliance report of {escape(model)} {escape(version)} to "
        f"{escape(str(output))} ({len(content):,} bytes)."
    )
