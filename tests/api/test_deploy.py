"""Deploy routes over real HTTP with auth on: statuses, error bodies, permissions, the gate, tenancy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from fastapi.routing import APIRoute

from steward.api import deploy as deploy_api
from steward.api.app import create_app
from steward.api.auth import route_permission
from steward.api.identity import identity_service_of
from steward.config import load_settings
from tests.api.test_tracking_routes import assert_error
from tests.deploy.test_service import with_deploy_routes
from tests.plugins.server import running_server

PROJECT = "alpha"
ROLES = {"eng": "ml-engineer", "sci": "data-scientist", "vic": "viewer"}
GATE = "name: gate\naliases: [production]\nrules:\n  - metrics.auc >= 0.85\n"


@dataclass
class Server:
    url: str
    tokens: dict[str, str]

    def as_(self, who: str, project: str = PROJECT) -> httpx.Client:
        headers = {"X-Steward-Project": project, "Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on; ``root`` is the global admin, the others members of ``alpha`` with ``ROLES``."""
    home = tmp_path_factory.mktemp("deploy-api") / "home"
    app = with_deploy_routes(create_app(load_settings(home=home, auth=True)))
    identities = identity_service_of(app.state)
    identities.create_user("root", global_role="admin")
    tokens = {"root": identities.issue_token("root").secret}
    for project in (PROJECT, "beta"):
        identities.create_project(project)
    for name, role in ROLES.items():
        identities.create_user(name)
        identities.add_member(PROJECT, name, role)
        tokens[name] = identities.issue_token(name).secret
    with running_server(app) as url:
        yield Server(url, tokens)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def register(api: httpx.Client, model: str, auc: float) -> str:
    upload = ok(api.post(f"/models/{model}/files", params={"path": "model.bin"}, content=b"weights"), 201)
    body = {"flavor": "sklearn", "files": [upload], "metrics": {"auc": auc}}
    return str(ok(api.post(f"/models/{model}/versions", json=body), 201)["version"])


def test_every_deploy_route_declares_its_permission() -> None:
    routes = [r for r in deploy_api.router.routes if isinstance(r, APIRoute)]
    found = {(sorted(r.methods)[0], r.path.removeprefix("/api/v1")): route_permission(r) for r in routes}
    assert found == {
        ("GET", "/endpoints"): "deploy:read",
        ("POST", "/endpoints"): "deploy:write",
        ("GET", "/endpoints/{name}"): "deploy:read",
        ("PATCH", "/endpoints/{name}"): "deploy:write",
        ("DELETE", "/endpoints/{name}"): "deploy:write",
        ("GET", "/endpoints/{name}/status"): "deploy:read",
        ("POST", "/endpoints/{name}/rollouts"): "deploy:write",
        ("GET", "/endpoints/{name}/rollouts"): "deploy:read",
        ("GET", "/endpoints/{name}/rollouts/{rollout_id}"): "deploy:read",
        ("POST", "/endpoints/{name}/promote"): "deploy:write",
        ("POST", "/endpoints/{name}/rollback"): "deploy:write",
        ("POST", "/endpoints/{name}/abort"): "deploy:write",
        ("POST", "/endpoints/{name}/advance"): "deploy:write",
        ("GET", "/endpoints/{name}/results"): "deploy:read",
        ("POST", "/endpoints/{name}/export"): "deploy:write",
    }


