"""Policy and approval routes over real HTTP with auth on: statuses, error bodies, permissions, the gate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from steward.api import approvals as approvals_api
from steward.api import policy as policy_api
from steward.api.app import create_app
from steward.api.auth import route_permission
from steward.api.identity import identity_service_of
from steward.config import load_settings
from tests.api.test_tracking_routes import assert_error
from tests.plugins.server import running_server

PROJECT = "alpha"
GATE = "name: gate\nrules:\n  - metrics.auc >= 0.85\n  - approvals >= 2\n"
ROLES = {"eng": "ml-engineer", "ana": "approver", "bo": "approver", "vic": "viewer"}


def with_governance_routes(app: FastAPI) -> FastAPI:
    """The app with the policy and approval routers (``create_app`` includes them once wired)."""
    paths = {getattr(route, "path", "") for route in app.routes}
    for router in (policy_api.router, approvals_api.router):
        if not {route.path for route in router.routes} <= paths:
            app.include_router(router)
    return app


@dataclass
class Server:
    url: str
    tokens: dict[str, str]

    def as_(self, who: str) -> httpx.Client:
        headers = {"X-Steward-Project": PROJECT, "Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Auth on; ``root`` is the global admin, the others members of ``alpha`` with ``ROLES``."""
    app = with_governance_routes(create_app(load_settings(home=tmp_path / "home", auth=True)))
    identities = identity_service_of(app.state)
    identities.create_user("root", global_role="admin")
    tokens = {"root": identities.issue_token("root").secret}
    identities.create_project(PROJECT)
    for name, role in ROLES.items():
        identities.create_user(name)
        identities.add_member(PROJECT, name, role)
        tokens[name] = identities.issue_token(name).secret
    with running_server(app) as url:
        yield Server(url, tokens)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def register(api: httpx.Client, auc: float) -> str:
    upload = ok(api.post("/models/churn/files", params={"path": "model.bin"}, content=b"weights"), 201)
    body = {"flavor": "sklearn", "files": [upload], "metrics": {"auc": auc}}
    return str(ok(api.post("/models/churn/versions", json=body), 201)["version"])


def test_every_policy_and_approval_route_declares_its_permission() -> None:
    routes = [r for r in (*policy_api.router.routes, *approvals_api.router.routes) if isinstance(r, APIRoute)]
    found = {(sorted(r.methods)[0], r.path): route_permission(r) for r in routes}
    assert found == {
        ("GET", "/api/v1/policies"): "policies:read",
        ("POST", "/api/v1/policies"): "policies:write",
        ("GET", "/api/v1/policies/{name}"): "policies:read",
        ("GET", "/api/v1/policies/{name}/history"): "policies:read",
        ("POST", "/api/v1/policies/{name}/retire"): "policies:write",
        ("GET", "/api/v1/models/{name}/versions/{version}/verdict"): "policies:read",
        ("POST", "/api/v1/models/{name}/versions/{version}/promote"): "models:promote",
        ("GET", "/api/v1/approvals"): "approvals:read",
        ("GET", "/api/v1/approvals/{request_id}"): "approvals:read",
        ("POST", "/api/v1/approvals/{request_id}/approve"): "approvals:decide",
        ("POST", "/api/v1/approvals/{request_id}/reject"): "approvals:decide",
    }


