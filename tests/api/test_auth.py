"""Authentication, authorisation and tenancy of the API with ``--auth`` on.

- every route declares a permission (a walk over the app's routes);
- a matrix: for each permission a representative route, called by each role, is allowed exactly when
  the roles table grants it;
- 401 without or with a bad credential, 403 without the permission, both audited;
- two projects: nothing of one shows through any list or get route to a member of the other.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from steward.api.app import create_app
from steward.api.auth import AUTHENTICATED, PUBLIC, api_routes, route_permission
from steward.api.identity import identity_service_of
from steward.config import load_settings
from steward.governance.identity import IdentityService
from steward.governance.rbac import PERMISSIONS, ROLES
from tests.plugins.server import running_server

PROJECT = "alpha"
OTHER = "beta"


def _routes(app: FastAPI) -> list[APIRoute]:
    return api_routes(app)


def _permission(route: APIRoute) -> str | None:
    return route_permission(route)


@dataclass
class Server:
    url: str
    app: FastAPI
    identities: IdentityService
    tokens: dict[str, str]

    def client(self, role: str | None, project: str = PROJECT) -> httpx.Client:
        headers = {"X-Steward-Project": project}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with auth on; one principal per role in ``alpha`` (``admin`` is the global admin)."""
    home = tmp_path_factory.mktemp("auth") / "home"
    app = create_app(load_settings(home=home, auth=True))
    identities = identity_service_of(app.state)
    identities.create_user("root", global_role="admin")
    tokens = {"admin": identities.issue_token("root").secret}
    identities.create_project(PROJECT)
    identities.create_project(OTHER)
    for role in ROLES:
        if role == "admin":
            continue
        name = f"user-{role}"
        identities.create_user(name)
        identities.add_member(PROJECT, name, role)
        tokens[role] = identities.issue_token(name).secret
    with running_server(app) as url:
        yield Server(url, app, identities, tokens)


def test_every_route_of_the_openapi_list_declares_a_permission(tmp_path: Path) -> None:
    app = create_app(load_settings(home=tmp_path / "home"))
    declared = {(m, r.path.replace(":path}", "}")): _permission(r) for r in _routes(app) for m in r.methods}
    listed = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    assert len(listed) > 60
    assert [op for op in listed if declared.get(op) is None] == []
    missing = [f"{sorted(r.methods)} {r.path}" for r in _routes(app) if _permission(r) is None]
    assert missing == []
    declared = {_permission(r) for r in _routes(app)}
    assert declared <= {*PERMISSIONS, PUBLIC, AUTHENTICATED}
    public = sorted(r.path for r in _routes(app) if _permission(r) == PUBLIC)
    assert public == ["/api/v1/auth/bootstrap", "/api/v1/health", "/docs"]


def _representative(app: FastAPI) -> dict[str, APIRoute]:
    """One route per permission: a GET where there is one (simplest to call), else the first."""
    chosen: dict[str, APIRoute] = {}
    for route in _routes(app):
        permission = _permission(route)
        if permission is None or permission in (PUBLIC, AUTHENTICATED):
            continue
        if permission not in chosen or ("GET" in route.methods and "GET" not in chosen[permission].methods):
            chosen[permission] = route
    return chosen


def _call(client: httpx.Client, route: APIRoute) -> httpx.Response:
    path = re.sub(r"\{[^}]+\}", "nothing-here", route.path.removeprefix("/api/v1"))
    method = sorted(route.methods)[0]
    return client.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)


def _refused(response: httpx.Response) -> bool:
    """Refused by authorisation (not by a policy gate or residency, which answer 403 with other codes)."""
    return response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_each_role_is_allowed_exactly_what_the_roles_table_grants(server: Server) -> None:
    routes = _representative(server.app)
    assert {"tracking:read", "models:write", "data:release", "audit:read", "approvals:decide"} <= set(routes)
    wrong = []
    for role in ROLES:
        with server.client(role) as client:
            for permission, route in sorted(routes.items()):
                response = _call(client, route)
                assert response.status_code not in (401, 500), (role, route.path, response.text)
                expected = permission in ROLES[role]
                if _refused(response) == expected:
                    wrong.append((role, permission, route.path, response.status_code))
    assert wrong == []


