"""Monitoring routes over real HTTP with auth on: statuses and error bodies, permissions, masked secrets,
tenancy, and runs and reports that match the embedded service's on the same endpoint log.

The server runs on the home of ``tests.monitoring.test_service`` (model ``churn`` trained on
``churn-train``, drifted traffic logged in project ``default`` between 10:05 and 10:15).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from steward.api import monitoring as monitoring_api
from steward.api.app import create_app
from steward.api.auth import api_routes, route_permission
from steward.api.identity import identity_service_of
from steward.config import load_settings
from steward.monitoring.report_html import render_html
from steward.monitoring.runs import MonitoringReport
from tests.api.people import issue_tokens
from tests.api.test_tracking_routes import assert_error
from tests.client.test_monitoring import recording_waits
from tests.conftest import reset_sdk
from tests.monitoring.test_channels import receiver  # noqa: F401 (a fixture)
from tests.monitoring.test_service import Env, at, open_env
from tests.plugins.server import running_server

PROJECT = "default"
OTHER = "beta"
ROLES = {"eng": "ml-engineer", "sci": "data-scientist", "vic": "viewer"}
SLACK = "https://hooks.slack.com/services/T000/B000/secret-token"


@dataclass
class Server:
    url: str
    env: Env
    tokens: dict[str, str]

    def as_(self, who: str, project: str = PROJECT) -> httpx.Client:
        headers = {"X-Steward-Project": project, "Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on; ``root`` is the global admin, ``ROLES`` members of ``default`` (whose endpoint ``churn``
    has drifted traffic), ``bob`` an engineer of ``beta``."""
    env = open_env(tmp_path_factory.mktemp("monitoring-api"))
    env.traffic(at(5), shift=30)
    app = recording_waits(create_app(load_settings(home=env.home, auth=True)), env.waits)
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


def monitor(name: str, **fields: Any) -> dict[str, Any]:
    """A ``POST /monitors`` body watching ``churn`` over the last hour."""
    return {"name": name, "endpoint": "churn", "rules": ["drift_share > 0.3"], "window": "1h", **fields}


def now(minutes: float) -> dict[str, str]:
    return {"now": at(minutes).isoformat()}


def test_every_monitoring_route_declares_its_permission() -> None:
    routes = [r for r in monitoring_api.router.routes if isinstance(r, APIRoute)]
    found = {(min(r.methods or ()), r.path.removeprefix("/api/v1")): route_permission(r) for r in routes}
    assert found == {
        ("GET", "/monitors"): "monitoring:read",
        ("POST", "/monitors"): "monitoring:write",
        ("GET", "/monitors/{name}"): "monitoring:read",
        ("DELETE", "/monitors/{name}"): "monitoring:write",
        ("POST", "/monitors/{name}/enable"): "monitoring:write",
        ("POST", "/monitors/{name}/disable"): "monitoring:write",
        ("POST", "/monitors/{name}/run"): "monitoring:write",
        ("GET", "/alerts"): "monitoring:read",
        ("GET", "/alerts/{alert_id}"): "monitoring:read",
        ("GET", "/monitoring/report"): "monitoring:read",
        ("GET", "/monitoring/drift"): "monitoring:read",
    }


def test_the_app_serves_the_monitoring_routes(tmp_path: Any) -> None:
    app = create_app(load_settings(home=tmp_path / "home"))
    paths = {r.path for r in api_routes(app)}
    assert {"/api/v1/monitors", "/api/v1/alerts/{alert_id}", "/api/v1/monitoring/report"} <= paths


# -- who may do what ----------------------------------------------------------------------------------


