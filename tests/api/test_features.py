"""Feature store routes over real HTTP with auth on: statuses, error bodies, permissions, tenancy, Arrow."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.routing import APIRoute

from steward.api import features as features_api
from steward.api.app import create_app
from steward.api.auth import api_routes, route_permission
from steward.api.identity import identity_service_of
from steward.config import load_settings
from tests.api.people import issue_tokens
from tests.api.test_tracking_routes import assert_error
from tests.client.test_features import (
    DEFINITIONS,
    ORDERS,
    PROFILE,
    changed,
    entity_rows,
    profiles,
    transactions,
)
from tests.plugins.server import running_server

PROJECT = "alpha"
OTHER = "beta"
ARROW = "application/vnd.apache.arrow.stream"
ROLES = {"eng": "ml-engineer", "sci": "data-scientist", "vic": "viewer"}


@dataclass
class Server:
    url: str
    tokens: dict[str, str]

    def as_(self, who: str, project: str = PROJECT) -> httpx.Client:
        headers = {"X-Steward-Project": project, "Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on; ``root`` is the global admin, ``ROLES`` members of ``alpha``, ``bob`` an engineer of
    ``beta``. ``alpha`` has dataset ``transactions`` and ``DEFINITIONS`` applied."""
    home = tmp_path_factory.mktemp("features-api") / "home"
    app = create_app(load_settings(home=home, auth=True))
    identities = identity_service_of(app.state)
    tokens = issue_tokens(identities, PROJECT, OTHER, ROLES)
    with running_server(app) as url:
        found = Server(url, tokens)
        with found.as_("eng") as eng:
            ingest(eng, "transactions", transactions())
            ok(eng.post("/features/apply", json=yaml.safe_load(DEFINITIONS)))
        yield found


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def ingest(api: httpx.Client, name: str, table: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    headers = {"Content-Type": "application/vnd.apache.parquet"}
    ok(api.post(f"/datasets/{name}/ingest", content=sink.getvalue(), headers=headers))


def arrow(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def definitions(api: httpx.Client) -> list[tuple[str, str, int]]:
    return [(d["kind"], d["name"], d["version"]) for d in ok(api.get("/features/definitions"))["definitions"]]


APPLIED = [("entity", "customer", 1), ("feature_service", "churn", 1), ("feature_view", "customer_stats", 1)]


def test_every_feature_route_declares_its_permission() -> None:
    routes = [r for r in features_api.router.routes if isinstance(r, APIRoute)]
    found = {(sorted(r.methods)[0], r.path.removeprefix("/api/v1")): route_permission(r) for r in routes}
    assert found == {
        ("POST", "/features/apply"): "features:write",
        ("GET", "/features/definitions"): "features:read",
        ("GET", "/features/definitions/{kind}/{name}"): "features:read",
        ("GET", "/features/definitions/{kind}/{name}/history"): "features:read",
        ("POST", "/features/historical"): "features:read",
        ("POST", "/features/online"): "features:read",
        ("POST", "/features/materialize"): "features:write",
        ("GET", "/features/materializations"): "features:read",
        ("POST", "/features/views/{view}/push"): "features:write",
        ("GET", "/features/views/{view}/skew"): "features:read",
    }


def test_the_app_serves_the_feature_routes(tmp_path: Any) -> None:
    paths = {r.path for r in api_routes(create_app(load_settings(home=tmp_path / "home")))}
    assert {r.path for r in features_api.router.routes if isinstance(r, APIRoute)} <= paths


def test_applying_the_same_document_again_is_unchanged_and_a_change_is_version_2(server: Server) -> None:
    with server.as_("sci") as sci, server.as_("root") as root:
        again = ok(sci.post("/features/apply", json=yaml.safe_load(DEFINITIONS)))
        assert again == {
            "created": [],
            "updated": [],
            "unchanged": ["entity:customer", "feature_view:customer_stats", "feature_service:churn"],
        }
        ok(sci.post("/datasets", json={"name": "spend_v2"}), 201)
        ingest(sci, "spend_v2", transactions())
        moved = changed(DEFINITIONS, source={"dataset": "spend_v2"})
        assert ok(sci.post("/features/apply", json=moved))["updated"] == ["feature_view:customer_stats"]
        latest = ok(sci.get("/features/definitions/feature_view/customer_stats"))
        assert (latest["version"], latest["created_by"], latest["derived"]["dataset"]) == (
            2,
            "sci",
            "spend_v2",
        )
        first = ok(sci.get("/features/definitions/feature_view/customer_stats", params={"version": 1}))
        assert first["spec"]["source"]["dataset"] == "transactions"
        history = ok(sci.get("/features/definitions/feature_view/customer_stats/history"))["versions"]
        assert [(v["version"], v["created_by"]) for v in history] == [(1, "eng"), (2, "sci")]
        trail = ok(
            root.get("/audit", params={"resource_kind": "feature_view", "resource_id": "customer_stats"})
        )
        assert [e["actor"] for e in trail["entries"] if e["action"] == "feature_view.apply"] == ["sci", "eng"]
        ok(sci.post("/features/apply", json=yaml.safe_load(DEFINITIONS)))  # back to transactions
    with server.as_("vic") as vic:
        assert definitions(vic) == [*APPLIED[:2], ("feature_view", "customer_stats", 3)]


@pytest.mark.parametrize(
    ("document", "status", "field"),
    [
        ({"entitees": []}, 400, "entitees"),
        (changed(DEFINITIONS, ttl="abc"), 400, "feature_view 'customer_stats': ttl"),
        (changed(DEFINITIONS, entities=["merchant"]), 404, "entities"),
        (changed(DEFINITIONS, features=[{"name": "spend", "dtype": "int64"}, ORDERS]), 400, "dtype"),
        ({"feature_views": [{"name": "v", "entities": ["customer"]}]}, 400, "source"),
    ],
    ids=["unknown-section", "bad-ttl", "unknown-entity", "type-mismatch", "no-source"],
)
def test_a_bad_document_is_refused_naming_the_field_and_nothing_is_stored(
    server: Server, document: dict[str, Any], status: int, field: str
) -> None:
    with server.as_("eng") as eng:
        before = ok(eng.get("/features/definitions"))
        code = "not_found" if status == 404 else "invalid_input"
        assert_error(eng.post("/features/apply", json=document), status, code, field)
        assert ok(eng.get("/features/definitions")) == before


def test_malformed_requests_are_4xx_not_500(server: Server) -> None:
    with server.as_("eng") as eng:
        assert_error(eng.post("/features/apply", json=["not", "a", "mapping"]), 422, "invalid_input")
        assert_error(eng.get("/features/definitions/table/customer"), 400, "invalid_input", "kind")
        assert_error(eng.get("/features/definitions/entity/nobody"), 404, "not_found", "name")
        headers = {"Content-Type": ARROW}
        garbage = eng.post("/features/historical", params={"service": "churn"}, content=b"x", headers=headers)
        assert_error(garbage, 400, "invalid_input", "body")
        both = {"service": "churn", "features": ["customer_stats:spend"]}
        assert_error(
            eng.post("/features/historical", params=both, content=arrow(entity_rows()), headers=headers),
            400, "invalid_input", "features",
        )  # fmt: skip
        unknown = {"service": "nope"}
        assert_error(
            eng.post("/features/historical", params=unknown, content=arrow(entity_rows()), headers=headers),
            404,
            "not_found",
        )
        assert_error(eng.post("/features/materialize", json={"start": "abc"}), 422, "invalid_input", "start")
        assert_error(
            eng.post("/features/online", json={"features": "churn"}), 422, "invalid_input", "entity_rows"
        )
        assert_error(
            eng.get("/features/views/customer_stats/skew", params={"sample": 0}), 400, "invalid_input"
        )


def test_a_training_set_comes_back_as_an_arrow_stream_with_its_types(server: Server) -> None:
    with server.as_("vic") as vic:
        response = vic.post(
            "/features/historical",
            params={
                "features": ["customer_stats:spend", "customer_stats:orders"],
                "full_feature_names": "true",
            },
            content=arrow(entity_rows()),
            headers={"Content-Type": ARROW},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == [
        "customer_id", "event_timestamp", "label", "customer_stats__spend", "customer_stats__orders",
    ]  # fmt: skip
    assert table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.column("customer_stats__spend").to_pylist() == [None, 20.0, 7.0, None, 30.0]


def test_a_viewer_reads_but_cannot_apply_materialize_or_push(server: Server) -> None:
    with server.as_("vic") as vic, server.as_("eng") as eng:
        refused = [
            vic.post("/features/apply", json={"entities": [{"name": "shop", "join_keys": ["shop_id"]}]}),
            vic.post("/features/materialize"),
            vic.post(
                "/features/views/customer_stats/push",
                content=arrow(entity_rows()),
                headers={"Content-Type": ARROW},
            ),
        ]
        for response in refused:
            error = assert_error(response, 403, "forbidden")
            assert error["details"]["permission"] == "features:write"
        assert definitions(vic)[0] == ("entity", "customer", 1)
        assert ("entity", "shop", 1) not in definitions(vic)
        assert ok(vic.get("/features/materializations"))["runs"] == []
        ok(eng.post("/features/materialize"))
        runs = ok(vic.get("/features/materializations", params={"view": "customer_stats"}))["runs"]
        assert runs and runs[0]["finished_by"] == "eng"
        found = ok(
            vic.post("/features/online", json={"entity_rows": {"customer_id": [1, 999]}, "features": "churn"})
        )
        assert found["columns"] == {"customer_id": [1, 999], "spend": [30.0, None], "orders": [3, None]}
        assert found["statuses"] == {"customer_stats": ["PRESENT", "NOT_FOUND"]}
        assert ok(vic.get("/features/views/customer_stats/skew"))["consistent"] is True


def test_pushed_rows_travel_as_arrow_and_bad_rows_name_the_column(server: Server) -> None:
    from datetime import UTC, datetime, timedelta

    fresh = datetime.now(UTC) - timedelta(seconds=5)
    rows = pa.table(
        {
            "customer_id": pa.array([7], pa.int64()),
            "event_timestamp": pa.array([fresh], pa.timestamp("us", tz="UTC")),
            "spend": [5.5],
            "orders": pa.array([1], pa.int32()),
        }
    )
    headers = {"Content-Type": ARROW}
    with server.as_("eng") as eng:
        assert ok(eng.post("/features/views/customer_stats/push", content=arrow(rows), headers=headers)) == {
            "written": 1
        }
        found = ok(
            eng.post(
                "/features/online", json={"entity_rows": {"customer_id": [7]}, "features": ["customer_stats"]}
            )
        )
        assert found["columns"]["spend"] == [5.5] and found["statuses"]["customer_stats"] == ["PRESENT"]
        short = arrow(rows.drop_columns(["orders"]))
        error = assert_error(
            eng.post("/features/views/customer_stats/push", content=short, headers=headers),
            400,
            "invalid_input",
            "features",
        )
        assert error["details"]["feature"] == "orders"
        assert_error(
            eng.post("/features/views/nothing/push", content=arrow(rows), headers=headers), 404, "not_found"
        )


def test_personal_features_need_data_read_pii(server: Server) -> None:
    with server.as_("eng") as eng, server.as_("root") as root:
        ingest(eng, "profiles", profiles())
        ok(eng.post("/features/apply", json=yaml.safe_load(PROFILE)))
        assert list(ok(eng.get("/features/definitions/feature_view/profile"))["derived"]["pii"]) == ["email"]
        # materialising reads the personal column too: the engineer may not, the admin may
        assert_error(eng.post("/features/materialize", json={"views": ["profile"]}), 403, "forbidden")
        ok(root.post("/features/materialize", json={"views": ["profile"]}))
        body = {"entity_rows": {"customer_id": [2]}, "features": ["profile:email"]}
        error = assert_error(eng.post("/features/online", json=body), 403, "forbidden")
        assert error["details"]["permission"] == "data:read_pii"
        assert "bo@example.org" not in str(error)
        assert ok(root.post("/features/online", json=body))["columns"]["email"] == ["bo@example.org"]
        reads = ok(root.get("/audit", params={"action": "features.read_pii"}))["entries"]
        assert {(e["actor"], e["outcome"]) for e in reads} >= {("eng", "denied"), ("root", "ok")}


def test_project_b_does_not_see_project_a_definitions(server: Server) -> None:
    with server.as_("bob", OTHER) as bob, server.as_("bob") as outsider:
        assert ok(bob.get("/features/definitions"))["definitions"] == []
        assert_error(bob.get("/features/definitions/feature_view/customer_stats"), 404, "not_found")
        assert_error(bob.get("/features/definitions/entity/customer/history"), 404, "not_found")
        body = {"entity_rows": {"customer_id": [1]}, "features": "churn"}
        assert_error(bob.post("/features/online", json=body), 404, "not_found")
        assert_error(bob.get("/features/views/customer_stats/skew"), 404, "not_found")
        assert ok(bob.get("/features/materializations"))["runs"] == []
        # the same names in beta are beta's own, and alpha is untouched
        assert_error(
            bob.post("/features/apply", json=yaml.safe_load(DEFINITIONS)), 404, "not_found", "source"
        )
        ingest(bob, "transactions", transactions())
        created = ok(bob.post("/features/apply", json=yaml.safe_load(DEFINITIONS)))["created"]
        assert len(created) == 3
        assert_error(outsider.get("/features/definitions"), 403, "forbidden")
    with server.as_("vic") as vic:
        views = ok(vic.get("/features/definitions", params={"kind": "feature_view"}))["definitions"]
        assert all(d["created_by"] != "bob" for d in views)
