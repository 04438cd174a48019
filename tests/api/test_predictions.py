"""The prediction-log routes over real HTTP, and the SDK's remote mode on them.

A real uvicorn server; a ``PredictionLog`` writes into the server's artifact root as the inference
server would.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI

from steward.api.app import create_app
from steward.api.identity import identity_service_of
from steward.api.predictions import router as predictions_router
from steward.client.http import HttpClient
from steward.client.predictions import RemotePredictionService
from steward.config import Settings, load_settings
from steward.errors import Forbidden, InvalidInput
from steward.serving.prediction_log import PredictionLog
from tests.api.test_tracking_routes import assert_error
from tests.plugins.server import running_server
from tests.serving.test_prediction_log import AT, GUARD, record


def app_with_predictions(settings: Settings) -> FastAPI:
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/api/v1/predictions/labels" for r in app.routes):
        app.include_router(predictions_router)  # until api/app.py includes it
    return app


@dataclass
class Served:
    url: str
    settings: Settings

    def api(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    settings = load_settings(home=tmp_path / "server-home")
    with PredictionLog.from_settings(settings, flush_interval=0.05) as log:
        for i in range(3):
            frame = pd.DataFrame({"age": [30 + i], "plan": ["gold"]})
            log.offer(record(f"r{i}", inputs=frame, outputs=np.array([i % 2])))
        log.offer(record("b1", project="beta", inputs=pd.DataFrame({"age": [99]}), outputs=np.array([1])))
        assert log.flush(GUARD)
    with running_server(app_with_predictions(settings)) as url:
        yield Served(url, settings)


def test_labels_are_recorded_and_predictions_read_as_json_or_parquet(served: Served) -> None:
    with served.api() as api:
        created = api.post(
            "/predictions/labels", json={"request_ids": ["r0", "r1"], "labels": [0, 0], "endpoint": "churn"}
        )
        assert created.status_code == 201, created.text
        assert created.json() == {"count": 2, "endpoint": "churn", "project": "default"}
        anywhere = api.post("/predictions/labels", json={"request_ids": ["r2"], "labels": [1]})
        assert anywhere.json() == {"count": 1, "endpoint": "_any", "project": "default"}

        answer = api.get("/predictions/churn")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["endpoint"], body["project"], body["count"], body["truncated"]) == (
            "churn",
            "default",
            3,
            False,
        )
        first = body["rows"][0]
        names = ("request_id", "row", "in.age", "in.plan", "out.prediction")
        assert [first[k] for k in names] == ["r0", 0, 30, "gold", 0]
        assert datetime.fromisoformat(first["at"]) == AT

        page = api.get("/predictions/churn", params={"limit": 2, "since": AT.isoformat()}).json()
        assert ([r["request_id"] for r in page["rows"]], page["truncated"]) == (["r0", "r1"], True)

        parquet = api.get("/predictions/churn", params={"format": "parquet", "limit": 2})
        assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
        assert parquet.headers["x-steward-truncated"] == "true"
        table = pq.read_table(io.BytesIO(parquet.content))
        assert table.schema.field("in.age").type == pa.int64()
        assert table.column("request_id").to_pylist() == ["r0", "r1"]

        empty = api.get("/predictions/nothing-here").json()
        assert (empty["rows"], empty["count"]) == ([], 0)


LABELS = "/predictions/labels"
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("POST", LABELS, {"json": {"request_ids": ["r0", "r1"], "labels": [1]}}, 400, "labels"),
    ("POST", LABELS, {"json": {"request_ids": [], "labels": []}}, 400, "request_ids"),
    ("POST", LABELS, {"json": {"request_ids": ["r0"], "labels": [[1]]}}, 400, "labels"),
    ("POST", LABELS, {"json": {"request_ids": ["r0"], "labels": [1], "endpoint": "a b"}}, 400, "endpoint"),
    ("POST", LABELS, {"json": {"request_ids": ["r0"], "labels": [1], "rows": [-1]}}, 400, "rows"),
    ("POST", LABELS, {"json": {"labels": [1]}}, 422, None),
    ("POST", LABELS, {"json": {"request_ids": "r0", "labels": [1]}}, 422, None),
    ("POST", LABELS, {"json": {"request_ids": ["r0"], "labels": [1], "extra": 1}}, 422, None),
    ("POST", LABELS, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422, None),
    ("GET", "/predictions/churn", {"params": {"limit": 0}}, 422, None),
    ("GET", "/predictions/churn", {"params": {"limit": 100_001}}, 422, None),
    ("GET", "/predictions/churn", {"params": {"since": "yesterday"}}, 422, None),
    ("GET", "/predictions/churn", {"params": {"format": "xml"}}, 422, None),
    (
        "GET",
        "/predictions/churn",
        {"params": {"since": "2025-03-05T00:00Z", "until": "2025-03-04T00:00Z"}},
        400,
        "since",
    ),
    ("GET", "/predictions/bad%20name", {}, 400, "endpoint"),
]


def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(served: Served) -> None:
    with served.api() as api:
        for method, path, options, status, field in BAD_REQUESTS:
            assert_error(api.request(method, path, **options), status, "invalid_input", field)
        assert api.get("/predictions/churn").json()["count"] == 3  # still serving
    assert not (served.settings.home / "artifacts" / "labels").exists()


def test_the_remote_client_round_trips_types_and_keeps_projects_apart(served: Served) -> None:
    with HttpClient(served.url) as http:
        remote = RemotePredictionService(http)
        table = remote.read_predictions("churn")
        assert table.column("request_id").to_pylist() == ["r0", "r1", "r2"]
        assert table.schema.field("at").type == pa.timestamp("ms", tz="UTC")
        assert table.schema.field("in.age").type == pa.int64()
        assert remote.read_predictions("churn", since=AT, limit=1).num_rows == 1
        assert remote.log_labels(np.array(["r0", "r1"]), np.array([1, 0]), endpoint="churn") == 2
        with pytest.raises(InvalidInput) as caught:
            remote.log_labels(["r0"], [float("inf")])
        assert caught.value.details["field"] == "labels"

        beta = remote.read_predictions("churn", project="beta")
        assert beta.column("request_id").to_pylist() == ["b1"]
        assert remote.log_labels(["b1"], [1], endpoint="churn", project="beta") == 1
    with served.api(**{"X-Steward-Project": "beta"}) as api:
        assert [r["request_id"] for r in api.get("/predictions/churn").json()["rows"]] == ["b1"]


def test_labelling_needs_serving_label_and_reading_the_logged_inputs_data_read_pii(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", auth=True)
    app = app_with_predictions(settings)
    identities = identity_service_of(app.state)
    identities.create_user("root", global_role="admin")  # the first admin ends the bootstrap wait
    identities.create_project("alpha")
    tokens = {}
    tokens["admin"] = identities.issue_token("root").secret
    for role in ("viewer", "data-scientist"):
        identities.create_user(f"user-{role}")
        identities.add_member("alpha", f"user-{role}", role)
        tokens[role] = identities.issue_token(f"user-{role}").secret
    body = {"request_ids": ["r0"], "labels": [1], "endpoint": "churn"}
    with running_server(app) as url:
        for role, status in (("viewer", 403), ("data-scientist", 201)):
            with HttpClient(url, token=tokens[role], project="alpha") as http:
                response = httpx.post(
                    f"{url}/api/v1/predictions/labels",
                    json=body,
                    headers={"Authorization": f"Bearer {tokens[role]}", "X-Steward-Project": "alpha"},
                )
                assert response.status_code == status, (role, response.text)
                with pytest.raises(Forbidden, match="data:read_pii"):  # the inputs may be personal data
                    RemotePredictionService(http).read_predictions("churn")
        with HttpClient(url, token=tokens["admin"], project="alpha") as http:
            assert RemotePredictionService(http).read_predictions("churn").num_rows == 0
        with HttpClient(url, token=tokens["viewer"], project="alpha") as http:
            with pytest.raises(Forbidden):
                RemotePredictionService(http).log_labels(["r0"], [1])
            with pytest.raises(Forbidden):
                RemotePredictionService(http).read_predictions("churn", project="default")
        assert httpx.post(f"{url}/api/v1/predictions/labels", json=body).status_code == 401
