"""Hostile input over HTTP with auth on: oversized bodies, path tricks, SQL in filters, forged JWTs.

Each is refused with a 4xx naming what was wrong, loses nothing, and (for the body limit and every
credential problem) leaves an audit entry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from steward.api.app import create_app
from steward.api.identity import identity_service_of
from steward.config import load_settings
from tests.plugins.server import running_server

LIMIT = 4096


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("bad-input") / "home"
    app = create_app(load_settings(home=home, auth=True, max_request_bytes=LIMIT))
    identities = identity_service_of(app.state)
    identities.create_user("root", global_role="admin")
    token = identities.issue_token("root").secret
    headers = {"Authorization": f"Bearer {token}"}
    with running_server(app) as url, httpx.Client(base_url=f"{url}/api/v1", headers=headers) as client:
        assert client.post("/experiments", json={"name": "exp"}).status_code == 201
        yield client


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed_and_audited(api: httpx.Client) -> None:
    declared = api.post("/experiments", json={"name": "big", "description": "x" * (LIMIT * 2)})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"y" * 1024

    streamed = api.put("/runs/whatever/artifacts/big.bin", content=chunks())
    assert streamed.status_code == 413
    assert api.get("/experiments/big").status_code == 404  # nothing half-made
    entries = api.get("/audit", params={"action": "api.refused"}).json()["entries"]
    assert any(e["details"]["code"] == "payload_too_large" for e in entries)


@pytest.mark.parametrize(
    "path",
    [
        "/models/..%2F..%2Fetc%2Fpasswd",
        "/experiments/..%2Fsecret",
        "/datasets/a%00b",
        "/models/churn/versions/..%2F..%2F1.0.0",
    ],
)
def test_path_tricks_in_names_are_400_or_404_never_a_file(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code in (400, 404), response.text
    assert "root:" not in response.text
    if response.status_code == 400:
        refused = api.get("/audit", params={"action": "api.refused", "limit": 1000}).json()["entries"]
        assert any(e["details"]["code"] == "invalid_input" for e in refused)


def test_an_artifact_path_climbing_out_of_its_run_is_refused(api: httpx.Client) -> None:
    run = api.post("/runs", json={"experiment": "exp"}).json()
    response = api.put(f"/runs/{run['id']}/artifacts/..%2F..%2Fescape.txt", content=b"data")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "artifact_path"


@pytest.mark.parametrize(
    "filter_text",
    [
        "metrics.auc > 0.9; DROP TABLE runs",
        "params.model = 'lr' OR 1=1 --",
        "params.model = 'x'' OR ''1''=''1'",
        "attributes.status = 'FINISHED' UNION SELECT * FROM api_tokens",
    ],
)
def test_sql_in_a_filter_is_a_400_and_the_tables_stay(api: httpx.Client, filter_text: str) -> None:
    response = api.post("/runs/search", json={"experiments": ["exp"], "filter": filter_text})
    if response.status_code == 200:  # a well-quoted string literal: it matched as text, nothing more
        assert response.json()["runs"] == []
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"]["field"] == "filter"
    assert api.post("/runs/search", json={"experiments": ["exp"]}).status_code == 200
    refused = api.get("/audit", params={"action": "api.refused", "limit": 1000}).json()["entries"]
    if response.status_code == 400:
        assert any(e["actor"] == "root" and e["details"]["path"] == "/api/v1/runs/search" for e in refused)


def _jwt(header: dict[str, object], payload: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "credential",
    [
        _jwt({"alg": "none", "typ": "JWT"}, {"sub": "root", "exp": 9999999999}),
        _jwt({"alg": "RS256", "kid": "k"}, {"sub": "root", "exp": 1}),
        "stw_" + "A" * 43,
        "stw_short",
        "x" * 20_000,
    ],
    ids=["alg-none", "expired-unsigned", "unknown-token", "malformed-token", "oversized"],
)
def test_forged_or_malformed_credentials_are_401_without_echo(api: httpx.Client, credential: str) -> None:
    response = httpx.get(
        str(api.base_url).rstrip("/") + "/experiments", headers={"Authorization": f"Bearer {credential}"}
    )
    assert response.status_code == 401
    assert credential[:40] not in response.text
