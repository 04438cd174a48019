"""The Open Inference Protocol v2 with a real client: ``tritonclient.http`` against the server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import Models, make_app, serving

ROWS = [0, 5, 17, 250]


@pytest.fixture(scope="module")
def url(models: Models) -> Iterator[str]:
    with serving(make_app(models, references=("bc@production", "tensor"))) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[triton.InferenceServerClient]:
    http = triton.InferenceServerClient(url.removeprefix("http://"))
    yield http
    http.close()


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("bc") and client.is_model_ready("bc", "1.0.0")
    assert not client.is_model_ready("bc", "9.9.9")
    metadata = client.get_server_metadata()
    assert metadata["name"] == "steward" and "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_comes_from_the_signature(
    client: triton.InferenceServerClient, models: Models
) -> None:
    metadata = client.get_model_metadata("bc")
    assert metadata["name"] == "bc" and metadata["versions"] == ["1.0.0"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in metadata["inputs"]] == list(models.X.columns)
    assert {i["datatype"] for i in metadata["inputs"]} == {"FP64"} and metadata["inputs"][0]["shape"] == [-1]
    assert metadata["outputs"] == [{"name": "target", "datatype": "INT64", "shape": [-1]}]
    tensor = client.get_model_metadata("tensor", "1.0.0")
    assert tensor["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_one_input_per_column(
    client: triton.InferenceServerClient, models: Models, binary: bool
) -> None:
    frame = models.X.iloc[ROWS]
    inputs = []
    for name in frame.columns:
        tensor = triton.InferInput(name, [len(ROWS)], "FP64")
        tensor.set_data_from_numpy(frame[name].to_numpy(), binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("target", binary_data=binary)]
    result = client.infer("bc", inputs, outputs=outputs, request_id="r-1")
    assert result.as_numpy("target").tolist() == models.lr.predict(frame).tolist()
    response = result.get_response()
    assert response["model_name"] == "bc" and response["model_version"] == "1.0.0" and response["id"] == "r-1"


def test_infer_a_matrix_and_a_version(client: triton.InferenceServerClient, models: Models) -> None:
    frame = models.X.iloc[ROWS]
    matrix = triton.InferInput("X", [len(ROWS), 30], "FP32")
    matrix.set_data_from_numpy(frame.to_numpy(dtype=np.float32))
    result = client.infer("bc", [matrix], model_version="1.0.0")  # no outputs named: all, binary
    assert result.as_numpy("target").tolist() == models.lr.predict(frame).tolist()
    array = frame.to_numpy(dtype=np.float32)
    tensor = triton.InferInput("input", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array, binary_data=False)
    answer = client.infer("tensor", [tensor])
    assert answer.as_numpy("output").tolist() == models.lr_array.predict(array).tolist()


def test_refusals_reach_the_client_as_errors_with_their_message(client: triton.InferenceServerClient) -> None:
    wrong = triton.InferInput("input", [1, 30], "FP64")  # the tensor model takes float32
    wrong.set_data_from_numpy(np.zeros((1, 30)))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("tensor", [wrong])
    assert refused.value.status() == "422"
    assert isinstance(refused.value.message(), str) and "input 'input'" in refused.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("nope")
    assert unknown.value.status() == "404"
    assert unknown.value.message() == "no endpoint or model named 'nope' is served here"


def test_nested_json_data_and_its_shape_check(url: str, models: Models) -> None:
    rows = models.X.to_numpy(dtype=np.float32)[:2]
    body = {"inputs": [{"name": "input", "shape": [2, 30], "datatype": "FP32", "data": rows.tolist()}]}
    answer = httpx.post(f"{url}/v2/models/tensor/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == models.lr_array.predict(rows).tolist()
    body["inputs"][0]["shape"] = [3, 30]
    short = httpx.post(f"{url}/v2/models/tensor/infer", json=body)
    assert short.status_code == 422 and short.json()["details"]["field"] == "inputs[0].data"
    assert short.json()["error"] == "input 'input' has 60 values but its shape [3, 30] needs 90"
    assert short.json()["code"] == "invalid_input"
