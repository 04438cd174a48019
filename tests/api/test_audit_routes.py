"""The audit routes over real HTTP, on SQLite and PostgreSQL: filters, paging, verification, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from steward.api.app import create_app
from steward.config import load_settings
from steward.core.time import to_ms
from steward.governance import audit, audit_chain, signing
from steward.store.platform import Platform
from tests.api.test_tracking_routes import assert_error
from tests.plugins.server import running_server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PLAN = [
    ("ana", "dataset.publish", "dataset_version", "dv1"),
    ("bo", "model.register", "model_version", "churn/1.0.0"),
    ("ana", "alias.set", "model_alias", "churn@production"),
    ("bo", "model.register", "model_version", "churn/1.1.0"),
    ("ana", "dataset.publish", "dataset_version", "dv2"),
    ("bo", "alias.set", "model_alias", "churn@production"),
    ("ana", "dataset.publish", "dataset_version", "dv3"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``(api client, platform)``: a server whose trail has ``PLAN``, an entry an hour up to ``NOW``."""
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    app = create_app(load_settings(home=tmp_path / "home", db=db, audit_checkpoint_every=3))
    platform: Platform = app.state.platform
    checkpointer = audit.checkpointer_for(platform.settings)
    for i, (actor, action, kind, resource) in enumerate(PLAN):
        moment = to_ms(NOW - timedelta(hours=len(PLAN) - 1 - i))
        with monkeypatch.context() as patch, platform.metadata.transaction() as conn:
            patch.setattr(audit_chain, "now_ms", lambda moment=moment: moment)
            audit.append(
                conn, actor=actor, action=action, resource_kind=kind, resource_id=resource,
                request_id=f"req-{i}", checkpoint=checkpointer,
            )  # fmt: skip
    with running_server(app) as url, httpx.Client(base_url=f"{url}/api/v1") as client:
        yield client, platform


