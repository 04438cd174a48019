"""Error mapping: each failure is one status and ``{"error": {code, message, details}}``, no traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from steward import errors
from steward.api.app import create_app
from steward.api.errors import STATUS_BY_ERROR, status_of
from steward.config import load_settings
from tests.plugins.server import running_server


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """An app on an empty home, not yet served, so a test can break its service first."""
    return create_app(load_settings(home=tmp_path / "home"))


@pytest.fixture
def served(app: FastAPI) -> Iterator[httpx.Client]:
    """An HTTP client on ``app``, served for real."""
    with running_server(app) as url, httpx.Client(base_url=f"{url}/api/v1") as client:
        yield client


def break_get_run(app: FastAPI, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    def fail(run_id: str) -> Any:
        raise exc

    monkeypatch.setattr(app.state.tracking, "get_run", fail)


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.NotFound, 404),
        (errors.AlreadyExists, 409),
        (errors.InvalidInput, 400),
        (errors.Conflict, 409),
        (errors.Unauthenticated, 401),
        (errors.Forbidden, 403),
        (errors.PolicyViolation, 403),
        (errors.ResidencyViolation, 403),
        (errors.UnsafeArtifact, 400),
        (errors.IntegrityError, 500),
        (errors.ServiceUnavailable, 503),
        (errors.StewardError, 500),
    ],
)
def test_each_steward_error_has_its_status_and_body(
    app: FastAPI,
    served: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    cls: type[errors.StewardError],
    status: int,
) -> None:
    break_get_run(app, monkeypatch, cls("it went wrong", {"field": "run_id", "hint": [1, 2]}))
    response = served.get("/runs/abc")
    assert response.status_code == status
    assert response.json() == {
        "error": {
            "code": cls.code,
            "message": "it went wrong",
            "details": {"field": "run_id", "hint": [1, 2]},
        }
    }


def test_every_error_class_is_mapped() -> None:
    mapped = set(STATUS_BY_ERROR) | {errors.StewardError}
    assert mapped == set(errors.ERRORS_BY_CODE.values())


def test_a_subclass_takes_its_nearest_mapped_ancestors_status() -> None:
    class GoneRun(errors.NotFound):
        code = "gone"

    class FlushFailed(errors.StewardError):
        code = "flush_failed"

    assert status_of(GoneRun("x")) == 404
    assert status_of(FlushFailed("x")) == 500


def test_unexpected_exception_is_a_500_without_traceback(
    app: FastAPI, served: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_get_run(app, monkeypatch, RuntimeError("secret connection string postgres://u:pw@db"))
    with caplog.at_level(logging.ERROR, logger="steward.api"):
        response = served.get("/runs/abc")
    assert response.status_code == 500
    error = response.json()["error"]
    request_id = response.headers["x-request-id"]
    assert error["code"] == "internal_error"
    assert error["message"] == f"internal error (request id {request_id})"
    assert error["details"] == {"request_id": request_id}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
    assert served.get("/health").status_code == 200  # and the server carries on


def test_client_request_id_is_echoed(served: httpx.Client) -> None:
    assert served.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"


def test_unknown_route_and_method_keep_the_error_shape(served: httpx.Client) -> None:
    missing = served.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "/api/v1/nowhere" in missing.json()["error"]["message"]
    wrong_method = served.patch("/experiments")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert "allow" in wrong_method.headers


def test_validation_error_lists_every_bad_field(served: httpx.Client) -> None:
    response = served.post("/runs/search", json={"experiments": "churn", "max_results": "many", "extra": 1})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert {e["field"] for e in error["details"]["errors"]} == {"experiments", "max_results", "extra"}
    assert error["details"]["field"] in error["message"]
    assert "(and 2 more)" in error["message"]


def test_malformed_json_names_the_body(served: httpx.Client) -> None:
    response = served.post("/experiments", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "body"
