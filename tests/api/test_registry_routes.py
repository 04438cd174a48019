"""The registry routes over real HTTP: statuses, error bodies, content types and headers a REST user sees.

What the routes do is covered by ``tests/registry/test_contract.py`` through the client; this checks
what the client hides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_tracking_routes import assert_error


@pytest.fixture
def api(steward_server: str) -> Iterator[httpx.Client]:
    """A plain HTTP client on the test server's ``/api/v1``."""
    with httpx.Client(base_url=f"{steward_server}/api/v1") as client:
        yield client


def upload(api: httpx.Client, data: bytes = b"weights", path: str = "model.bin") -> dict[str, Any]:
    response = api.post("/models/churn/files", params={"path": path}, content=data)
    assert response.status_code == 201, response.text
    return dict(response.json())


def register(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/models/churn/versions", json={"flavor": "sklearn", "files": [upload(api)], **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_openapi_lists_the_registry_routes(steward_server: str) -> None:
    paths = httpx.get(f"{steward_server}/openapi.json").json()["paths"]
    for path in (
        "/api/v1/models/{name}/files",
        "/api/v1/models/{name}/versions/{version}/files/{path}",
        "/api/v1/resolve",
        "/api/v1/lineage/datasets/{dataset_id}",
    ):
        assert path in paths
    upload_body = paths["/api/v1/models/{name}/files"]["post"]["requestBody"]["content"]
    assert "application/octet-stream" in upload_body
    assert paths["/api/v1/models"]["get"]["tags"] == ["registry"]


def test_registering_answers_201_and_mistakes_answer_400_404_409_422(api: httpx.Client) -> None:
    stored = upload(api, b"weights")
    assert stored == {"path": "model.bin", "digest": hashlib.sha256(b"weights").hexdigest(), "size": 7}
    version = register(api)
    assert (version["version"], version["uri"], version["status"]) == (
        "1.0.0",
        "models:/churn/1.0.0",
        "READY",
    )
    assert_error(api.post("/models/churn/files", content=b"x"), 422, "invalid_input", "path")
    assert_error(api.post("/models/churn/files", params={"path": "../x"}, content=b"x"), 400, "invalid_input")
    assert_error(
        api.post("/models/a%20b/files", params={"path": "m.bin"}, content=b"x"), 400, "invalid_input"
    )
    duplicate = api.post(
        "/models/churn/versions", json={"flavor": "sklearn", "files": [stored], "version": "1.0.0"}
    )
    assert_error(duplicate, 409, "conflict", "version")
    bad_version = api.post(
        "/models/churn/versions", json={"flavor": "sklearn", "files": [stored], "version": "1.2"}
    )
    assert_error(bad_version, 400, "invalid_input", "version")
    no_run = api.post(
        "/models/churn/versions", json={"flavor": "sklearn", "files": [stored], "run_id": "nope"}
    )
    assert_error(no_run, 404, "not_found")
    unknown_field = api.post(
        "/models/churn/versions", json={"flavor": "sklearn", "files": [stored], "owner": "x"}
    )
    assert_error(unknown_field, 422, "invalid_input", "owner")
    nested = api.post("/models/churn/versions", json={"flavor": "sklearn", "files": [{**stored, "mode": 1}]})
    assert_error(nested, 422, "invalid_input", "files.0.mode")
    assert_error(api.post("/models/churn/versions", content=b"{"), 422, "invalid_input", "body")
    fmt = api.post("/models/churn/versions/1.0.0/formats/onnx", json={"flavor": "onnx", "files": [stored]})
    assert fmt.status_code == 201 and set(fmt.json()["formats"]) == {"onnx"}
    again = api.post("/models/churn/versions/1.0.0/formats/onnx", json={"flavor": "onnx", "files": [stored]})
    assert_error(again, 409, "conflict", "format")


def test_reading_answers_json_and_404_or_400_for_what_is_not_there(api: httpx.Client) -> None:
    version = register(api)
    assert api.get("/models").json()["models"][0]["name"] == "churn"
    assert api.get("/models/churn").json()["latest_version"] == "1.0.0"
    assert api.get("/models/churn/versions").json() == {"versions": [version]}
    assert api.get("/models/churn/versions/1.0.0").json() == version
    assert api.get("/resolve", params={"uri": "models:/churn@latest"}).json() == version
    assert_error(api.get("/models/nope"), 404, "not_found", "model")
    assert_error(api.get("/models/churn/versions/9.9.9"), 404, "not_found", "version")
    assert_error(api.get("/models/churn/versions/1.2"), 400, "invalid_input", "version")
    assert_error(api.get("/resolve", params={"uri": "churn"}), 400, "invalid_input", "uri")
    assert_error(api.get("/resolve"), 422, "invalid_input", "uri")
    assert api.get("/lineage/datasets/ds-1").json() == {"models": []}
    assert api.get("/lineage/datasets/folder/ds-1").json() == {"models": []}  # ids may hold '/'
    lineage = api.get("/models/churn/versions/1.0.0/lineage").json()
    assert (lineage["version"], lineage["run"]) == ("1.0.0", None)


def test_aliases_and_status_answer_200_204_404_409(api: httpx.Client) -> None:
    register(api)
    moved = api.put("/models/churn/aliases/production", json={"version": "1.0.0", "reason": "go"})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["production"]
    refused = api.put("/models/churn/aliases/production", json={"version": "1.0.0", "by": "me"})
    assert_error(refused, 422, "invalid_input", "by")
    assert_error(api.put("/models/churn/aliases/latest", json={"version": "1.0.0"}), 400, "invalid_input")
    assert_error(api.post("/models/churn/versions/1.0.0/archive"), 409, "conflict", "version")
    history = api.get("/models/churn/aliases/history", params={"alias": "production"}).json()
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in history["events"]] == [
        (None, "1.0.0", "go")
    ]
    deleted = api.delete("/models/churn/aliases/production", params={"reason": "done"})
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(api.delete("/models/churn/aliases/production"), 404, "not_found", "alias")
    archived = api.post("/models/churn/versions/1.0.0/archive", json={"reason": "old"})
    assert archived.status_code == 200 and archived.json()["status"] == "ARCHIVED"
    held = api.put("/models/churn/aliases/staging", json={"version": "1.0.0"})
    assert_error(held, 409, "conflict", "version")
    assert api.post("/models/churn/versions/1.0.0/restore").json()["status"] == "READY"


