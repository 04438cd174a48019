"""``EndpointSource``: the plans a server polls, following every change of the store."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from steward.deploy.source import EndpointSource
from steward.errors import InvalidInput, NotFound
from steward.serving.models import Arm
from tests.deploy.conftest import DeployEnv


def test_the_source_follows_revisions_and_endpoints_that_come_and_go(deploy_env: DeployEnv) -> None:
    deploy = deploy_env.deploy
    everything = EndpointSource(deploy_env.platform)
    assert everything.plans() == []
    deploy.create_endpoint("churn", "churn", "1.0.0", sticky_key="user")
    deploy.create_endpoint("fraud", "churn", "1.1.0")
    named = EndpointSource(deploy_env.platform, ["churn"])
    (plan,) = named.plans()
    assert (plan.endpoint, plan.model, plan.project, plan.revision, plan.sticky_key) == (
        "churn",
        "churn",
        "default",
        1,
        "user",
    )
    deploy.start_rollout("churn", "canary", "1.2.0")
    (plan,) = named.plans()
    assert plan.revision == 2 and plan.arms == (Arm("1.0.0", "stable", 0.95), Arm("1.2.0", "canary", 0.05))
    assert [p.endpoint for p in everything.plans()] == ["churn", "fraud"]
    deploy.delete_endpoint("fraud")
    assert [p.endpoint for p in everything.plans()] == ["churn"]


def test_an_unchanged_plan_costs_one_query(deploy_env: DeployEnv) -> None:
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    source = EndpointSource(deploy_env.platform, ["churn"])
    source.plans()
    statements: list[str] = []
    engine = deploy_env.platform.metadata.engine

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        source.plans()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_a_server_asked_to_serve_a_missing_or_malformed_endpoint_is_told_so(deploy_env: DeployEnv) -> None:
    with pytest.raises(NotFound, match="steward deploy create nope"):
        EndpointSource(deploy_env.platform, ["nope"])
    with pytest.raises(InvalidInput):
        EndpointSource(deploy_env.platform, ["../etc"])
