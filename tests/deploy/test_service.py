"""Endpoints and rollouts through the deploy backend, embedded and over HTTP (one contract, both ways):
plans, promotion and rollback by hand, updates of an endpoint, the policy gate, the audit trail, projects
kept apart, bad input."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from steward.api import deploy as deploy_api
from steward.api.app import create_app
from steward.api.auth import api_routes
from steward.config import load_settings
from steward.deploy.models import DeployBackend, RolloutState
from steward.deploy.source import EndpointSource
from steward.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound, PolicyViolation
from steward.governance.context import Identity, acting_as
from steward.governance.policy_store import PolicyStore
from steward.registry import promotion
from steward.serving.models import Arm
from tests.deploy.conftest import DeployEnv, open_deploy_env
from tests.plugins.server import running_server

GATE = "name: gate\naliases: [production]\nrules:\n  - metrics.auc >= 0.85\n"


def with_deploy_routes(app: FastAPI) -> FastAPI:
    """The app with the deploy router (``create_app`` includes it once wired)."""
    paths = {route.path for route in api_routes(app)}
    if not {getattr(route, "path", "") for route in deploy_api.router.routes} <= paths:
        app.include_router(deploy_api.router)
    return app


@dataclass
class Contract:
    kind: str
    env: DeployEnv
    deploy: DeployBackend


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres), "remote"])
def contract(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Contract]:
    """The embedded service on SQLite or PostgreSQL, or the HTTP client of a real server on the same home."""
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    env = open_deploy_env(tmp_path, db=db)
    try:
        if request.param != "remote":
            yield Contract(request.param, env, env.deploy)
            return
        from steward.client.deploy import RemoteDeployService
        from steward.client.http import HttpClient

        app = with_deploy_routes(create_app(load_settings(home=tmp_path / "home")))
        with running_server(app) as url, HttpClient(url) as http:
            yield Contract("remote", env, RemoteDeployService(http))
    finally:
        env.platform.close()


def arms(deploy: DeployBackend, name: str = "churn") -> list[tuple[str, str, float]]:
    return [(a.version, a.role, a.weight) for a in deploy.get_endpoint(name).arms]


def test_an_endpoint_starts_with_its_version_stable_at_revision_one(contract: Contract) -> None:
    deploy = contract.deploy
    made = deploy.create_endpoint("churn", "churn", "1.0.0", description="churn scores", sticky_key="user")
    assert (made.model, made.stable, made.revision, made.sticky_key) == ("churn", "1.0.0", 1, "user")
    assert made.plan.arms == (Arm("1.0.0", "stable", 1.0),) and made.created_by
    assert [e.name for e in deploy.list_endpoints()] == ["churn"]
    with pytest.raises(AlreadyExists):
        deploy.create_endpoint("churn", "churn", "1.1.0")
    deploy.delete_endpoint("churn", "done")
    with pytest.raises(NotFound):
        deploy.get_endpoint("churn")


def test_a_canary_promoted_by_hand_climbs_to_100_and_rolls_back_to_the_standby(contract: Contract) -> None:
    deploy = contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    started = deploy.start_rollout("churn", "canary", "1.1.0", {"steps": [10, 50, 100]})
    assert (started.state, started.step, started.baseline, started.share) == (
        RolloutState.RUNNING,
        0,
        "1.0.0",
        10,
    )
    assert arms(deploy) == [("1.0.0", "stable", 0.9), ("1.1.0", "canary", 0.1)]
    assert deploy.promote("churn").step == 1
    assert arms(deploy) == [("1.0.0", "stable", 0.5), ("1.1.0", "canary", 0.5)]
    done = deploy.promote("churn", reason="looks fine")
    assert done.state is RolloutState.SUCCEEDED and done.ended_at is not None
    assert arms(deploy) == [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)]
    back = deploy.rollback("churn", "pager")
    assert back.state is RolloutState.ROLLED_BACK
    assert arms(deploy) == [("1.0.0", "stable", 1.0), ("1.1.0", "standby", 0.0)]
    assert deploy.get_endpoint("churn").revision == 5
    kinds = [e.kind for e in deploy.get_rollout("churn").events]
    assert kinds == ["started", "promoted", "promoted", "rolled_back"]
    with pytest.raises(Conflict, match="nothing to roll back"):
        deploy.rollback("churn")


def test_one_rollout_at_a_time_and_nothing_to_promote_without_one(contract: Contract) -> None:
    deploy = contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    with pytest.raises(Conflict, match="nothing to promote"):
        deploy.promote("churn")
    with pytest.raises(Conflict, match="nothing to abort"):
        deploy.abort("churn")
    with pytest.raises(Conflict, match="nothing to roll back"):
        deploy.rollback("churn")
    with pytest.raises(Conflict, match="already holds"):
        deploy.start_rollout("churn", "canary", "1.0.0")
    first = deploy.start_rollout("churn", "ab", "1.1.0", {"weights": [80, 20], "sticky_key": "user_id"})
    assert deploy.get_endpoint("churn").plan.sticky_key == "user_id"
    with pytest.raises(Conflict) as info:
        deploy.start_rollout("churn", "canary", "1.2.0")
    assert info.value.details["rollout"] == first.id
    with pytest.raises(Conflict):
        deploy.delete_endpoint("churn")
    aborted = deploy.abort("churn", "wrong build")
    assert aborted.state is RolloutState.ABORTED and arms(deploy) == [("1.0.0", "stable", 1.0)]
    second = deploy.start_rollout("churn", "shadow", "1.2.0")
    assert arms(deploy) == [("1.0.0", "stable", 1.0), ("1.2.0", "shadow", 0.0)]
    assert [r.id for r in deploy.list_rollouts("churn")] == [second.id, first.id]


def test_blue_green_promoted_by_hand_switches_at_once(contract: Contract) -> None:
    deploy = contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    started = deploy.start_rollout("churn", "blue-green", "1.1.0")
    assert started.state is RolloutState.PENDING
    assert arms(deploy) == [("1.0.0", "stable", 1.0), ("1.1.0", "standby", 0.0)]
    waiting = deploy.advance("churn")
    assert waiting["action"] == "waiting" and "readiness" in waiting["message"]
    assert deploy.promote("churn").state is RolloutState.SUCCEEDED
    assert arms(deploy) == [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)]


def test_an_update_changes_only_what_it_is_given_and_moves_the_revision_not_the_arms(
    contract: Contract,
) -> None:
    deploy = contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0", description="churn scores", sticky_key="user")
    deploy.start_rollout("churn", "canary", "1.1.0", {"steps": [20, 100]})
    before = deploy.get_endpoint("churn")
    described = deploy.update_endpoint("churn", description="churn scores, v2", reason="clearer")
    assert (described.description, described.sticky_key, described.revision) == (
        "churn scores, v2", "user", before.revision + 1,
    )  # fmt: skip
    assert described.arms == before.arms and described.active_rollout == before.active_rollout
    keyed = deploy.update_endpoint("churn", sticky_key="account")  # allowed during a canary
    assert (keyed.description, keyed.sticky_key, keyed.revision) == ("churn scores, v2", "account", 4)
    cleared = deploy.update_endpoint("churn", clear_sticky_key=True)
    assert (cleared.sticky_key, cleared.revision, cleared.arms) == (None, 5, before.arms)
    assert deploy.get_endpoint("churn") == cleared
    same = deploy.update_endpoint("churn", description="churn scores, v2", clear_sticky_key=True)
    assert same.revision == 5  # nothing differs: no new revision, no audit entry
    plan = next(p for p in EndpointSource(contract.env.platform).plans() if p.endpoint == "churn")
    assert (plan.revision, plan.sticky_key, plan.arms) == (5, None, before.arms)
    assert deploy.promote("churn").state is RolloutState.SUCCEEDED  # the rollout goes on as it was
    updates = [e for e in contract.env.trail() if e.action == "endpoint.update"]
    assert len(updates) == 3 and {e.outcome for e in updates} == {"ok"}
    first = updates[0].details
    assert first["changes"] == {"description": {"from": "churn scores", "to": "churn scores, v2"}}
    assert (first["reason"], first["revision"], first["changed"]) == ("clearer", 3, ["description"])
    assert first["before"] == first["after"] and updates[0].before_digest == updates[0].after_digest
    assert updates[2].details["changes"] == {"sticky_key": {"from": "account", "to": None}}


def test_the_sticky_key_of_an_ab_rollout_under_way_cannot_change(contract: Contract) -> None:
    deploy = contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    started = deploy.start_rollout("churn", "ab", "1.1.0", {"weights": [50, 50], "sticky_key": "user_id"})
    for change in ({"sticky_key": "account"}, {"clear_sticky_key": True}):
        with pytest.raises(Conflict, match="A/B rollout") as info:
            deploy.update_endpoint("churn", **change)
        assert info.value.details == {"field": "sticky_key", "rollout": started.id}
    assert deploy.get_endpoint("churn").sticky_key == "user_id"
    assert deploy.update_endpoint("churn", description="A/B of 1.1.0").revision == 3  # the rest may change
    deploy.abort("churn")
    assert deploy.update_endpoint("churn", clear_sticky_key=True).sticky_key is None


def test_an_update_needs_deploy_write(tmp_path: Path) -> None:
    env = open_deploy_env(tmp_path)
    try:
        env.deploy.create_endpoint("churn", "churn", "1.0.0", description="scores")
        viewer = Identity("vic", "user", frozenset(), {"default": frozenset({"viewer"})})
        with acting_as(viewer, "default"), pytest.raises(Forbidden, match="deploy:write"):
            env.deploy.update_endpoint("churn", description="mine now")
        found = env.deploy.get_endpoint("churn")
        assert (found.description, found.revision) == ("scores", 1)
        assert [e.action for e in env.trail()] == ["endpoint.create"]
    finally:
        env.platform.close()


BAD_INPUT: list[tuple[Callable[[DeployBackend], object], type[Exception], str]] = [
    (lambda d: d.create_endpoint("bad name!", "churn", "1.0.0"), InvalidInput, "endpoint"),
    (lambda d: d.create_endpoint("churn", "churn", "9.9.9"), NotFound, "version"),
    (lambda d: d.create_endpoint("churn", "nope", "1.0.0"), NotFound, "model"),
    (lambda d: d.create_endpoint("churn", "churn", "one"), InvalidInput, "version"),
    (lambda d: d.create_endpoint("churn", "churn", "1.0.0", sticky_key=""), InvalidInput, "sticky_key"),
    (lambda d: d.start_rollout("nope", "canary", "1.1.0"), NotFound, "endpoint"),
    (lambda d: d.start_rollout("live", "canary", "7.0.0"), NotFound, "version"),
    (lambda d: d.start_rollout("live", "linear", "1.1.0"), InvalidInput, "strategy"),
    (
        lambda d: d.start_rollout("live", "ab", "1.1.0", {"weights": [50, 60]}),
        InvalidInput,
        "options.weights",
    ),
    (lambda d: d.start_rollout("live", "canary", "1.1.0", {"step": [5]}), InvalidInput, "options.step"),
    (lambda d: d.get_rollout("live", "no-such-id"), NotFound, "rollout"),
    (lambda d: d.results("live"), NotFound, "rollout"),
    (lambda d: d.export("live", "helm"), InvalidInput, "target"),
    (lambda d: d.update_endpoint("live"), InvalidInput, "update"),
    (lambda d: d.update_endpoint("nope", description="x"), NotFound, "endpoint"),
    (lambda d: d.update_endpoint("bad name!", description="x"), InvalidInput, "endpoint"),
    (lambda d: d.update_endpoint("live", description=5), InvalidInput, "description"),  # type: ignore[arg-type]
    (lambda d: d.update_endpoint("live", sticky_key=" user"), InvalidInput, "sticky_key"),
    (lambda d: d.update_endpoint("live", sticky_key="u", clear_sticky_key=True), InvalidInput, "sticky_key"),
    (lambda d: d.update_endpoint("live", feature_service="no good"), InvalidInput, "feature_service"),
    (lambda d: d.update_endpoint("live", feature_service="nope"), NotFound, "feature_service"),
    (
        lambda d: d.update_endpoint("live", feature_service="f", clear_feature_service=True),
        InvalidInput,
        "feature_service",
    ),
]


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(contract: Contract) -> None:
    contract.deploy.create_endpoint("live", "churn", "1.0.0")
    for index, (call, error, field) in enumerate(BAD_INPUT):
        with pytest.raises(error) as info:
            call(contract.deploy)
        assert info.value.details["field"] == field, index  # type: ignore[attr-defined]
    found = contract.deploy.get_endpoint("live")
    assert (found.arms, found.revision, found.description, found.sticky_key, found.feature_service) == (
        (Arm("1.0.0", "stable", 1.0),), 1, "", None, None,
    )  # fmt: skip
    assert [e.name for e in contract.deploy.list_endpoints()] == ["live"]
    assert [e.action for e in contract.env.trail()] == ["endpoint.create"]


def test_the_gate_refuses_a_version_its_policies_reject_and_the_refusal_is_audited(
    contract: Contract,
) -> None:
    env, deploy = contract.env, contract.deploy
    good = env.register(metrics={"auc": 0.9})  # 1.3.0
    deploy.create_endpoint("churn", "churn", "1.0.0")  # before the policy: nothing gates it
    PolicyStore(env.platform).apply(GATE)
    with pytest.raises(PolicyViolation) as info:
        deploy.start_rollout("churn", "canary", "1.1.0")
    details = info.value.details
    assert details["verdict"]["passed"] is False and details["alias"] == "production"
    assert any("FAIL" in line and "metrics.auc >= 0.85" in line for line in details["lines"])
    with pytest.raises(PolicyViolation):
        deploy.create_endpoint("other", "churn", "1.1.0")
    denied = [(e.action, e.outcome, e.resource_id) for e in env.trail() if e.outcome == "denied"]
    assert denied == [("rollout.start", "denied", "churn"), ("endpoint.create", "denied", "other")]
    assert deploy.get_endpoint("churn").active_rollout is None
    assert deploy.start_rollout("churn", "canary", good).version == good
    # An endpoint gated by another alias is not held to production's policies.
    deploy.create_endpoint("staging", "churn", "1.1.0", gate_alias="staging")


def test_a_version_that_took_the_protected_alias_through_its_approvals_may_be_deployed(
    tmp_path: Path,
) -> None:
    env = open_deploy_env(tmp_path)
    PolicyStore(env.platform).apply("name: gate\naliases: [production]\nrules:\n  - approvals >= 1\n")
    with pytest.raises(PolicyViolation, match=r"steward models promote churn 1\.0\.0"):
        env.deploy.create_endpoint("churn", "churn", "1.0.0")
    pending = promotion.promote(env.registry, "churn", "1.0.0", "production")
    assert pending.request is not None
    approver = Identity("ana", "user", frozenset(), {"default": frozenset({"approver"})})
    with acting_as(approver, "default"):
        promotion.approval_service(env.registry).approve(pending.request.id)
    assert env.deploy.create_endpoint("churn", "churn", "1.0.0").stable == "1.0.0"
    env.platform.close()


def test_every_change_is_audited_with_the_plan_before_and_after(contract: Contract) -> None:
    env, deploy = contract.env, contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    rollout = deploy.start_rollout("churn", "canary", "1.1.0")
    deploy.promote("churn")
    deploy.abort("churn", "enough")
    deploy.delete_endpoint("churn", "retired")
    trail = env.trail()
    assert [e.action for e in trail] == [
        "endpoint.create",
        "rollout.start",
        "rollout.promote",
        "rollout.abort",
        "endpoint.delete",
    ]
    assert {e.resource_id for e in trail} == {"churn"} and {e.outcome for e in trail} == {"ok"}
    promoted = trail[2].details
    assert promoted["rollout"] == rollout.id and (promoted["from_state"], promoted["state"]) == (
        "running",
        "running",
    )
    assert promoted["before"] == [
        {"version": "1.0.0", "role": "stable", "weight": 0.95},
        {"version": "1.1.0", "role": "canary", "weight": 0.05},
    ]
    assert promoted["after"][1] == {"version": "1.1.0", "role": "canary", "weight": 0.25}
    assert all(e.before_digest and e.after_digest for e in trail[1:])
    assert trail[1].after_digest == trail[2].before_digest  # each change starts where the last one ended
    assert trail[0].details["project"] == "default"


def test_projects_are_kept_apart(contract: Contract) -> None:
    env, deploy = contract.env, contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    root = Identity("root", "user", frozenset({"admin"}))
    with acting_as(root, "beta"):
        env.register()  # churn 1.0.0 of project beta
        env.deploy.create_endpoint("beta-only", "churn", "1.0.0")
        env.deploy.create_endpoint("churn", "churn", "1.0.0")  # the same name in another project
        assert [e.name for e in env.deploy.list_endpoints()] == ["beta-only", "churn"]
        assert [p.endpoint for p in EndpointSource(env.platform).plans()] == ["beta-only", "churn"]
    assert [e.name for e in deploy.list_endpoints()] == ["churn"]
    with pytest.raises(NotFound):
        deploy.get_endpoint("beta-only")
    with pytest.raises(NotFound):
        EndpointSource(env.platform, ["beta-only"])
    assert [p.project for p in EndpointSource(env.platform).plans()] == ["default"]
    deploy.start_rollout("churn", "canary", "1.1.0")  # beta's churn endpoint is untouched
    with acting_as(root, "beta"):
        assert env.deploy.get_endpoint("churn").active_rollout is None


def test_rollouts_started_at_once_on_one_endpoint_leave_exactly_one_under_way(contract: Contract) -> None:
    deploy = contract.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    outcomes: list[str] = []
    lock = threading.Lock()

    def start(version: str) -> None:
        try:
            deploy.start_rollout("churn", "canary", version)
            found = "started"
        except Conflict:
            found = "conflict"
        with lock:
            outcomes.append(found)

    threads = [threading.Thread(target=start, args=(v,)) for v in ("1.1.0", "1.2.0") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["conflict"] * 5 + ["started"]
    assert len(deploy.list_rollouts("churn")) == 1
    assert deploy.get_endpoint("churn").revision == 2
