"""Bad input of every kind gets a 4xx JSON error naming the problem, never a 500, and the server goes on;
a model that fails is a 500 ``model_error``, counted, and the server goes on too."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.serving.conftest import Models, make_app, serving

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def url(models: Models) -> Iterator[str]:
    app = make_app(models, references=("bc@production", "bc_sk", "tensor"), max_request_bytes=LIMIT)
    with serving(app) as base:
        yield base


@pytest.fixture(scope="module")
def record(models: Models) -> dict[str, float]:
    return models.records([0])[0]


def _oip(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": inputs}


def _cases(record: dict[str, float]) -> list[tuple[str, str, Any, int, str | None]]:
    """(id, path, body, status, field): bodies are JSON-encoded unless bytes."""
    missing = {k: v for k, v in record.items() if k != "mean radius"}
    column = [{"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]
    return [
        ("malformed-json", "/predict/bc", b'{"records": [', 400, "body"),
        ("not-an-object", "/predict/bc", [1, 2], 400, "body"),
        ("no-payload-key", "/predict/bc", {"rows": []}, 400, "records"),
        ("two-payload-keys", "/predict/bc", {"records": [record], "columns": {}}, 400, "columns"),
        ("records-not-a-list", "/predict/bc", {"records": {"a": 1}}, 400, "records"),
        ("record-not-an-object", "/predict/bc", {"records": [[1, 2]]}, 400, "records[0]"),
        ("empty-records", "/predict/bc", {"records": []}, 400, "records"),
        ("missing-column", "/predict/bc", {"records": [missing]}, 422, "input"),
        (
            "string-in-float-column",
            "/predict/bc",
            {"records": [{**record, "mean radius": "12"}]},
            422,
            "mean radius",
        ),
        (
            "bool-in-float-column",
            "/predict/bc",
            {"records": [{**record, "mean radius": True}]},
            422,
            "mean radius",
        ),
        ("short-instance", "/predict/bc", {"instances": [[1.0, 2.0]]}, 422, "instances[0]"),
        ("tensor-wrong-width", "/predict/tensor", {"instances": [[0.0] * 29]}, 422, "input"),
        ("tensor-given-records", "/predict/tensor", {"records": [record]}, 422, "records"),
        ("oip-no-inputs", "/v2/models/bc/infer", {"inputs": []}, 400, "inputs"),
        (
            "oip-bad-datatype",
            "/v2/models/bc/infer",
            _oip([{**column[0], "datatype": "FP99"}]),
            400,
            "inputs[0].datatype",
        ),
        (
            "oip-bad-shape",
            "/v2/models/bc/infer",
            _oip([{**column[0], "shape": [-2]}]),
            400,
            "inputs[0].shape",
        ),
        (
            "oip-count-mismatch",
            "/v2/models/bc/infer",
            _oip([{**column[0], "shape": [2]}]),
            422,
            "inputs[0].data",
        ),
        (
            "oip-bytes-for-floats",
            "/v2/models/bc/infer",
            _oip([{"name": "mean radius", "shape": [1], "datatype": "BYTES", "data": ["x"]}]),
            422,
            "mean radius",
        ),
        (
            "oip-strings-as-fp64",
            "/v2/models/bc/infer",
            _oip([{**column[0], "data": ["1.0"]}]),
            422,
            "inputs[0].data",
        ),
        ("oip-unknown-input", "/v2/models/bc/infer", _oip([{**column[0], "name": "radius"}]), 422, "radius"),
        ("oip-missing-columns", "/v2/models/bc/infer", _oip(column), 422, "input"),
        (
            "oip-fp64-for-float32",
            "/v2/models/tensor/infer",
            _oip([{"name": "input", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 30}]),
            422,
            "input",
        ),
        (
            "oip-unknown-output",
            "/v2/models/tensor/infer",
            {
                **_oip([{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}]),
                "outputs": [{"name": "probabilities"}],
            },
            400,
            "outputs",
        ),
        ("unknown-model", "/predict/nope", {"records": [record]}, 404, "model"),
        ("unknown-oip-model", "/v2/models/nope/infer", _oip(column), 404, "model"),
        ("unknown-version", "/v2/models/bc/versions/9.9.9/infer", _oip(column), 404, "version"),
        ("unknown-route", "/v3/anything", {}, 404, "path"),
        ("unknown-oip-route", "/v2/anything", {}, 404, "path"),
    ]


def _post(url: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{url}{path}", content=content, headers=headers, timeout=30, **kwargs)


def _still_serving(url: str, record: dict[str, float]) -> None:
    answer = _post(url, "/predict/bc", {"records": [record]})
    assert answer.status_code == 200, answer.text


def _assert_error(answer: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    """Check the status and the error body of the route's family; return ``{code, message, details}``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    if answer.request.url.path.startswith("/v2"):  # the protocol's {"error": "<message>"}, plus ours
        assert set(body) == {"error", "code", "details"} and isinstance(body["error"], str), body
        error = {"code": body["code"], "message": body["error"], "details": body["details"]}
    else:
        error = body["error"]
        assert set(body) == {"error"} and set(error) == {"code", "message", "details"}, body
    assert error["message"] and isinstance(error["details"], dict)
    if field is not None:
        assert error["details"].get("field") == field, error
    assert answer.headers["x-request-id"]
    return error