def test_file_download_is_octet_stream_with_the_recorded_digest(api: httpx.Client, tmp_path: Path) -> None:
    version = register(api)
    response = api.get("/models/churn/versions/1.0.0/files/model.bin")
    assert response.status_code == 200 and response.content == b"weights"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-steward-digest"] == version["manifest"]["files"][0]["digest"]
    manifest = api.get("/models/churn/versions/1.0.0/files/steward-model.yaml")
    assert manifest.headers["x-steward-digest"] == version["manifest_digest"]
    assert_error(api.get("/models/churn/versions/1.0.0/files/other.bin"), 404, "not_found", "path")
    missing_format = api.get("/models/churn/versions/1.0.0/files/model.bin", params={"format": "onnx"})
    assert_error(missing_format, 404, "not_found", "format")
    digest = version["manifest"]["files"][0]["digest"]
    blob = tmp_path / "server-home" / "artifacts" / "blobs" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    corrupt = assert_error(api.get("/models/churn/versions/1.0.0/files/model.bin"), 500, "integrity_error")
    assert digest in corrupt["message"]


def test_card_downloads_are_markdown_or_html(api: httpx.Client) -> None:
    register(api)
    saved = api.put("/models/churn/versions/1.0.0/card", json={"fields": {"intended_use": "Retention."}})
    assert saved.status_code == 200 and saved.json()["fields"]["intended_use"] == "Retention."
    assert_error(
        api.put("/models/churn/versions/1.0.0/card", json={"intended_use": "x"}), 422, "invalid_input"
    )
    markdown = api.get("/models/churn/versions/1.0.0/card")
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "Retention." in markdown.text
    html = api.get("/models/churn/versions/1.0.0/card", params={"format": "html"})
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "Retention." in html.text
    pdf = api.get("/models/churn/versions/1.0.0/card", params={"format": "pdf"})
    assert_error(pdf, 400, "invalid_input", "format")
