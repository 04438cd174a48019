"""``steward compliance report``: JSON to stdout or a file, HTML and PDF files, embedded and remote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import steward
from steward.api import compliance as compliance_api
from steward.api.app import create_app
from steward.cli import compliance
from steward.cli.app import StewardGroup
from steward.config import load_settings
from steward.store.platform import Platform
from tests.plugins.server import running_server
from tests.registry.test_compliance import HOSTILE, build_scenario


def build_app() -> typer.Typer:
    """The ``steward`` command with the group registered as ``cli/app.py`` registers it."""
    root = typer.Typer(cls=StewardGroup, no_args_is_help=True)
    root.add_typer(compliance.app, name="compliance")
    return root


APP = build_app()
runner = CliRunner()


def invoke(*args: str, code: int = 0) -> Any:
    result = runner.invoke(APP, ["compliance", "report", *args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def embedded(steward_home: Path, tmp_path: Path) -> Path:
    """The scenario of ``tests/registry/test_compliance.py`` recorded in the SDK's home."""
    platform = Platform.from_settings(load_settings())
    try:
        build_scenario(platform, tmp_path / "files")
    finally:
        platform.close()
    return tmp_path


def test_json_goes_to_stdout_and_to_a_file_on_request(embedded: Path) -> None:
    found = json.loads(invoke("churn", "1.1.0").stdout)
    assert (found["model"], found["version"], found["summary"]["description"]) == ("churn", "1.1.0", HOSTILE)
    assert found["policies"][0]["verdict"]["passed"] is True
    assert found["audit"]["verification"]["ok"] is True
    result = invoke("churn", "1.1.0", "--output", "report.json")
    assert "report.json" in result.stdout
    assert json.loads((embedded / "report.json").read_text())["data"][0]["ref"] == "people@2"


def test_html_and_pdf_are_written_next_to_you_by_default(embedded: Path) -> None:
    html = invoke("churn", "1.1.0", "--format", "html")
    page = (embedded / "churn-1.1.0-compliance.html").read_text()
    assert "churn-1.1.0-compliance.html" in html.stdout and "&lt;script&gt;" in page and "<script" not in page
    pdf = invoke("churn", "1.1.0", "-f", "pdf", "-o", str(embedded / "audit.pdf"))
    assert "audit.pdf" in " ".join(pdf.stdout.split())
    assert (embedded / "audit.pdf").read_bytes().startswith(b"%PDF-")


def test_unknown_versions_formats_and_folders_are_refused(embedded: Path) -> None:
    assert "has no version 9.9.9" in invoke("churn", "9.9.9", code=1).stderr
    assert "not found" in invoke("nope", "1.0.0", "-f", "html", code=1).stderr
    assert not (embedded / "nope-1.0.0-compliance.html").exists()
    invoke("churn", "1.1.0", "--format", "docx", code=2)
    assert "does not exist" in invoke("churn", "1.1.0", "-o", "missing/report.json", code=1).stderr


@pytest.fixture
def remote(steward_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``STEWARD_URI`` set to a server (auth off) with the compliance route, holding the scenario."""
    app = create_app(load_settings(home=tmp_path / "server-home"))
    if not any(getattr(r, "path", "").endswith("/compliance") for r in app.routes):
        app.include_router(compliance_api.router)
    build_scenario(app.state.platform, tmp_path / "files")
    with running_server(app) as url:
        monkeypatch.setenv("STEWARD_URI", url)
        steward.configure(uri=url)
        yield tmp_path


def test_the_report_comes_from_the_server(remote: Path) -> None:
    found = json.loads(invoke("churn", "1.1.0").stdout)
    assert found["summary"]["created_by"] == "eng" and found["approvals"][0]["approvers"] == ["ana"]
    invoke("churn", "1.1.0", "--format", "pdf")
    assert (remote / "churn-1.1.0-compliance.pdf").read_bytes().startswith(b"%PDF-")
    assert "has no version 2.0.0" in invoke("churn", "2.0.0", code=1).stderr