def test_no_credential_or_a_bad_one_is_401_and_audited(server: Server) -> None:
    with server.client(None) as anonymous:
        response = anonymous.get("/experiments")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
    for header in ("Bearer stw_" + "A" * 43, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"):
        response = httpx.get(f"{server.url}/api/v1/experiments", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert "stw_AAAA" not in response.text
    assert httpx.get(f"{server.url}/api/v1/health").status_code == 200
    with server.client("admin") as admin:
        refused = admin.get("/audit", params={"action": "api.refused", "limit": 100}).json()["entries"]
    assert len(refused) >= 5
    assert all(e["outcome"] == "denied" for e in refused)
    assert not any("AAAA" in str(e) for e in refused)


def test_a_forbidden_request_is_403_naming_the_permission_and_audited(server: Server) -> None:
    with server.client("viewer") as viewer:
        response = viewer.post("/experiments", json={"name": "nope"})
        listed = viewer.get("/experiments")
    assert response.status_code == 403
    assert response.json()["error"]["details"]["permission"] == "tracking:write"
    assert "nope" not in listed.text
    with server.client("admin") as admin:
        entries = admin.get("/audit", params={"actor": "user-viewer", "action": "api.refused"}).json()[
            "entries"
        ]
    assert entries and entries[0]["details"]["code"] == "forbidden"


def test_a_revoked_token_is_refused(server: Server) -> None:
    server.identities.create_user("short-lived")
    server.identities.add_member(PROJECT, "short-lived", "viewer")
    issued = server.identities.issue_token("short-lived")
    headers = {"Authorization": f"Bearer {issued.secret}", "X-Steward-Project": PROJECT}
    assert httpx.get(f"{server.url}/api/v1/experiments", headers=headers).status_code == 200
    server.identities.revoke_token(issued.id)
    response = httpx.get(f"{server.url}/api/v1/experiments", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_a_project_the_caller_is_not_a_member_of_is_403(server: Server) -> None:
    with server.client("ml-engineer", project=OTHER) as outsider:
        response = outsider.get("/experiments")
    assert response.status_code == 403
    assert OTHER in response.json()["error"]["message"]
    with server.client("viewer", project="bad name!") as client:
        assert client.get("/experiments").status_code == 400


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"secret_beta_column": [1, 2, 3]}), sink)
    return sink.getvalue()


def _fill_other_project(client: httpx.Client) -> dict[str, str]:
    """Make one of everything in ``beta``; return the identifiers that must never show in ``alpha``."""
    assert client.post("/experiments", json={"name": "beta-experiment"}).status_code == 201
    run = client.post("/runs", json={"experiment": "beta-experiment", "name": "beta-run"}).json()
    upload = client.post("/models/beta-model/files", params={"path": "model.bin"}, content=b"weights")
    assert upload.status_code == 201, upload.text
    version = client.post("/models/beta-model/versions", json={"flavor": "sklearn", "files": [upload.json()]})
    assert version.status_code == 201, version.text
    assert client.post("/datasets", json={"name": "beta-dataset"}).status_code == 201
    ingested = client.post(
        "/datasets/beta-dataset/ingest",
        content=_parquet(),
        headers={"Content-Type": "application/vnd.apache.parquet"},
    )
    assert ingested.status_code in (200, 201), ingested.text
    policy = "name: beta-gate\naliases: [production]\nrules:\n  - approvals >= 1\n"
    assert client.post("/policies", json={"document": policy}).status_code == 201
    promoted = client.post("/models/beta-model/versions/1.0.0/promote", json={"alias": "production"})
    assert promoted.status_code == 202, promoted.text
    endpoint = {"name": "beta-endpoint", "model": "beta-model", "version": "1.0.0", "gate_alias": "staging"}
    assert client.post("/endpoints", json=endpoint).status_code == 201
    labels = {"endpoint": "beta-endpoint", "request_ids": ["beta-request"], "labels": [1]}
    assert client.post("/predictions/labels", json=labels).status_code == 201
    return {
        "endpoint": "beta-endpoint",
        "policy": "beta-gate",
        "approval": promoted.json()["request"]["id"],
        "run": run["id"],
        "experiment": "beta-experiment",
        "model": "beta-model",
        "model_version_id": version.json()["id"],
        "dataset": "beta-dataset",
        "dataset_version_id": ingested.json()["versions"][0]["id"],
    }


