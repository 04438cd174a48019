"""The identity routes over real HTTP with token authentication on: bootstrap, whoami, projects, principals,
tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from steward.api.app import create_app
from steward.api.auth import permission_of
from steward.api.identity import identity_service_of, router
from steward.config import load_settings
from steward.errors import StewardError
from steward.governance.context import Identity
from steward.governance.identity import IdentityService
from tests.plugins.server import running_server


@dataclass
class TokenGuard:
    """The smallest guard that turns auth on with API tokens (the server's own guard does more)."""

    identities: IdentityService
    enabled: bool = True

    def authenticate(self, credential: str) -> Identity:
        return self.identities.authenticate(credential)

    def awaiting_bootstrap(self) -> bool:
        return self.identities.needs_bootstrap()

    def refused(self, request: Request, error: StewardError, actor: str, project: str | None) -> None:
        pass


def make_app(home: Path) -> FastAPI:
    app = create_app(load_settings(home=home))
    if not any(getattr(route, "path", "") == "/api/v1/whoami" for route in app.routes):
        app.include_router(router)
    app.state.guard = TokenGuard(identity_service_of(app.state))
    return app


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return make_app(tmp_path / "home")


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with running_server(app) as url, httpx.Client(base_url=url) as found:
        yield found


@pytest.fixture
def identities(app: FastAPI) -> IdentityService:
    return identity_service_of(app.state)


def bearer(secret: str, project: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {secret}"}
    if project:
        headers["X-Steward-Project"] = project
    return headers


@pytest.fixture
def root(identities: IdentityService) -> dict[str, str]:
    """Headers of the global admin ``root`` (made locally, as ``steward users create`` would)."""
    identities.create_user("root", global_role="admin")
    return bearer(identities.issue_token("root").secret)


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    return str(body["message"])


def test_every_identity_route_declares_its_permission() -> None:
    for route in router.routes:
        assert isinstance(route, APIRoute)
        calls = [d.call for d in route.dependant.dependencies if d.call is not None]
        assert permission_of(calls) is not None, route.path


def test_bootstrap_makes_the_first_admin_once(client: httpx.Client, identities: IdentityService) -> None:
    secret = identities.start_bootstrap()
    assert secret is not None
    waiting = client.get("/api/v1/whoami", headers=bearer(secret))
    assert "bootstrap" in error(waiting, 401, "unauthenticated")

    made = client.post("/api/v1/auth/bootstrap", json={"token": secret, "admin": "root"})

    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    token = made.json()["token"]
    me = client.get("/api/v1/whoami", headers=bearer(token)).json()
    assert (me["name"], me["kind"], me["global_roles"], me["project"]) == (
        "root",
        "user",
        ["admin"],
        "default",
    )
    assert "identity:admin" in me["permissions"]
    again = client.post("/api/v1/auth/bootstrap", json={"token": secret, "admin": "root2"})
    assert "already used" in error(again, 401, "unauthenticated")


def test_requests_without_a_good_token_are_refused(client: httpx.Client, root: dict[str, str]) -> None:
    assert "bearer token" in error(client.get("/api/v1/whoami"), 401, "unauthenticated")
    assert "malformed" in error(client.get("/api/v1/whoami", headers=bearer("nope")), 401, "unauthenticated")
    unknown = client.get("/api/v1/whoami", headers=bearer("stw_" + "A" * 43))
    assert "unknown token" in error(unknown, 401, "unauthenticated")


def test_an_admin_issues_lists_and_revokes_a_users_token(client: httpx.Client, root: dict[str, str]) -> None:
    made = client.post("/api/v1/principals", json={"name": "ana", "email": "ana@example.com"}, headers=root)
    assert made.status_code == 201 and made.json()["kind"] == "user"
    issued = client.post(
        "/api/v1/principals/ana/tokens",
        json={"name": "laptop", "scopes": ["models:read"], "expires_in": "30d"},
        headers=root,
    )
    assert issued.status_code == 201, issued.text
    secret, token_id = issued.json()["token"], issued.json()["id"]
    assert issued.json()["scopes"] == ["models:read"]

    me = client.get("/api/v1/whoami", headers=bearer(secret)).json()
    assert (me["name"], me["scopes"], me["token_id"], me["permissions"]) == (
        "ana",
        ["models:read"],
        token_id,
        [],
    )
    listed = client.get("/api/v1/principals/ana/tokens", headers=root)
    assert [(t["id"], t["status"]) for t in listed.json()["tokens"]] == [(token_id, "active")]
    assert secret not in listed.text

    revoked = client.delete(f"/api/v1/tokens/{token_id}", headers=root)
    assert revoked.json()["status"] == "revoked"
    assert "revoked" in error(client.get("/api/v1/whoami", headers=bearer(secret)), 401, "unauthenticated")
    assert "revoked already" in error(
        client.delete(f"/api/v1/tokens/{token_id}", headers=root), 409, "conflict"
    )


def test_a_project_admin_cannot_administer_principals(
    client: httpx.Client, root: dict[str, str], identities: IdentityService
) -> None:
    identities.create_user("pat")
    identities.create_project("fraud")
    identities.add_member("fraud", "pat", "admin")
    pat = identities.issue_token("pat").secret

    # In its own project the route's check passes; principals span projects, so the service refuses.
    denied = client.post("/api/v1/principals", json={"name": "eve"}, headers=bearer(pat, "fraud"))
    assert "across projects" in error(denied, 403, "forbidden")
    no_token = client.post("/api/v1/principals/root/tokens", json={}, headers=bearer(pat, "fraud"))
    error(no_token, 403, "forbidden")
    error(client.get("/api/v1/principals", headers=bearer(pat)), 403, "forbidden")  # not a member of default


def test_members_are_managed_in_the_project_the_path_names(
    client: httpx.Client, root: dict[str, str], identities: IdentityService
) -> None:
    for name in ("pat", "ana"):
        identities.create_user(name)
    for project in ("fraud", "churn"):
        client.post("/api/v1/projects", json={"name": project}, headers=root).raise_for_status()
    identities.add_member("fraud", "pat", "admin")
    pat = bearer(identities.issue_token("pat").secret)

    added = client.post(
        "/api/v1/projects/fraud/members", json={"principal": "ana", "role": "viewer"}, headers=pat
    )
    assert added.status_code == 201 and added.json()["roles"] == ["viewer"]
    members = client.get("/api/v1/projects/fraud/members", headers=pat).json()["members"]
    assert [(m["name"], m["roles"]) for m in members] == [("ana", ["viewer"]), ("pat", ["admin"])]
    elsewhere = client.post("/api/v1/projects/churn/members", json={"principal": "ana", "role": "viewer"},
                            headers=bearer(pat["Authorization"][7:], "fraud"))  # fmt: skip
    error(elsewhere, 403, "forbidden")
    removed = client.delete("/api/v1/projects/fraud/members/ana", headers=pat)
    assert removed.json() == {"removed": ["viewer"]}
    bad_role = client.post(
        "/api/v1/projects/fraud/members", json={"principal": "ana", "role": "boss"}, headers=pat
    )
    assert "unknown role" in error(bad_role, 400, "invalid_input")


def test_projects_are_listed_and_shown_only_to_their_members(
    client: httpx.Client, root: dict[str, str], identities: IdentityService
) -> None:
    for project in ("fraud", "churn"):
        identities.create_project(project)
    identities.create_user("ana")
    identities.add_member("fraud", "ana", "viewer")
    ana = bearer(identities.issue_token("ana").secret)

    listed = client.get("/api/v1/projects", headers=ana)  # no default membership needed
    assert [p["name"] for p in listed.json()["projects"]] == ["fraud"]
    everything = client.get("/api/v1/projects", headers=root).json()["projects"]
    assert [p["name"] for p in everything] == ["churn", "default", "fraud"]
    assert client.get("/api/v1/projects/fraud", headers=ana).json()["name"] == "fraud"
    error(client.get("/api/v1/projects/churn", headers=ana), 404, "not_found")
    me = client.get("/api/v1/whoami", headers={**ana, "X-Steward-Project": "fraud"}).json()
    assert me["projects"] == {"fraud": ["viewer"]} and me["project"] == "fraud"
    assert "projects:read" in me["permissions"] and "models:write" not in me["permissions"]


def test_a_principal_manages_its_own_tokens(
    client: httpx.Client, root: dict[str, str], identities: IdentityService
) -> None:
    identities.create_user("ana")
    identities.create_user("bo")
    ana = bearer(identities.issue_token("ana").secret)
    bo_token = identities.issue_token("bo")

    made = client.post("/api/v1/me/tokens", json={"name": "ci", "scopes": ["tracking:write"]}, headers=ana)
    assert made.status_code == 201 and made.json()["principal"] == "ana"
    narrow = bearer(made.json()["token"])
    wider = client.post(
        "/api/v1/me/tokens", json={"scopes": ["tracking:write", "models:write"]}, headers=narrow
    )
    assert "limited to tracking:write" in error(wider, 403, "forbidden")
    listed = client.get("/api/v1/me/tokens", headers=ana).json()["tokens"]
    assert bo_token.id not in [t["id"] for t in listed] and len(listed) == 2
    error(client.delete(f"/api/v1/me/tokens/{bo_token.id}", headers=ana), 404, "not_found")
    assert client.delete(f"/api/v1/me/tokens/{made.json()['id']}", headers=ana).json()["status"] == "revoked"
    never = client.post("/api/v1/me/tokens", json={"expires_in": "never"}, headers=ana)
    assert never.json()["expires_at"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ana smith"}, "principal"),
        ({"name": "ana", "global_role": "viewer"}, "global_role"),
        ({"name": "ana", "kind": "robot"}, "kind"),
        ({"name": "ana", "surprise": 1}, "surprise"),
    ],
)
def test_bad_principals_are_refused_naming_the_field(
    client: httpx.Client, root: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/principals", json=body, headers=root)
    assert response.status_code in (400, 422), response.text
    assert field in response.text
    assert client.get("/api/v1/principals", headers=root).json()["principals"][0]["name"] == "root"


def test_a_bad_lifetime_is_refused(client: httpx.Client, root: dict[str, str]) -> None:
    bad = client.post("/api/v1/principals/root/tokens", json={"expires_in": "forever"}, headers=root)
    assert "lifetime" in error(bad, 400, "invalid_input")