def test_every_bad_request_is_a_named_4xx_and_the_server_goes_on(url: str, record: dict[str, float]) -> None:
    for name, path, body, status, field in _cases(record):
        answer = _post(url, path, body)
        try:
            _assert_error(answer, status, field)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from None
        _still_serving(url, record)


def test_oip_routes_answer_the_protocols_error_body_and_predict_keeps_stewards(url: str) -> None:
    tensor = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}
    oip = _post(url, "/v2/models/nope/infer", _oip([tensor]))
    plain = _post(url, "/predict/nope", {"records": [{"x": 1}]})
    assert oip.status_code == plain.status_code == 404
    message = "no endpoint or model named 'nope' is served here"
    assert oip.json() == {"error": message, "code": "not_found", "details": {"field": "model"}}
    assert plain.json() == {"error": {"code": "not_found", "message": message, "details": {"field": "model"}}}
    metadata = httpx.get(f"{url}/v2/models/nope", timeout=30)
    assert metadata.status_code == 404 and metadata.json()["error"] == message
    wrong = httpx.put(f"{url}/v2/models/bc/infer", timeout=30)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    assert isinstance(wrong.json()["error"], str)


def test_refusal_messages_name_the_problem(url: str, record: dict[str, float]) -> None:
    missing = {k: v for k, v in record.items() if k != "mean radius"}
    error = _assert_error(_post(url, "/predict/bc", {"records": [missing]}), 422, "input")
    assert "mean radius" in error["message"] and error["details"]["missing"] == ["mean radius"]
    typed = _assert_error(
        _post(url, "/predict/bc", {"records": [{**record, "mean radius": "12"}]}), 422, None
    )
    assert "must be float64, got string" in typed["message"]


def test_oversized_bodies_are_413_declared_or_streamed(url: str, record: dict[str, float]) -> None:
    big = json.dumps({"records": [record] * 200}).encode()
    assert len(big) > LIMIT
    _assert_error(_post(url, "/predict/bc", big), 413, None)

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it arrives
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = httpx.post(f"{url}/predict/bc", content=chunks(), timeout=30)
    _assert_error(streamed, 413, None)
    _still_serving(url, record)


def test_compressed_bodies_are_read_and_bad_ones_refused(url: str, record: dict[str, float]) -> None:
    body = gzip.compress(json.dumps({"records": [record]}).encode())
    answer = _post(url, "/predict/bc", body, headers={"content-encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    _assert_error(_post(url, "/predict/bc", b"not gzip", headers={"content-encoding": "gzip"}), 400, "body")
    _assert_error(
        _post(url, "/predict/bc", body, headers={"content-encoding": "br"}), 400, "content-encoding"
    )
    bomb = gzip.compress(b" " * (LIMIT * 4))
    _assert_error(_post(url, "/predict/bc", bomb, headers={"content-encoding": "gzip"}), 413, None)


def test_a_binary_header_that_does_not_fit_is_refused(url: str, record: dict[str, float]) -> None:
    body = json.dumps(_oip([{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}]))
    answer = _post(url, "/v2/models/tensor/infer", body.encode(),
                   headers={"inference-header-content-length": str(len(body) + 10)})  # fmt: skip
    _assert_error(answer, 400, "inference-header-content-length")
    _still_serving(url, record)


def test_wrong_methods_are_405(url: str) -> None:
    answer = httpx.get(f"{url}/predict/bc", timeout=30)
    assert _assert_error(answer, 405, None)["code"] == "method_not_allowed"
    _assert_error(httpx.delete(f"{url}/v2/models/bc", timeout=30), 405, None)


def test_a_failing_model_is_a_counted_500_and_the_server_goes_on(url: str, record: dict[str, float]) -> None:
    # scikit-learn's logistic regression refuses NaN, which the signature lets into a float column.
    answer = _post(url, "/predict/bc_sk", {"records": [{**record, "mean radius": None}]})
    error = _assert_error(answer, 500, None)
    assert error["code"] == "model_error" and "NaN" in error["message"]
    assert error["details"]["request_id"] == answer.headers["x-request-id"]
    good = _post(url, "/predict/bc_sk", {"records": [record, record]})
    assert good.status_code == 200 and len(good.json()["predictions"]) == 2
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'steward_model_errors_total{endpoint="bc_sk",version="1.0.0"} 1.0' in metrics
    assert 'steward_requests_total{code="500",endpoint="bc_sk",role="stable",version="1.0.0"} 1.0' in metrics
