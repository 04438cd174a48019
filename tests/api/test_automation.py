"""Trigger routes over real HTTP with auth on, and ``RemoteAutomationService`` through them: statuses and
error bodies, permissions, tenancy, and firings a scheduler on the server's stores made."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from steward.api import automation as automation_api
from steward.api.app import create_app
from steward.api.auth import api_routes, route_permission
from steward.api.identity import identity_service_of
from steward.automation.models import Outcome, TriggerKind
from steward.automation.scheduler import Scheduler
from steward.automation.service import AutomationService
from steward.client.automation import RemoteAutomationService
from steward.client.http import HttpClient
from steward.config import load_settings
from steward.errors import AlreadyExists, Forbidden, InvalidInput, NotFound, StewardError
from steward.governance.context import Identity, acting_as
from steward.monitoring.service import MonitoringService
from tests.api.people import issue_tokens
from tests.api.test_tracking_routes import assert_error
from tests.automation.pipelines_for_tests import Env, open_env
from tests.conftest import reset_sdk
from tests.plugins.server import running_server

PROJECT = "alpha"
OTHER = "beta"
ROLES = {"eng": "ml-engineer", "sci": "data-scientist", "vic": "viewer"}
HELLO = "tests.automation.pipelines_for_tests:hello"
OPS = Identity("ops", "user", global_roles=frozenset({"admin"}))
"""Who the embedded service acts as, to compare with what the server answers."""


@dataclass
class Server:
    url: str
    env: Env
    tokens: dict[str, str]

    def as_(self, who: str, project: str = PROJECT) -> httpx.Client:
        headers = {"X-Steward-Project": project, "Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def remote(self, who: str, project: str = PROJECT) -> HttpClient:
        return HttpClient(self.url, token=self.tokens[who], project=project)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on, on a home the SDK is configured on (the scheduler's pipelines record their runs there);
    ``root`` is the global admin, ``ROLES`` members of ``alpha``, ``bob`` an engineer of ``beta``."""
    env = open_env(tmp_path_factory.mktemp("automation-api"))
    app = create_app(load_settings(home=env.home, auth=True))
    identities = identity_service_of(app.state)
    tokens = issue_tokens(identities, PROJECT, OTHER, ROLES)
    try:
        with running_server(app) as url:
            yield Server(url, env, tokens)
    finally:
        env.platform.close()
        reset_sdk()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def trigger(name: str, **fields: Any) -> dict[str, Any]:
    """A ``POST /triggers`` body: every hour, ``hello``."""
    return {"name": name, "kind": "cron", "spec": "0 * * * *", "pipeline": HELLO, **fields}


def test_every_automation_route_declares_its_permission() -> None:
    routes = [r for r in automation_api.router.routes if isinstance(r, APIRoute)]
    found = {(min(r.methods or ()), r.path.removeprefix("/api/v1")): route_permission(r) for r in routes}
    assert found == {
        ("GET", "/triggers"): "automation:read",
        ("POST", "/triggers"): "automation:write",
        ("GET", "/triggers/{name}"): "automation:read",
        ("DELETE", "/triggers/{name}"): "automation:write",
        ("GET", "/triggers/{name}/firings"): "automation:read",
    }


def test_the_app_serves_the_trigger_routes(tmp_path: Any) -> None:
    app = create_app(load_settings(home=tmp_path / "home"))
    paths = {r.path for r in api_routes(app)}
    assert {"/api/v1/triggers", "/api/v1/triggers/{name}", "/api/v1/triggers/{name}/firings"} <= paths