def test_an_engineer_creates_and_runs_monitors_while_readers_only_read(server: Server) -> None:
    with server.as_("eng") as eng, server.as_("vic") as vic, server.as_("sci") as sci:
        made = ok(eng.post("/monitors", json=monitor("roles")), 201)
        assert (made["name"], made["window_s"], made["created_by"]) == ("roles", 3600, "eng")
        for client in (vic, sci):
            assert_error(client.post("/monitors", json=monitor("nope")), 403, "forbidden")
            assert_error(client.post("/monitors/roles/run", json=now(30)), 403, "forbidden")
            assert_error(client.post("/monitors/roles/disable"), 403, "forbidden")
            assert_error(client.delete("/monitors/roles"), 403, "forbidden")
        assert "monitoring:write" in vic.post("/monitors", json=monitor("nope")).json()["error"]["message"]

        assert [m["name"] for m in ok(vic.get("/monitors"))["monitors"]] == ["roles"]
        assert ok(vic.get("/monitors/roles"))["rules"] == ["drift_share > 0.3"]
        run = ok(eng.post("/monitors/roles/run", json=now(30)))
        [alert] = run["opened"]
        assert [r["outcome"] for r in run["rules"]] == ["opened"]
        assert ok(vic.get("/alerts", params={"monitor": "roles"}))["alerts"] == [alert]
        assert ok(vic.get(f"/alerts/{alert['id']}"))["state"] == "firing"
        assert ok(vic.get("/monitoring/report", params={"endpoint": "churn", "window": "1h", **now(30)}))[
            "rows"
        ]

        assert ok(eng.post("/monitors/roles/disable"))["enabled"] is False
        assert ok(eng.post("/monitors/roles/enable"))["enabled"] is True
        ok(eng.delete("/monitors/roles"), 204)
        assert_error(vic.get("/monitors/roles"), 404, "not_found", "monitor")
        assert_error(vic.get(f"/alerts/{alert['id']}"), 404, "not_found", "alert")

    with server.as_("root") as root:
        trail = ok(root.get("/audit", params={"resource_id": "roles", "resource_kind": "monitor"}))
    actions = [e["action"] for e in reversed(trail["entries"])]
    assert actions == ["monitor.create", "alert.open", "monitor.disable", "monitor.enable", "monitor.delete"]
    assert {e["actor"] for e in trail["entries"]} == {"eng"}


# -- bad input ----------------------------------------------------------------------------------------


def test_a_bad_monitor_is_refused_naming_the_part_and_nothing_is_stored(server: Server) -> None:
    with server.as_("eng") as eng:
        error = assert_error(
            eng.post("/monitors", json=monitor("bad", rules=["drift_share > 0.3", "psi(income) >> 0.2"])),
            400,
            "invalid_input",
            "rules",
        )
        assert "psi(income) >> 0.2" in error["message"]
        assert_error(
            eng.post("/monitors", json=monitor("bad", rules=["acuracy < 0.9"])), 400, "invalid_input", "rules"
        )
        assert_error(eng.post("/monitors", json=monitor("bad", rules=[])), 400, "invalid_input", "rules")
        for schedule in ("every minute", "61 * * * *", 5):
            response = eng.post("/monitors", json=monitor("bad", schedule=schedule))
            assert_error(response, 400, "invalid_input", "schedule")
        assert_error(eng.post("/monitors", json=monitor("bad", window="1y")), 400, "invalid_input", "window")
        assert_error(
            eng.post("/monitors", json=monitor("bad", channels=["ftp://x"])),
            400,
            "invalid_input",
            "channels.target",
        )
        assert_error(
            eng.post("/monitors", json=monitor("bad", reference="no-such-dataset")), 404, "not_found"
        )
        missing = {"name": "bad", "endpoint": "churn"}
        assert_error(eng.post("/monitors", json=missing), 422, "invalid_input", "rules")
        assert_error(eng.post("/monitors", json=monitor("bad", colour="red")), 422, "invalid_input", "colour")
        assert_error(eng.post("/monitors", json=monitor("bad name!")), 400, "invalid_input", "monitor")
        assert_error(eng.get("/monitors/bad"), 404, "not_found", "monitor")
        assert [m["name"] for m in ok(eng.get("/monitors"))["monitors"]] == []

        ok(eng.post("/monitors", json=monitor("dup")), 201)
        assert_error(eng.post("/monitors", json=monitor("dup")), 409, "already_exists", "name")
        ok(eng.delete("/monitors/dup"), 204)


def test_bad_queries_of_alerts_runs_and_reports_are_clear_4xx(server: Server) -> None:
    with server.as_("eng") as eng:
        assert_error(eng.get("/alerts", params={"state": "open"}), 400, "invalid_input", "state")
        assert_error(eng.get("/alerts", params={"monitor": "ghost"}), 404, "not_found", "monitor")
        assert_error(eng.post("/monitors/ghost/run"), 404, "not_found", "monitor")
        assert_error(eng.post("/monitors/ghost/run", json={"now": "soon"}), 422, "invalid_input", "now")
        report = "/monitoring/report"
        assert_error(eng.get(report), 422, "invalid_input", "endpoint")
        assert_error(
            eng.get(report, params={"endpoint": "churn", "window": "1y"}), 400, "invalid_input", "window"
        )
        both = {"endpoint": "churn", "reference": "churn-train", "reference_start": at(0).isoformat()}
        assert_error(eng.get(report, params=both), 400, "invalid_input", "reference")
        half = {"endpoint": "churn", "reference_end": at(0).isoformat()}
        assert_error(eng.get(report, params=half), 400, "invalid_input", "reference")
        backwards = {
            "endpoint": "churn",
            "reference_start": at(30).isoformat(),
            "reference_end": at(0).isoformat(),
        }
        assert_error(eng.get(report, params=backwards), 400, "invalid_input", "reference")
        assert_error(eng.get(report, params={"endpoint": "churn", "reference": "ghost"}), 404, "not_found")
        assert_error(
            eng.get(report, params={"endpoint": "churn", "format": "pdf"}), 422, "invalid_input", "format"
        )
        assert_error(eng.get(report, params={"endpoint": "no such!"}), 400, "invalid_input", "endpoint")


