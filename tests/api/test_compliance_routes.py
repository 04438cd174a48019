"""The compliance route over real HTTP with auth on: formats, media types, permission, tenancy, errors."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from steward.api import compliance as compliance_api
from steward.api.app import create_app
from steward.api.auth import route_permission
from steward.api.identity import identity_service_of
from steward.config import load_settings
from steward.data.service import DataService
from steward.governance.context import acting_as, local_identity
from tests.api.test_tracking_routes import assert_error
from tests.plugins.server import running_server
from tests.registry.test_compliance import HOSTILE, build_scenario

PROJECT = "alpha"
PATH = "/models/churn/versions/1.1.0/compliance"


def with_compliance_route(app: FastAPI) -> FastAPI:
    """The app with the compliance router (``create_app`` includes it once wired)."""
    if not any(getattr(route, "path", "").endswith("/compliance") for route in app.routes):
        app.include_router(compliance_api.router)
    return app


@dataclass
class Server:
    url: str
    tokens: dict[str, str]

    def as_(self, who: str | None) -> httpx.Client:
        headers = {"X-Steward-Project": PROJECT}
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on; the scenario recorded in ``alpha``; ``aud`` a global auditor, ``vic`` a viewer of ``alpha``;
    a dataset of the same name in project ``beta``."""
    folder = tmp_path_factory.mktemp("compliance-api")
    app = with_compliance_route(create_app(load_settings(home=folder / "home", auth=True)))
    identities = identity_service_of(app.state)
    identities.create_user("root", global_role="admin")  # a server with no admin awaits its bootstrap
    identities.create_user("aud", global_role="auditor")
    identities.create_project(PROJECT)
    identities.create_project("beta")
    identities.create_user("vic")
    identities.add_member(PROJECT, "vic", "viewer")
    tokens = {name: identities.issue_token(name).secret for name in ("aud", "vic")}
    build_scenario(app.state.platform, folder / "files", PROJECT)
    with acting_as(local_identity("mallory"), "beta"):
        DataService(app.state.platform).ingest(pa.table({"spend": [1.0]}), "people")
    with running_server(app) as url:
        yield Server(url, tokens)


def test_the_route_needs_audit_read() -> None:
    routes = [r for r in compliance_api.router.routes if isinstance(r, APIRoute)]
    assert {(sorted(r.methods or ())[0], r.path): route_permission(r) for r in routes} == {
        ("GET", "/api/v1/models/{name}/versions/{version}/compliance"): "audit:read"
    }


def test_json_is_the_default_and_holds_only_the_projects_entries(server: Server) -> None:
    with server.as_("aud") as aud:
        response = aud.get(PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    found = response.json()
    assert (found["project"], found["summary"]["description"]) == (PROJECT, HOSTILE)
    assert found["policies"][0]["verdict"]["passed"] is True and found["approvals"][0]["status"] == "approved"
    entries = found["audit"]["entries"]
    assert {e["details"].get("project") for e in entries} == {PROJECT}
    assert "mallory" not in {e["actor"] for e in entries}


def test_html_is_a_self_contained_page_under_a_strict_policy(server: Server) -> None:
    with server.as_("aud") as aud:
        response = aud.get(PATH, params={"format": "html"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert 'filename="churn-1.1.0-compliance.html"' in response.headers["content-disposition"]
    page = response.text
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)


def test_pdf_comes_as_an_attachment(server: Server) -> None:
    with server.as_("aud") as aud:
        response = aud.get(PATH, params={"format": "pdf"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="churn-1.1.0-compliance.pdf"'
    assert response.content.startswith(b"%PDF-")


def test_refusals_are_steward_errors(server: Server) -> None:
    with server.as_("aud") as aud, server.as_("vic") as vic, server.as_(None) as anonymous:
        assert_error(vic.get(PATH), 403, "forbidden")
        assert_error(anonymous.get(PATH), 401, "unauthenticated")
        assert_error(aud.get(PATH, params={"format": "docx"}), 400, "invalid_input", "format")
        assert_error(aud.get("/models/churn/versions/9.9.9/compliance"), 404, "not_found", "version")
        assert_error(aud.get("/models/nope/versions/1.0.0/compliance"), 404, "not_found", "model")


def test_a_server_without_fpdf2_says_which_extra_to_install(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fpdf", None)
    with server.as_("aud") as aud:
        error = assert_error(aud.get(PATH, params={"format": "pdf"}), 400, "invalid_input", "format")
    assert "pip install 'steward-ml[pdf]'" in error["message"]