def test_an_engineer_rolls_out_and_back_while_readers_only_read(server: Server) -> None:
    with (
        server.as_("eng") as eng,
        server.as_("vic") as vic,
        server.as_("sci") as sci,
        server.as_("root") as root,
    ):
        first, second = register(eng, "churn", 0.9), register(eng, "churn", 0.91)
        made = ok(eng.post("/endpoints", json={"name": "churn", "model": "churn", "version": first}), 201)
        assert (made["project"], made["revision"], made["created_by"]) == (PROJECT, 1, "eng")
        assert_error(
            sci.post("/endpoints", json={"name": "x", "model": "churn", "version": first}), 403, "forbidden"
        )
        started = ok(
            eng.post("/endpoints/churn/rollouts", json={"strategy": "canary", "version": second}), 201
        )
        assert (started["state"], started["share"]) == ("running", 5.0)
        assert_error(vic.post("/endpoints/churn/promote"), 403, "forbidden")
        assert ok(vic.get("/endpoints/churn/rollouts/latest"))["id"] == started["id"]
        assert ok(vic.get(f"/endpoints/churn/rollouts/{started['id']}"))["events"][0]["kind"] == "started"
        assert ok(eng.post("/endpoints/churn/advance"))["action"] == "waiting"
        assert ok(eng.post("/endpoints/churn/promote", json={"finish": True}))["state"] == "succeeded"
        status = ok(vic.get("/endpoints/churn/status"))
        assert [a["role"] for a in status["endpoint"]["arms"]] == ["stable", "standby"]
        assert ok(eng.post("/endpoints/churn/rollback", json={"reason": "pager"}))["state"] == "rolled_back"
        assert [r["state"] for r in ok(vic.get("/endpoints/churn/rollouts"))["rollouts"]] == ["rolled_back"]
        assert ok(vic.get("/endpoints/churn/results"))["strategy"] == "canary"
        trail = ok(root.get("/audit", params={"resource_id": "churn", "resource_kind": "endpoint"}))
        assert {e["actor"] for e in trail["entries"]} == {"eng"}
        assert all(e["request_id"] for e in trail["entries"])


def test_an_engineer_updates_an_endpoint_and_a_viewer_may_not(server: Server) -> None:
    with server.as_("eng") as eng, server.as_("vic") as vic, server.as_("root") as root:
        version = register(eng, "upsell", 0.9)
        made = ok(eng.post("/endpoints", json={"name": "upsell", "model": "upsell", "version": version}), 201)
        assert_error(vic.patch("/endpoints/upsell", json={"description": "mine"}), 403, "forbidden")
        body = {"description": "upsell offers", "sticky_key": "user", "reason": "A/B soon"}
        updated = ok(eng.patch("/endpoints/upsell", json=body))
        assert (updated["description"], updated["sticky_key"], updated["revision"]) == (
            "upsell offers", "user", made["revision"] + 1,
        )  # fmt: skip
        assert updated["arms"] == made["arms"] and ok(vic.get("/endpoints/upsell")) == updated
        cleared = ok(eng.patch("/endpoints/upsell", json={"clear_sticky_key": True}))
        assert (cleared["sticky_key"], cleared["description"]) == (None, "upsell offers")
        assert_error(eng.patch("/endpoints/upsell", json={}), 400, "invalid_input", "update")
        assert_error(
            eng.patch("/endpoints/upsell", json={"sticky_key": "u", "clear_sticky_key": True}),
            400,
            "invalid_input",
            "sticky_key",
        )
        assert_error(eng.patch("/endpoints/upsell", json={"colour": "red"}), 422, "invalid_input", "colour")
        assert_error(
            eng.patch("/endpoints/upsell", json={"feature_service": "nope"}),
            404,
            "not_found",
            "feature_service",
        )
        assert_error(eng.patch("/endpoints/nothing-here", json={"description": "x"}), 404, "not_found")
        trail = ok(root.get("/audit", params={"action": "endpoint.update", "resource_id": "upsell"}))
        entries = trail["entries"]
        assert [(e["actor"], e["details"]["reason"]) for e in entries] == [("eng", ""), ("eng", "A/B soon")]