def test_policies_are_applied_read_and_retired_by_those_allowed(server: Server) -> None:
    with server.as_("root") as root, server.as_("vic") as vic:
        created = ok(root.post("/policies", json={"document": GATE}), 201)
        assert (created["status"], created["policy"]["version"]) == ("created", 1)
        assert ok(root.post("/policies", json={"document": GATE}))["status"] == "unchanged"
        ok(root.post("/policies", json={"document": GATE.replace("0.85", "0.9")}), 201)
        bad = assert_error(root.post("/policies", json={"document": "name: x\nrules:\n  - auc >\n"}), 400,
                           "invalid_input", "policy")  # fmt: skip
        assert bad["details"]["line"] == 3
        listed = ok(vic.get("/policies"))["policies"]
        assert [(p["name"], p["version"], p["in_force"]) for p in listed] == [("gate", 2, True)]
        assert ok(vic.get("/policies/gate", params={"version": 1}))["document"] == GATE
        assert [v["version"] for v in ok(vic.get("/policies/gate/history"))["versions"]] == [1, 2]
        assert_error(vic.post("/policies", json={"document": GATE}), 403, "forbidden")
        assert_error(vic.post("/policies/gate/retire"), 403, "forbidden")
        assert ok(root.post("/policies/gate/retire", json={"reason": "replaced"}))["in_force"] is False
        assert_error(root.post("/policies/gate/retire"), 409, "conflict")
        assert ok(vic.get("/policies"))["policies"] == []
        assert len(ok(vic.get("/policies", params={"all": "true"}))["policies"]) == 1
        assert_error(vic.get("/policies/nope"), 404, "not_found")


def test_promotion_waits_for_two_approvers_who_are_not_its_author(server: Server) -> None:
    with (
        server.as_("root") as root,
        server.as_("eng") as eng,
        server.as_("ana") as ana,
        server.as_("bo") as bo,
    ):
        ok(root.post("/policies", json={"document": GATE}), 201)
        version = register(root, 0.9)
        refused = assert_error(eng.put("/models/churn/aliases/production", json={"version": version}), 403,
                               "policy_violation", "alias")  # fmt: skip
        assert "steward models promote" in refused["message"]
        verdict = ok(eng.get(f"/models/churn/versions/{version}/verdict"))
        assert (verdict["passed"], verdict["pending_only"], verdict["required_approvals"]) == (False, True, 2)
        pending = ok(eng.post(f"/models/churn/versions/{version}/promote", json={"reason": "v1"}), 202)
        request_id = pending["request"]["id"]
        assert pending["status"] == "pending" and pending["request"]["author"] == "root"
        duty = assert_error(root.post(f"/approvals/{request_id}/approve"), 403, "forbidden")
        assert duty["details"]["rule"] == "separation_of_duties"
        assert_error(eng.post(f"/approvals/{request_id}/approve"), 403, "forbidden")  # lacks approvals:decide
        first = ok(ana.post(f"/approvals/{request_id}/approve", json={"comment": "metrics checked"}))
        assert (first["approvals"], first["outcome"]) == (1, None)
        assert_error(ana.post(f"/approvals/{request_id}/approve"), 409, "conflict")
        done = ok(bo.post(f"/approvals/{request_id}/approve"))
        assert done["outcome"]["promoted"] is True and done["status"] == "approved"
        assert ok(eng.get("/models/churn"))["aliases"] == {"production": version}
        listed = ok(ana.get("/approvals", params={"status": "approved"}))["requests"]
        assert [r["id"] for r in listed] == [request_id]
        assert [d["approver"] for d in ok(ana.get(f"/approvals/{request_id}"))["decisions"]] == ["ana", "bo"]


def test_a_failing_rule_answers_403_with_the_verdict_and_rejections_need_a_reason(server: Server) -> None:
    with server.as_("root") as root, server.as_("eng") as eng, server.as_("ana") as ana:
        ok(root.post("/policies", json={"document": GATE}), 201)
        weak = register(root, 0.7)
        error = assert_error(eng.post(f"/models/churn/versions/{weak}/promote"), 403, "policy_violation")
        failed = [r["rule"] for r in error["details"]["verdict"]["results"] if not r["passed"]]
        assert failed == ["metrics.auc >= 0.85", "approvals >= 2"]
        good = register(root, 0.9)
        request_id = ok(eng.post(f"/models/churn/versions/{good}/promote"), 202)["request"]["id"]
        assert_error(ana.post(f"/approvals/{request_id}/reject", json={"comment": ""}), 400, "invalid_input",
                     "comment")  # fmt: skip
        rejected = ok(ana.post(f"/approvals/{request_id}/reject", json={"comment": "not this quarter"}))
        assert rejected["status"] == "rejected"
        assert_error(ana.get("/approvals", params={"status": "open"}), 422, "invalid_input")
        assert_error(ana.get("/approvals/nope"), 404, "not_found")