def test_an_engineer_creates_triggers_while_readers_only_read(server: Server) -> None:
    with server.as_("eng") as eng, server.as_("vic") as vic, server.as_("sci") as sci:
        made = ok(eng.post("/triggers", json=trigger("hourly", params={"message": "hi"})), 201)
        assert (made["kind"], made["spec"], made["project"], made["created_by"]) == (
            "cron",
            "0 * * * *",
            PROJECT,
            "eng",
        )
        assert made["action"] == {
            "kind": "pipeline",
            "target": HELLO,
            "params": {"message": "hi"},
            "executor": "local",
        }
        for client in (vic, sci):
            assert_error(client.post("/triggers", json=trigger("nope")), 403, "forbidden")
            assert_error(client.delete("/triggers/hourly"), 403, "forbidden")
        assert "automation:write" in vic.post("/triggers", json=trigger("nope")).json()["error"]["message"]

        assert [t["name"] for t in ok(vic.get("/triggers"))["triggers"]] == ["hourly"]
        assert ok(vic.get("/triggers/hourly")) == made
        assert ok(vic.get("/triggers/hourly/firings"))["firings"] == []
        ok(eng.delete("/triggers/hourly", params={"reason": "not needed"}), 204)
        assert_error(vic.get("/triggers/hourly"), 404, "not_found", "trigger")
        assert_error(eng.delete("/triggers/hourly"), 404, "not_found", "trigger")

    with server.as_("root") as root:
        trail = ok(root.get("/audit", params={"resource_id": "hourly", "resource_kind": "trigger"}))
    assert [e["action"] for e in reversed(trail["entries"])] == ["trigger.create", "trigger.delete"]
    assert {e["actor"] for e in trail["entries"]} == {"eng"}
    assert trail["entries"][0]["details"]["reason"] == "not needed"


def test_a_bad_trigger_is_refused_naming_the_field_and_nothing_is_stored(server: Server) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"spec": "61 * * * *"}, "spec"),
        ({"kind": "interval", "spec": "soon"}, "spec"),
        ({"kind": "weekly"}, "kind"),
        ({"kind": "monitor", "spec": "drift"}, "kind"),
        ({"pipeline": "pipelines/train.py:train"}, "pipeline"),
        ({"pipeline": "tests.automation.pipelines_for_tests:not_a_pipeline"}, "pipeline"),
        ({"pipeline": "no_such_module_here:thing"}, "pipeline"),
        ({"params": {"colour": "red"}}, "params"),
        ({"params": ["hi"]}, "params"),
        ({"executor": "gpu"}, "executor"),
    ]
    with server.as_("eng") as eng:
        for fields, field_name in bad:
            assert_error(
                eng.post("/triggers", json=trigger("bad", **fields)), 400, "invalid_input", field_name
            )
        assert_error(eng.post("/triggers", json=trigger("bad name!")), 400, "invalid_input", "trigger")
        error = assert_error(
            eng.post("/triggers", json=trigger("bad", kind="dataset", spec="no-such-data")), 404, "not_found"
        )
        assert error["details"]["field"] == "dataset"
        assert_error(eng.post("/triggers", json={"name": "bad", "kind": "cron", "spec": "0 * * * *"}), 422,
                     "invalid_input", "pipeline")  # fmt: skip
        assert_error(eng.post("/triggers", json=trigger("bad", spec=True)), 422, "invalid_input")
        assert_error(eng.post("/triggers", json=trigger("bad", when="now")), 422, "invalid_input", "when")
        assert ok(eng.get("/triggers"))["triggers"] == []

        made = ok(eng.post("/triggers", json=trigger("often", kind="interval", spec=900)), 201)
        assert made["spec"] == "900"
        assert_error(eng.post("/triggers", json=trigger("often")), 409, "already_exists", "name")
        assert_error(eng.get("/triggers/often/firings", params={"limit": 0}), 400, "invalid_input", "limit")
        assert_error(
            eng.get("/triggers/often/firings", params={"limit": "all"}), 422, "invalid_input", "limit"
        )
        assert_error(eng.get("/triggers/ghost/firings"), 404, "not_found", "trigger")
        ok(eng.delete("/triggers/often"), 204)


