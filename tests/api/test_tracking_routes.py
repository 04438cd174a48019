"""The tracking routes over real HTTP: what a user of the REST API (curl, another language) sees."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

import steward


@pytest.fixture
def api(steward_server: str) -> Iterator[httpx.Client]:
    """A plain HTTP client on the test server's ``/api/v1``."""
    with httpx.Client(base_url=f"{steward_server}/api/v1") as client:
        yield client


def new_run(api: httpx.Client, experiment: str = "churn", **body: Any) -> dict[str, Any]:
    response = api.post("/runs", json={"experiment": experiment, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """Assert ``response`` is Steward's JSON error body with this status and code, naming ``field``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["details"].get("field") == field, error
    assert "Traceback" not in response.text
    return dict(error)


def test_health_answers_with_the_version(api: httpx.Client) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": steward.__version__}
    assert response.headers["x-request-id"]


def test_docs_and_openapi_describe_the_routes(steward_server: str) -> None:
    page = httpx.get(f"{steward_server}/docs")
    assert page.status_code == 200
    # Works on a closed network: every script and style sheet comes from this server.
    assert "cdn" not in page.text.lower()
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css"):
        assert asset in page.text
        assert httpx.get(f"{steward_server}{asset}").status_code == 200
    schema = httpx.get(f"{steward_server}/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/runs/{run_id}/metrics" in paths
    assert "/api/v1/runs/{run_id}/artifacts/{path}" in paths
    metrics_body = paths["/api/v1/runs/{run_id}/metrics"]["post"]["requestBody"]
    assert "metrics" in metrics_body["content"]["application/json"]["schema"]["properties"]


def test_experiments_are_created_listed_and_found_by_name_or_id(api: httpx.Client) -> None:
    created = api.post("/experiments", json={"name": "churn", "description": "customer churn"})
    assert created.status_code == 201
    exp = created.json()
    assert exp["name"] == "churn"
    assert exp["description"] == "customer churn"
    assert not exp["deleted"]
    assert api.get("/experiments/churn").json() == exp
    assert api.get(f"/experiments/{exp['id']}").json() == exp
    assert api.get("/experiments").json() == {"experiments": [exp]}
    assert api.get("/experiments", params={"include_deleted": "true"}).json() == {"experiments": [exp]}
    assert_error(api.post("/experiments", json={"name": "churn"}), 409, "already_exists", "experiment")


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 129])
def test_invalid_experiment_name_is_400_naming_the_field(api: httpx.Client, name: str) -> None:
    error = assert_error(api.post("/experiments", json={"name": name}), 400, "invalid_input", "experiment")
    assert "experiment" in error["message"]


def test_unknown_experiment_and_run_are_404(api: httpx.Client) -> None:
    assert "nope" in assert_error(api.get("/experiments/nope"), 404, "not_found", "experiment")["message"]
    assert "0123" in assert_error(api.get("/runs/0123"), 404, "not_found", "run_id")["message"]
    assert_error(api.post("/runs/0123/metrics", json={"metrics": []}), 404, "not_found", "run_id")
    assert_error(api.get("/runs/0123/metrics/loss"), 404, "not_found", "run_id")
    assert_error(api.post("/runs/search", json={"experiments": ["nope"]}), 404, "not_found", "experiment")


def test_run_lifecycle_over_http(api: httpx.Client) -> None:
    system = {
        "user": "ana",
        "host": "box",
        "git_commit": "a" * 40,
        "git_dirty": False,
        "python_version": "3.11",
    }
    run = new_run(api, name="baseline", tags={"team": "risk"}, system=system)
    assert run["status"] == "RUNNING"
    assert run["name"] == "baseline"
    assert (run["user"], run["host"], run["git_dirty"]) == ("ana", "box", False)
    assert run["tags"] == {"team": "risk"}
    assert (
        api.post(f"/runs/{run['id']}/params", json={"params": {"C": 1.0, "model": "lr"}}).status_code == 204
    )
    assert api.post(f"/runs/{run['id']}/tags", json={"tags": {"stage": "dev"}}).status_code == 204
    assert api.post(f"/runs/{run['id']}/end", json={"status": "FAILED", "error": "boom"}).status_code == 204
    fetched = api.get(f"/runs/{run['id']}").json()
    assert (fetched["status"], fetched["error"]) == ("FAILED", "boom")
    assert fetched["params"] == {"C": "1.0", "model": "lr"}
    assert fetched["tags"] == {"team": "risk", "stage": "dev"}

    found = api.post("/runs/search", json={"experiments": ["churn"], "filter": "params.model = 'lr'"})
    assert [r["id"] for r in found.json()["runs"]] == [run["id"]]
    assert api.delete(f"/runs/{run['id']}").status_code == 204
    assert api.post("/runs/search", json={"experiments": ["churn"]}).json() == {"runs": []}
    assert_error(api.delete(f"/runs/{run['id']}"), 409, "conflict", "run_id")
    assert api.post(f"/runs/{run['id']}/restore").status_code == 204
    assert len(api.post("/runs/search", json={"experiments": ["churn"]}).json()["runs"]) == 1


def test_metric_columns_round_trip(api: httpx.Client) -> None:
    run = new_run(api)
    body = {
        "metrics": [
            {"key": "loss", "steps": [0, 1, 2], "values": [0.9, 0.5, 0.25], "timestamps": [10, 20, 30]},
            {"key": "val/acc", "steps": [0], "values": [1], "timestamps": [10]},
        ]
    }
    response = api.post(f"/runs/{run['id']}/metrics", content=orjson.dumps(body))
    assert response.status_code == 200
    assert response.json() == {"written": 4}
    history = api.get(f"/runs/{run['id']}/metrics/loss").json()
    assert history == {
        "key": "loss",
        "steps": [0, 1, 2],
        "values": [0.9, 0.5, 0.25],
        "timestamps": [10, 20, 30],
    }
    assert api.get(f"/runs/{run['id']}/metrics/val/acc").json()["values"] == [1.0]
    assert api.get(f"/runs/{run['id']}").json()["metrics"] == {"loss": 0.25, "val/acc": 1.0}
    assert_error(api.get(f"/runs/{run['id']}/metrics/never"), 404, "not_found", "metrics.never")


def test_timestamps_default_to_now(api: httpx.Client) -> None:
    run = new_run(api)
    body = {"metrics": [{"key": "loss", "steps": [0, 1], "values": [0.5, 0.4]}]}
    assert api.post(f"/runs/{run['id']}/metrics", json=body).json() == {"written": 2}
    stamps = api.get(f"/runs/{run['id']}/metrics/loss").json()["timestamps"]
    assert len(stamps) == 2
    assert all(s > 1_600_000_000_000 for s in stamps)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            b'{"metrics": [{"key": "loss", "steps": [0, 1], "values": [0.5, "x"], "timestamps": [1, 1]}]}',
            "metrics.loss",
        ),
        (
            b'{"metrics": [{"key": "loss", "steps": [0, 1], "values": [0.5, null], "timestamps": [1, 1]}]}',
            "metrics.loss",
        ),
        (
            b'{"metrics": [{"key": "loss", "steps": [0], "values": [true], "timestamps": [1]}]}',
            "metrics.loss",
        ),
        (
            b'{"metrics": [{"key": "loss", "steps": [1.5], "values": [0.5], "timestamps": [1]}]}',
            "metrics.loss.step",
        ),
        (
            b'{"metrics": [{"key": "loss", "steps": ["1"], "values": [0.5], "timestamps": [1]}]}',
            "metrics.loss.step",
        ),
        (
            b'{"metrics": [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [1.5]}]}',
            "metrics.loss.timestamp",
        ),
        (
            b'{"metrics": [{"key": "loss", "steps": [0, 1], "values": [0.5], "timestamps": [1]}]}',
            "metrics.loss.step",
        ),
        (b'{"metrics": [{"key": "bad key!", "steps": [0], "values": [0.5], "timestamps": [1]}]}', "metrics"),
    ],
)
def test_bad_metric_points_are_400_naming_the_field(api: httpx.Client, raw: bytes, field: str) -> None:
    run = new_run(api)
    assert_error(api.post(f"/runs/{run['id']}/metrics", content=raw), 400, "invalid_input", field)
    assert api.get(f"/runs/{run['id']}").json()["metrics"] == {}


def test_non_finite_metric_that_json_cannot_carry_is_refused(api: httpx.Client) -> None:
    run = new_run(api)
    for literal in (b"1e999", b"-1e999", b"NaN", b"Infinity"):
        raw = b'{"metrics": [{"key": "loss", "steps": [0], "values": [' + literal + b'], "timestamps": [1]}]}'
        error = assert_error(
            api.post(f"/runs/{run['id']}/metrics", content=raw), 400, "invalid_input", "body"
        )
        assert "JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "metrics"),
        ({"metric": []}, "metrics"),
        ({"metrics": {"loss": [1.0]}}, "metrics"),
        ({"metrics": [1.0]}, "metrics[0]"),
        ({"metrics": [{"key": 3, "steps": [0], "values": [1.0]}]}, "metrics[0].key"),
        ({"metrics": [{"key": "loss", "values": [1.0]}]}, "metrics[0].steps"),
        ({"metrics": [{"key": "loss", "steps": 0, "values": [1.0]}]}, "metrics[0].steps"),
        (
            {"metrics": [{"key": "loss", "steps": [0], "values": [1.0], "timestamps": 5}]},
            "metrics[0].timestamps",
        ),
        ({"metrics": [{"key": "loss", "steps": [0], "values": [1.0], "unit": "s"}]}, "metrics[0].unit"),
        ({"metrics": [{"key": "loss", "steps": [[0, 1], [2]], "values": [1.0, 2.0]}]}, "metrics[0].steps"),
        (
            {"metrics": [{"key": "loss", "steps": [[0], [1]], "values": [[1.0], [2.0]]}]},
            "metrics.loss.values",
        ),
    ],
)
def test_wrong_shaped_metrics_body_is_400_naming_the_field(api: httpx.Client, body: Any, field: str) -> None:
    run = new_run(api)
    assert_error(api.post(f"/runs/{run['id']}/metrics", json=body), 400, "invalid_input", field)


@pytest.mark.parametrize("path", ["/experiments", "/runs", "/runs/search"])
def test_malformed_json_body_is_4xx_not_500(api: httpx.Client, path: str) -> None:
    response = api.post(path, content=b'{"name": ', headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_input")


def test_malformed_json_metrics_body_is_400(api: httpx.Client) -> None:
    run = new_run(api)
    for raw in (b'{"metrics": [', b"", b"\xff\xfe"):
        assert_error(api.post(f"/runs/{run['id']}/metrics", content=raw), 400, "invalid_input", "body")


def test_request_body_fields_are_checked_by_name(api: httpx.Client) -> None:
    error = assert_error(api.post("/runs", json={"name": "x"}), 422, "invalid_input", "experiment")
    assert "experiment" in error["message"]
    assert_error(api.post("/runs", json={"experiment": "e", "parms": {}}), 422, "invalid_input", "parms")
    assert_error(api.post("/runs", json={"experiment": 5}), 422, "invalid_input", "experiment")
    run = new_run(api)
    assert_error(api.post(f"/runs/{run['id']}/end", json={"status": "DONE"}), 422, "invalid_input", "status")
    assert_error(
        api.post(f"/runs/{run['id']}/end", json={"status": "RUNNING"}), 400, "invalid_input", "status"
    )
    search = {"experiments": ["churn"], "max_results": True}
    assert_error(api.post("/runs/search", json=search), 422, "invalid_input", "max_results")
    search = {"experiments": ["churn"], "max_results": 0}
    assert_error(api.post("/runs/search", json=search), 400, "invalid_input", "max_results")
    bad_filter = {"experiments": ["churn"], "filter": "metrics.auc >>> 1"}
    assert_error(api.post("/runs/search", json=bad_filter), 400, "invalid_input")


def test_param_logged_again_with_another_value_is_409(api: httpx.Client) -> None:
    run = new_run(api)
    url = f"/runs/{run['id']}/params"
    assert api.post(url, json={"params": {"C": 1.0}}).status_code == 204
    assert api.post(url, json={"params": {"C": 1.0}}).status_code == 204
    error = assert_error(api.post(url, json={"params": {"C": 2.0}}), 409, "conflict")
    assert "C" in error["message"]
    assert_error(api.post(url, json={"params": {"C": None}}), 400, "invalid_input", "params.C")


def test_writes_to_a_finished_run_are_409(api: httpx.Client) -> None:
    run = new_run(api)
    assert api.post(f"/runs/{run['id']}/end", json={"status": "FINISHED"}).status_code == 204
    metrics = {"metrics": [{"key": "loss", "steps": [0], "values": [0.5], "timestamps": [1]}]}
    assert_error(api.post(f"/runs/{run['id']}/metrics", json=metrics), 409, "conflict")
    assert_error(api.post(f"/runs/{run['id']}/params", json={"params": {"a": 1}}), 409, "conflict")
    assert_error(api.put(f"/runs/{run['id']}/artifacts/model.txt", content=b"x"), 409, "conflict")
    assert_error(api.post(f"/runs/{run['id']}/end", json={"status": "FINISHED"}), 409, "conflict")
    assert api.post(f"/runs/{run['id']}/tags", json={"tags": {"note": "ok after end"}}).status_code == 204


def test_artifact_upload_download_and_listing(api: httpx.Client) -> None:
    run = new_run(api)
    data = bytes(range(256)) * 5000  # 1.28 MB, more than one chunk
    digest = hashlib.sha256(data).hexdigest()
    put = api.put(f"/runs/{run['id']}/artifacts/model/weights.bin", content=data)
    assert put.status_code == 201
    assert put.json()["path"] == "model/weights.bin"
    assert (put.json()["digest"], put.json()["size"]) == (digest, len(data))
    got = api.get(f"/runs/{run['id']}/artifacts/model/weights.bin")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["x-steward-digest"] == digest
    assert got.headers["content-length"] == str(len(data))
    listed = api.get(f"/runs/{run['id']}/artifacts").json()["artifacts"]
    assert [(a["path"], a["digest"]) for a in listed] == [("model/weights.bin", digest)]


def test_bad_or_unknown_artifact_paths_are_4xx(api: httpx.Client) -> None:
    run = new_run(api)
    assert_error(api.get(f"/runs/{run['id']}/artifacts/missing.txt"), 404, "not_found", "artifact_path")
    assert_error(
        api.put(f"/runs/{run['id']}/artifacts/a%2F..%2F..%2Fetc", content=b"x"), 400, "invalid_input"
    )
    assert_error(api.get("/runs/0123/artifacts"), 404, "not_found", "run_id")