def test_conflicts_bad_input_and_unknown_names_are_clear_4xx(server: Server) -> None:
    with server.as_("eng") as eng:
        version = register(eng, "fraud", 0.9)
        ok(eng.post("/endpoints", json={"name": "fraud", "model": "fraud", "version": version}), 201)
        assert_error(
            eng.post("/endpoints", json={"name": "fraud", "model": "fraud", "version": version}),
            409,
            "already_exists",
            "name",
        )
        assert_error(eng.post("/endpoints/fraud/promote"), 409, "conflict", "endpoint")
        assert_error(
            eng.post("/endpoints/fraud/rollouts", json={"strategy": "canary", "version": version}),
            409,
            "conflict",
            "version",
        )
        bad = {"strategy": "ab", "version": version, "options": {"weights": [10, 10]}}
        assert_error(eng.post("/endpoints/fraud/rollouts", json=bad), 400, "invalid_input", "options.weights")
        assert_error(eng.post("/endpoints/fraud/rollouts", json={"strategy": "canary"}), 422, "invalid_input")
        assert_error(
            eng.post("/endpoints/fraud/rollouts", json={"strategy": "canary", "version": "4.0.0"}),
            404,
            "not_found",
            "version",
        )
        assert_error(
            eng.post("/endpoints", json={"name": "a/b", "model": "fraud", "version": version}),
            400,
            "invalid_input",
            "endpoint",
        )
        assert_error(eng.get("/endpoints/nothing-here"), 404, "not_found", "endpoint")
        assert_error(eng.get("/endpoints/fraud/rollouts/latest"), 404, "not_found", "rollout")
        assert_error(
            eng.post(
                "/endpoints/fraud/promote", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            422,
            "invalid_input",
        )
        assert_error(
            eng.post("/endpoints/fraud/export", json={"target": "helm"}), 400, "invalid_input", "target"
        )


def test_the_gate_answers_403_with_every_rule_of_the_verdict(server: Server) -> None:
    with server.as_("root") as root, server.as_("eng") as eng:
        ok(root.post("/policies", json={"document": GATE}), 201)
        try:
            weak = register(eng, "spam", 0.6)
            refused = assert_error(
                eng.post("/endpoints", json={"name": "spam", "model": "spam", "version": weak}),
                403,
                "policy_violation",
                "version",
            )
            verdict = refused["details"]["verdict"]
            assert verdict["passed"] is False and verdict["results"][0]["rule"] == "metrics.auc >= 0.85"
            assert any(line.startswith("  FAIL") for line in refused["details"]["lines"])
            assert_error(eng.get("/endpoints/spam"), 404, "not_found")
            denied = ok(root.get("/audit", params={"action": "endpoint.create"}))["entries"]
            assert [(e["outcome"], e["resource_id"]) for e in denied if e["resource_id"] == "spam"] == [
                ("denied", "spam")
            ]
            strong = register(eng, "spam", 0.9)
            ok(eng.post("/endpoints", json={"name": "spam", "model": "spam", "version": strong}), 201)
        finally:
            ok(root.post("/policies/gate/retire", json={"reason": "test over"}))


def test_an_export_writes_manifests_for_the_stable_version(server: Server) -> None:
    with server.as_("eng") as eng:
        version = register(eng, "ranker", 0.9)
        ok(eng.post("/endpoints", json={"name": "ranker", "model": "ranker", "version": version}), 201)
        files = ok(eng.post("/endpoints/ranker/export", json={"target": "kubernetes"}))["files"]
        docs = list(yaml.safe_load_all(files["kubernetes.yaml"]))
        assert [doc["kind"] for doc in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
        container = docs[0]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][:3] == ["steward", "serve", f"ranker/{version}"]


def test_an_endpoint_of_one_project_is_invisible_from_another(server: Server) -> None:
    with server.as_("root", "beta") as beta, server.as_("eng") as eng:
        version = register(beta, "secret-model", 0.9)
        ok(
            beta.post(
                "/endpoints", json={"name": "beta-endpoint", "model": "secret-model", "version": version}
            ),
            201,
        )
        assert "beta-endpoint" not in ok(eng.get("/endpoints")).__repr__()
        assert_error(eng.get("/endpoints/beta-endpoint"), 404, "not_found")
        assert_error(eng.post("/endpoints/beta-endpoint/promote"), 404, "not_found")
        assert_error(eng.get("/endpoints/beta-endpoint/status"), 404, "not_found")
        assert [e["name"] for e in ok(beta.get("/endpoints"))["endpoints"]] == ["beta-endpoint"]