def test_another_project_sees_none_of_the_triggers(server: Server) -> None:
    with server.as_("eng") as eng, server.as_("bob", OTHER) as bob:
        ours = ok(eng.post("/triggers", json=trigger("ours")), 201)
        assert ok(bob.get("/triggers"))["triggers"] == []
        for call in (
            bob.get("/triggers/ours"),
            bob.get("/triggers/ours/firings"),
            bob.delete("/triggers/ours"),
        ):
            assert_error(call, 404, "not_found", "trigger")
        with server.as_("eng", OTHER) as stranger:
            assert_error(stranger.get("/triggers"), 403, "forbidden")  # eng is no member of beta

        theirs = ok(bob.post("/triggers", json=trigger("ours", spec="30 * * * *")), 201)
        assert (theirs["project"], theirs["id"] != ours["id"]) == (OTHER, True)
        assert ok(eng.get("/triggers/ours"))["spec"] == "0 * * * *"
        ok(bob.delete("/triggers/ours"), 204)
        ok(eng.delete("/triggers/ours"), 204)


# -- the remote client --------------------------------------------------------------------------------


def test_the_remote_client_reads_what_the_embedded_service_reads(server: Server) -> None:
    embedded = AutomationService(server.env.platform)
    with server.remote("eng") as http:
        remote = RemoteAutomationService(http)
        made = remote.create_trigger("minutely", "cron", "* * * * *", HELLO, params={"message": "tick"})
        assert (
            made.kind is TriggerKind.CRON
            and made.action is not None
            and made.action.params == {"message": "tick"}
        )
        Scheduler(server.env.platform, holder="s1", monitoring=None).tick(
            datetime.now(UTC) + timedelta(minutes=2)
        )

        [firing] = remote.list_firings("minutely")
        assert (firing.trigger, firing.project, firing.outcome, firing.fired_by) == (
            "minutely", PROJECT, Outcome.SUCCEEDED, "s1",
        )  # fmt: skip
        assert firing.details["result"]["details"]["run_id"]
        with acting_as(OPS, PROJECT):
            assert remote.list_firings("minutely", limit=1) == embedded.list_firings("minutely", 1)
            assert remote.get_trigger("minutely") == embedded.get_trigger("minutely")
            assert remote.list_triggers() == embedded.list_triggers()

        cases: list[tuple[Callable[[], object], type[StewardError], str]] = [
            (lambda: remote.create_trigger("minutely", "cron", "0 * * * *", HELLO), AlreadyExists, "name"),
            (lambda: remote.create_trigger("x", "cron", "61 * * * *", HELLO), InvalidInput, "spec"),
            (lambda: remote.create_trigger("x", "dataset", "ghost", HELLO), NotFound, "dataset"),
            (lambda: remote.get_trigger("ghost"), NotFound, "trigger"),
            (lambda: remote.get_trigger(""), InvalidInput, "name"),
            (lambda: remote.list_firings("minutely", limit=5000), InvalidInput, "limit"),
            (lambda: remote.list_firings("minutely", limit=True), InvalidInput, "limit"),
        ]
        for call, error, field_name in cases:
            with pytest.raises(error) as caught:
                call()
            assert caught.value.details["field"] == field_name
        remote.delete_trigger("minutely", reason="done")
        with pytest.raises(NotFound):
            remote.delete_trigger("minutely")
        assert remote.list_triggers() == []

    with server.remote("vic") as http, pytest.raises(Forbidden, match="automation:write"):
        RemoteAutomationService(http).create_trigger("x", "cron", "0 * * * *", HELLO)


def test_a_monitor_trigger_is_read_by_its_name_with_a_colon(server: Server) -> None:
    with acting_as(OPS, PROJECT):
        watched = MonitoringService(server.env.platform).create_monitor(
            "watch", "churn", rules=["accuracy < 0.9"]
        )
        now = datetime.now(UTC)
        kept = AutomationService(server.env.platform).follow_monitor(watched, "*/15 * * * *", now, now)
    with server.remote("vic") as http:
        remote = RemoteAutomationService(http)
        found = remote.get_trigger("monitor:watch")
        assert (found, found.kind, found.spec, found.action) == (kept, TriggerKind.MONITOR, "watch", None)
        assert remote.list_firings("monitor:watch") == []
        assert [t.name for t in remote.list_triggers()] == ["monitor:watch"]
    with server.remote("eng") as http:
        RemoteAutomationService(http).delete_trigger("monitor:watch")
        assert RemoteAutomationService(http).list_triggers() == []
    with acting_as(OPS, PROJECT):
        MonitoringService(server.env.platform).delete_monitor("watch")
