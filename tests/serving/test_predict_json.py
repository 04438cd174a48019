"""``POST /predict/{name}``: records, columns and instances give the model's own predictions."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import steward
from steward.serving.fastpath import ColumnsCodec
from tests.serving.conftest import Models, make_app, serving

ROWS = [0, 1, 2, 3, 20, 40, 100, 300]


@pytest.fixture(scope="module")
def client(models: Models) -> Iterator[httpx.Client]:
    app = make_app(models, references=("bc@production", "bc_sk", "tensor"))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_records_agree_with_the_models_own_predict(client: httpx.Client, models: Models) -> None:
    expected = models.lr.predict(models.X.iloc[ROWS]).tolist()
    for endpoint in ("bc", "bc_sk"):
        answer = client.post(f"/predict/{endpoint}", json={"records": models.records(ROWS)})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == expected
        assert body["model"] == endpoint and body["version"] == "1.0.0"
        assert body["request_id"] == answer.headers["x-request-id"]


def test_columns_and_instances_agree_with_records(client: httpx.Client, models: Models) -> None:
    frame = models.X.iloc[ROWS]
    expected = models.lr.predict(frame).tolist()
    columns = {name: frame[name].tolist() for name in frame.columns}
    assert client.post("/predict/bc", json={"columns": columns}).json()["predictions"] == expected
    rows = frame.to_numpy().tolist()
    assert client.post("/predict/bc", json={"instances": rows}).json()["predictions"] == expected
    one = {name: float(frame[name].iloc[0]) for name in frame.columns}
    assert client.post("/predict/bc", json={"columns": one}).json()["predictions"] == expected[:1]


def test_a_tensor_model_takes_instances(client: httpx.Client, models: Models) -> None:
    array = models.X.to_numpy(dtype=np.float32)[ROWS]
    answer = client.post("/predict/tensor", json={"instances": array.tolist()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == models.lr_array.predict(array).tolist()


def test_the_slow_path_gives_what_the_fast_path_gives(client: httpx.Client, models: Models) -> None:
    records = models.records(ROWS[:3])
    records[1]["mean radius"] = None  # a null in a float column: NaN, through the full signature check
    fast = client.post("/predict/bc", json={"records": models.records(ROWS[:3])}).json()["predictions"]
    slow = client.post("/predict/bc", json={"records": records})
    assert slow.status_code == 200, slow.text
    assert slow.json()["predictions"][0] == fast[0] and slow.json()["predictions"][2] == fast[2]


def test_a_client_request_id_is_echoed_and_a_bad_one_replaced(client: httpx.Client, models: Models) -> None:
    answer = client.post(
        "/predict/bc", json={"records": models.records([0])}, headers={"X-Request-Id": "req-42"}
    )
    assert answer.headers["x-request-id"] == "req-42" and answer.json()["request_id"] == "req-42"
    other = client.post("/predict/bc", json={"records": models.records([0])}, headers={"X-Request-Id": "a b"})
    assert other.headers["x-request-id"] != "a b" and len(other.headers["x-request-id"]) == 32


def test_the_codec_returns_the_enforced_array(models: Models) -> None:
    schema = steward.infer_signature(models.X).inputs
    codec = ColumnsCodec.for_schema(schema)
    assert codec is not None
    records = models.records(ROWS)
    fast = codec.from_records(records)
    assert fast is not None
    enforced = schema.enforce(records).to_numpy()
    assert fast.dtype == enforced.dtype and np.array_equal(fast, enforced)
    assert codec.from_records([{**records[0], "mean radius": "1.5"}]) is None  # left to the full check
    assert codec.from_records([{**records[0], "mean radius": True}]) is None