def _fill(path: str, known: dict[str, str]) -> str:
    values = {
        "name_or_id": known["experiment"],
        "run_id": known["run"],
        "name": known["model"]
        if "/models" in path
        else known["policy"]
        if "/policies" in path
        else known["endpoint"]
        if "/endpoints" in path
        else known["dataset"],
        "endpoint": known["endpoint"],
        "rollout_id": "latest",
        "version": "1.0.0" if "/models" in path else "1",
        "version_id": known["dataset_version_id"],
        "dataset_id": known["dataset_version_id"],
        "id": known["approval"],
    }
    return re.sub(r"\{([^}:]+)(:path)?\}", lambda m: values.get(m.group(1), "x"), path)


def test_nothing_of_another_project_shows_through_any_list_or_get_route(server: Server) -> None:
    with server.client("admin", project=OTHER) as admin:
        known = _fill_other_project(admin)
        assert admin.get(f"/runs/{known['run']}").status_code == 200  # visible where it lives
    gets = [r for r in _routes(server.app) if "GET" in r.methods and _permission(r) not in (PUBLIC, None)]
    # The trail first: the walk's own refused requests (their paths hold beta's names) are entries too.
    gets.sort(key=lambda r: not r.path.startswith("/api/v1/audit"))
    assert len(gets) > 30
    leaks = []
    with server.client("admin", project=PROJECT) as same_admin, server.client("ml-engineer") as member:
        for client in (same_admin, member):
            for route in gets:
                path = _fill(route.path.removeprefix("/api/v1"), known)
                response = client.get(path)
                # A route keyed by a free name (logged predictions) echoes it back: that is no leak.
                shown = response.text.replace(f'"endpoint":"{known["endpoint"]}"', "")
                if response.status_code == 200 and any(v in shown for v in known.values()):
                    leaks.append((route.path, path))
                assert response.status_code != 500, (path, response.text)
    assert leaks == []


def test_columns_tagged_as_personal_data_need_data_read_pii_and_every_read_is_audited(server: Server) -> None:
    sink = io.BytesIO()
    emails = [f"person{i}@example.com" for i in range(50)]
    pq.write_table(pa.table({"email": emails, "spend": list(range(50))}), sink)
    with server.client("admin") as admin:
        assert admin.post("/datasets", json={"name": "customers"}).status_code == 201
        ingested = admin.post(
            "/datasets/customers/ingest",
            content=sink.getvalue(),
            headers={"Content-Type": "application/vnd.apache.parquet"},
        )
        assert ingested.status_code in (200, 201), ingested.text
        scanned = admin.post("/datasets/customers/versions/1/scan")
        assert scanned.status_code == 200, scanned.text
        assert admin.get("/datasets/customers/versions/1/data").status_code == 200
    with server.client("data-scientist") as scientist:
        whole = scientist.get("/datasets/customers/versions/1/data")
        assert whole.status_code == 403
        assert whole.json()["error"]["details"]["permission"] == "data:read_pii"
        assert (
            scientist.get("/datasets/customers/versions/1/data", params={"columns": "email"}).status_code
            == 403
        )
        spend = scientist.get("/datasets/customers/versions/1/data", params={"columns": "spend"})
        assert spend.status_code == 200
        assert b"example.com" not in spend.content
    with server.client("admin") as admin:
        reads = admin.get("/audit", params={"action": "dataset_version.read_pii"}).json()["entries"]
    outcomes = [(e["actor"], e["outcome"]) for e in reads]
    assert outcomes.count(("user-data-scientist", "denied")) == 2
    assert ("root", "ok") in outcomes  # the admin's download (the scan's own read is there too)
    assert ("user-data-scientist", "ok") not in outcomes
