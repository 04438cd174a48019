"""``GET /api/v1/models/{name}/versions/{version}/verify`` over real HTTP, and the remote client and loader
that use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import NoMatchFound

from steward.api.app import create_app
from steward.api.auth import permission_of
from steward.api.model_signing import router
from steward.client.http import HttpClient
from steward.client.registry import RemoteRegistryService
from steward.config import load_settings
from steward.errors import IntegrityError
from steward.registry.loading import load_version
from steward.registry.signatures import VerificationReport
from tests.api.test_tracking_routes import assert_error
from tests.plugins.server import running_server

VERIFY = "/api/v1/models/{name}/versions/{version}/verify"


def signing_app(home: Path) -> FastAPI:
    """The API app; the signing router is added only while ``create_app`` does not include it yet."""
    app = create_app(load_settings(home=home))
    try:
        app.url_path_for("verify_version", name="churn", version="1.0.0")
    except NoMatchFound:
        app.include_router(router)
    return app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A server on its own home (``tmp_path/"server-home"``); yields its base URL."""
    with running_server(signing_app(tmp_path / "server-home")) as url:
        yield url


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server}/api/v1") as client:
        yield client


def register(api: httpx.Client, data: bytes = b"weights") -> dict[str, Any]:
    stored = api.post("/models/churn/files", params={"path": "model.bin"}, content=data)
    assert stored.status_code == 201, stored.text
    created = api.post("/models/churn/versions", json={"flavor": "sklearn", "files": [stored.json()]})
    assert created.status_code == 201, created.text
    return dict(created.json())


def tamper(tmp_path: Path, digest: str) -> None:
    blob = tmp_path / "server-home" / "artifacts" / "blobs" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")


def test_the_route_declares_models_read_and_is_documented(server: str) -> None:
    for route in router.routes:
        assert isinstance(route, APIRoute)
        assert permission_of([d.call for d in route.dependant.dependencies]) == "models:read"
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert paths[VERIFY]["get"]["tags"] == ["registry"]


def test_verify_answers_the_report(api: httpx.Client) -> None:
    register(api)

    response = api.get("/models/churn/versions/1.0.0/verify")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["key_id"]
    assert [c["name"] for c in body["checks"]] == ["key", "signature", "manifest", "file:model.bin"]


def test_a_version_that_fails_is_200_with_ok_false_and_names_the_check(
    api: httpx.Client, tmp_path: Path
) -> None:
    version = register(api, b"original")
    tamper(tmp_path, version["manifest"]["files"][0]["digest"])

    body = api.get("/models/churn/versions/1.0.0/verify").json()

    assert body["ok"] is False
    assert [c["name"] for c in body["checks"] if not c["ok"]] == ["file:model.bin"]


def test_unknown_and_malformed_versions_are_404_and_400(api: httpx.Client) -> None:
    register(api)

    assert_error(api.get("/models/churn/versions/9.9.9/verify"), 404, "not_found", "version")
    assert_error(api.get("/models/nope/versions/1.0.0/verify"), 404, "not_found", "model")
    assert_error(api.get("/models/churn/versions/1.2/verify"), 400, "invalid_input", "version")


def test_the_remote_client_verifies_and_its_loader_refuses_a_tampered_version(
    server: str, api: httpx.Client, tmp_path: Path
) -> None:
    created = register(api, b"original")
    with HttpClient(server) as http:
        remote = RemoteRegistryService(http)
        report = remote.verify_version("churn", "1.0.0")
        assert isinstance(report, VerificationReport) and report.ok
        tamper(tmp_path, created["manifest"]["files"][0]["digest"])
        with pytest.raises(IntegrityError, match=r"file:model\.bin") as info:
            load_version(remote, remote.get_version("churn", "1.0.0"), tmp_path / "client-cache")
    assert info.value.details["failed"] == ["file:model.bin"]