def seqs(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [entry["seq"] for entry in response.json()["entries"]]


def test_the_trail_is_listed_newest_first_with_every_field(served: Any) -> None:
    api, _ = served
    body = api.get("/audit").json()
    assert [e["seq"] for e in body["entries"]] == [7, 6, 5, 4, 3, 2, 1]
    assert body["next_before"] is None
    newest = body["entries"][0]
    assert newest["actor"] == "ana" and newest["resource_id"] == "dv3" and newest["request_id"] == "req-6"
    assert {"prev_hash", "hash", "details", "outcome", "at", "id"} <= set(newest)
    assert newest["prev_hash"] == body["entries"][1]["hash"]


def test_the_trail_filters_by_actor_resource_action_and_time(served: Any) -> None:
    api, _ = served
    assert seqs(api.get("/audit", params={"actor": "bo"})) == [6, 4, 2]
    assert seqs(api.get("/audit", params={"resource_kind": "model_alias"})) == [6, 3]
    assert seqs(
        api.get("/audit", params={"resource_kind": "model_version", "resource_id": "churn/1.1.0"})
    ) == [4]
    assert seqs(api.get("/audit", params={"action": "dataset.publish", "actor": "ana"})) == [7, 5, 1]
    # Entry n was written at (5 + n):00 UTC on 2026-12-01.
    assert seqs(api.get("/audit", params={"since": "2026-12-01T10:00:00Z"})) == [7, 6, 5]
    assert seqs(api.get("/audit", params={"until": "2026-12-01T09:00:00+02:00"})) == [2, 1]
    assert seqs(api.get("/audit", params={"since": "2026-12-01T07:00", "until": "2026-12-01T08:30"})) == [
        3,
        2,
    ]
    assert seqs(api.get("/audit", params={"actor": "x' OR '1'='1"})) == []


def test_the_trail_pages_back_with_next_before(served: Any) -> None:
    api, _ = served
    first = api.get("/audit", params={"limit": 3}).json()
    assert [e["seq"] for e in first["entries"]] == [7, 6, 5] and first["next_before"] == 5
    second = api.get("/audit", params={"limit": 3, "before": first["next_before"]}).json()
    assert [e["seq"] for e in second["entries"]] == [4, 3, 2] and second["next_before"] == 2
    last = api.get("/audit", params={"limit": 3, "before": 2}).json()
    assert [e["seq"] for e in last["entries"]] == [1] and last["next_before"] is None


def test_bad_filters_are_refused_with_the_field(served: Any) -> None:
    api, _ = served
    assert_error(api.get("/audit", params={"limit": 0}), 422, "invalid_input")
    assert api.get("/audit", params={"limit": 0}).json()["error"]["details"]["field"] == "limit"
    assert_error(api.get("/audit", params={"limit": 10_001}), 422, "invalid_input")
    assert_error(api.get("/audit", params={"since": "yesterday"}), 422, "invalid_input")
    assert_error(api.get("/audit", params={"actor": "a" * 257}), 422, "invalid_input")
    response = api.get("/audit", params={"since": "2026-12-02T00:00Z", "until": "2026-12-01T00:00Z"})
    assert_error(response, 400, "invalid_input")
    assert response.json()["error"]["details"] == {"field": "since"}


def test_verify_reports_a_whole_trail(served: Any) -> None:
    api, platform = served
    report = api.get("/audit/verify").json()
    assert report["ok"] is True and report["first_bad"] is None
    assert (report["entries"], report["checkpoints"], report["unsigned_tail"]) == (7, 2, 1)
    assert report["last_checkpoint"]["seq"] == 6
    assert report["key_id"] == signing.platform_signer(platform.settings).key_id


def test_verify_names_the_first_bad_entry(served: Any) -> None:
    api, platform = served
    with platform.metadata.transaction() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    response = api.get("/audit/verify")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False
    assert report["first_bad"]["seq"] == 6 and report["first_bad"]["reason"] == "seq_gap"
    assert "entry 5 is missing" in report["first_bad"]["message"]


def test_strict_verify_fails_on_a_missing_checkpoint(served: Any) -> None:
    api, platform = served
    with platform.metadata.transaction() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE seq = 3"))
    assert api.get("/audit/verify").json()["ok"] is True
    strict = api.get("/audit/verify", params={"strict": True}).json()
    assert strict["first_bad"]["reason"] == "checkpoint_missing" and strict["first_bad"]["seq"] == 3


def test_the_public_key_verifies_an_export(served: Any) -> None:
    api, platform = served
    shown = api.get("/audit/public-key").json()
    key = signing.load_public_key(shown["public_key_pem"])
    assert shown["key_id"] == signing.key_id(key)
    with platform.metadata.read() as conn:
        report = audit.verify_records(audit.export(conn), key, every=3)
    assert report.ok and report.checkpoints == 2


def test_a_platform_without_a_key_has_no_public_key(tmp_path: Path) -> None:
    app = create_app(load_settings(home=tmp_path / "home"))
    with running_server(app) as url:
        assert_error(httpx.get(f"{url}/api/v1/audit/public-key"), 404, "not_found")
        assert httpx.get(f"{url}/api/v1/audit/verify").json()["ok"] is True  # nothing to check yet
    assert not signing.key_path(app.state.settings).exists()


def test_openapi_lists_the_audit_routes(served: Any) -> None:
    api, _ = served
    answer = httpx.get(str(api.base_url).rstrip("/").removesuffix("/api/v1") + "/openapi.json")
    assert answer.status_code == 200, answer.text
    paths = answer.json()["paths"]
    for path in ("/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/public-key"):
        assert paths[path]["get"]["tags"] == ["audit"]
    names = {p["name"] for p in paths["/api/v1/audit"]["get"]["parameters"]}
    assert names == {"actor", "resource_kind", "resource_id", "action", "since", "until", "before", "limit"}