# -- secrets ------------------------------------------------------------------------------------------


def test_webhook_urls_and_header_values_never_leave_the_server(
    server: Server,
    receiver: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    hook = receiver()
    mail = {"host": "smtp.example.org", "sender": "steward@example.org", "username": "alerts"}
    channels = [
        {"kind": "webhook", "target": SLACK, "options": {"headers": {"Authorization": "Bearer s3cr3t"}}},
        {"kind": "email", "target": "ops@example.org", "options": mail},
    ]
    shown = [
        {
            "kind": "webhook",
            "target": "https://hooks.slack.com/…",
            "options": {"headers": {"Authorization": "***"}},
        },
        channels[1],
    ]
    local = {"kind": "webhook", "target": hook.url, "options": {"headers": {"X-Token": "hush-hush"}}}
    port = urlsplit(hook.url).port
    secrets = ("secret-token", "s3cr3t", "hush-hush", "/services/")
    with server.as_("eng") as eng, server.as_("root") as root:
        answers = [eng.post("/monitors", json=monitor("hooked", channels=channels))]
        answers += [eng.get("/monitors/hooked"), eng.get("/monitors"), eng.post("/monitors/hooked/disable")]
        answers += [eng.post("/monitors/hooked/enable")]
        # Only the local receiver is run against: the test sends nothing off this machine.
        answers += [eng.post("/monitors", json=monitor("hooked-local", channels=[local]))]
        answers += [eng.post("/monitors/hooked-local/run", json=now(30))]
        answers += [eng.get("/alerts", params={"monitor": "hooked-local"})]
        for name in ("hooked", "hooked-local"):
            answers += [root.get("/audit", params={"resource_id": name, "resource_kind": "monitor"})]
        for answer in answers:
            assert answer.status_code in (200, 201), answer.text
            assert [s for s in secrets if s in answer.text] == [], answer.request.url
        assert answers[0].json()["channels"] == answers[1].json()["channels"] == shown
        assert answers[2].json()["monitors"][0]["channels"] == shown
        assert answers[5].json()["channels"] == [
            {
                "kind": "webhook",
                "target": f"http://127.0.0.1:{port}/…",
                "options": {"headers": {"X-Token": "***"}},
            }
        ]
        [delivered] = answers[6].json()["opened"]
        assert delivered["delivered"] is True
        assert [d["channel"] for d in delivered["deliveries"]] == [f"webhook:http://127.0.0.1:{port}"]

        # The server still holds them, and delivers with them.
        assert [c.target for c in server.env.service.get_monitor("hooked").channels] == [
            SLACK,
            "ops@example.org",
        ]
        assert server.env.service.get_monitor("hooked").channels[0].options["headers"] == {
            "Authorization": "Bearer s3cr3t"
        }
        assert hook.headers[-1]["X-Token"] == "hush-hush" and len(hook.bodies) == 1
        assert hook.bodies[0]["steward"]["id"] == delivered["id"]

        password = {"kind": "email", "target": "ops@example.org", "options": {**mail, "password": "hunter2"}}
        refused = eng.post("/monitors", json=monitor("mailer", channels=[password]))
        assert_error(refused, 400, "invalid_input", "channels.password")
        assert "hunter2" not in refused.text
        assert_error(eng.get("/monitors/mailer"), 404, "not_found")
        ok(eng.delete("/monitors/hooked"), 204)
        ok(eng.delete("/monitors/hooked-local"), 204)


def test_masking_shows_scheme_and_host_only() -> None:
    assert monitoring_api.masked_target("https://user:pw@hooks.slack.com/services/T/B/x?token=y#z") == (
        "https://hooks.slack.com/…"
    )
    assert monitoring_api.masked_target("http://[::1]:8080/hook") == "http://[::1]:8080/…"
    assert monitoring_api.masked_target("http://host:port/x") == "…"
    assert monitoring_api.masked_target("no url at all") == "…"


# -- tenancy ------------------------------------------------------------------------------------------


def test_another_project_sees_none_of_the_monitors_or_alerts(server: Server) -> None:
    with server.as_("eng") as eng, server.as_("bob", OTHER) as bob, server.as_("eng", OTHER) as stranger:
        ok(eng.post("/monitors", json=monitor("ours")), 201)
        [alert] = ok(eng.post("/monitors/ours/run", json=now(30)))["opened"]

        assert ok(bob.get("/monitors"))["monitors"] == []
        assert ok(bob.get("/alerts"))["alerts"] == []
        assert_error(bob.get("/monitors/ours"), 404, "not_found")
        assert_error(bob.get(f"/alerts/{alert['id']}"), 404, "not_found")
        assert_error(bob.post("/monitors/ours/run"), 404, "not_found")
        assert_error(bob.delete("/monitors/ours"), 404, "not_found")
        assert_error(bob.get("/alerts", params={"monitor": "ours"}), 404, "not_found")
        assert_error(stranger.get("/monitors"), 403, "forbidden")  # eng is no member of beta

        theirs = ok(bob.post("/monitors", json=monitor("ours", rules=["accuracy < 0.9"])), 201)
        assert theirs["id"] != ok(eng.get("/monitors/ours"))["id"]
        report = ok(bob.get("/monitoring/report", params={"endpoint": "churn", "window": "1h", **now(30)}))
        assert report["rows"] == 0  # beta's endpoint churn has no traffic: default's log is not read
        assert ok(eng.get("/monitors/ours"))["rules"] == ["drift_share > 0.3"]
        assert [a["id"] for a in ok(eng.get("/alerts", params={"monitor": "ours"}))["alerts"]] == [
            alert["id"]
        ]
        ok(bob.delete("/monitors/ours"), 204)
        ok(eng.delete("/monitors/ours"), 204)


# -- the same as embedded -----------------------------------------------------------------------------


def test_a_run_over_http_opens_the_alerts_an_embedded_run_opens(server: Server) -> None:
    rules = ["drift_share > 0.3", "psi(income) > 0.2", "drifted(age)", "accuracy < 0.9"]
    server.env.service.create_monitor("twin-embedded", "churn", rules=rules, window="1h")
    embedded = server.env.service.run_monitor("twin-embedded", now=at(45)).to_json()
    with server.as_("eng") as eng:
        ok(eng.post("/monitors", json=monitor("twin-http", rules=rules)), 201)
        over_http = ok(eng.post("/monitors/twin-http/run", json=now(45)))
        listed = ok(eng.get("/alerts", params={"monitor": "twin-http", "state": "firing"}))["alerts"]

    def alerts(run: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(a["rule"], a["state"], a["value"], a["threshold"], a["count"]) for a in run["opened"]]

    def rules_of(run: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "alert_id"} for r in run["rules"]]

    assert [r["outcome"] for r in over_http["rules"]] == ["opened", "opened", "ok", "unknown"]
    assert rules_of(over_http) == rules_of(embedded)
    assert alerts(over_http) == alerts(embedded)
    assert over_http["report"] == embedded["report"]
    assert sorted(a["id"] for a in listed) == sorted(a["id"] for a in over_http["opened"])
    server.env.service.delete_monitor("twin-embedded")
    server.env.service.delete_monitor("twin-http")


def test_a_report_over_http_equals_the_embedded_one_as_json_and_as_a_page(server: Server) -> None:
    params = {"endpoint": "churn", "window": "1h", "reference": "churn-train@1", **now(30)}
    embedded = server.env.service.report("churn", window="1h", reference="churn-train@1", now=at(30))
    with server.as_("vic") as vic:
        found = ok(vic.get("/monitoring/report", params=params))
        page = vic.get("/monitoring/report", params={**params, "format": "html"})
    assert found == embedded.to_json()
    assert MonitoringReport.from_json(found) == embedded
    assert found["drift"]["drifted_columns"] == ["income"]

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")

    def undated(html: str) -> str:
        return re.sub(r"<dt>Generated</dt><dd>[^<]*</dd>", "", html)

    assert undated(page.text) == undated(render_html(embedded))
    assert "Monitoring report: churn" in page.text and "<script" not in page.text
