"""Alert actions: a rollback puts the previous version back at 100% at once; a retrain registers a new
version that does not take production (it must pass the gate and its approvals like any other); each
action is recorded on the alert and audited with the alert as its cause."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from steward.automation.actions import (
    alert_cause,
    check_executor,
    load_target,
    rollback_endpoint,
    run_alert_actions,
)
from steward.automation.models import Outcome
from steward.errors import InvalidInput, PolicyViolation
from steward.governance.context import Identity, acting_as
from steward.governance.policy_store import PolicyStore
from steward.monitoring.models import Action, Alert, Monitor
from steward.registry import promotion
from tests.automation.pipelines_for_tests import Env, env_for
from tests.deploy.conftest import DeployEnv, open_deploy_env

AT = datetime(2030, 1, 1, tzinfo=UTC)
RETRAIN = "tests.automation.pipelines_for_tests:retrain"


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from env_for(request, tmp_path, monkeypatch)


@pytest.fixture
def deploy_env(env: Env, tmp_path: Path) -> Iterator[DeployEnv]:
    """Model churn at 1.0.0, 1.1.0 and 1.2.0 on the same home as ``env``."""
    made = open_deploy_env(tmp_path, home=env.home)
    yield made
    made.platform.close()


def monitor(*actions: Action, endpoint: str = "churn") -> Monitor:
    return Monitor(
        id="m1", name="churn-drift", endpoint=endpoint, window_s=3600, schedule="900",
        rules=("psi(income) > 0.2",), reference=None, channels=(), actions=actions, cooldown_s=0,
        enabled=True, created_at=AT, created_by="alice",
    )  # fmt: skip


def alert(alert_id: str = "a1") -> Alert:
    return Alert(
        id=alert_id, monitor="churn-drift", endpoint="churn", rule="psi(income) > 0.2", state="firing",
        value=0.31, threshold=0.2, count=1, first_at=AT, last_at=AT, resolved_at=None, delivered=None,
    )  # fmt: skip


def arms(deploy_env: DeployEnv) -> list[tuple[str, str, float]]:
    return [(a.version, a.role, a.weight) for a in deploy_env.deploy.get_endpoint("churn").arms]


class Recorder:
    """Stands for ``MonitoringService.record_action``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, alert_id: str, action: dict[str, Any]) -> None:
        self.calls.append((alert_id, action))


def test_a_rollback_during_a_canary_gives_the_baseline_100_percent_at_once(
    env: Env, deploy_env: DeployEnv
) -> None:
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    deploy_env.deploy.start_rollout("churn", "canary", "1.1.0", {"steps": [10, 50, 100]})
    deploy_env.deploy.promote("churn")
    assert arms(deploy_env) == [("1.0.0", "stable", 0.5), ("1.1.0", "canary", 0.5)]
    recorder = Recorder()
    (result,) = run_alert_actions(env.platform, monitor(Action("rollback")), alert(), recorder)
    assert result.outcome is Outcome.SUCCEEDED and result.details["stable"] == "1.0.0"
    assert arms(deploy_env) == [("1.0.0", "stable", 1.0), ("1.1.0", "canary", 0.0)]
    assert deploy_env.deploy.get_rollout("churn").state.value == "rolled_back"
    assert recorder.calls == [("a1", result.to_json())]
    (entry,) = env.trail("automation.rollback")
    assert (entry.resource_kind, entry.resource_id, entry.outcome) == ("alert", "a1", "ok")
    assert (
        entry.details["cause"]["rule"] == "psi(income) > 0.2"
        and entry.details["cause"]["monitor"] == "churn-drift"
    )
    (rolled,) = env.trail("rollout.rollback")
    assert "alert a1 of monitor churn-drift" in rolled.details["reason"]


def test_a_rollback_after_a_finished_rollout_switches_back_to_the_standby(
    env: Env, deploy_env: DeployEnv
) -> None:
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    deploy_env.deploy.start_rollout("churn", "blue-green", "1.1.0")
    deploy_env.deploy.promote("churn", finish=True)
    assert arms(deploy_env) == [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)]
    result = rollback_endpoint(env.platform, "churn", alert_cause(alert(), monitor()))
    assert result.succeeded and result.details["from_version"] == "1.1.0"
    assert arms(deploy_env) == [("1.0.0", "stable", 1.0), ("1.1.0", "standby", 0.0)]


def test_a_rollback_with_no_previous_version_fails_and_changes_nothing(
    env: Env, deploy_env: DeployEnv
) -> None:
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    recorder = Recorder()
    (result,) = run_alert_actions(env.platform, monitor(Action("rollback")), alert(), recorder)
    assert result.outcome is Outcome.FAILED and "nothing to roll back" in result.details["error"]
    assert arms(deploy_env) == [("1.0.0", "stable", 1.0)]
    assert env.trail("automation.rollback")[0].outcome == "failed"
    gone = rollback_endpoint(env.platform, "nope", alert_cause(alert(), monitor()))
    assert gone.outcome is Outcome.FAILED and "not found" in gone.details["error"]


def test_a_retrain_registers_a_version_that_does_not_take_production(env: Env, deploy_env: DeployEnv) -> None:
    registry = deploy_env.registry
    PolicyStore(deploy_env.platform).apply("name: gate\naliases: [production]\nrules:\n  - approvals >= 1\n")
    pending = promotion.promote(registry, "churn", "1.0.0", "production")
    assert pending.request is not None
    with acting_as(Identity("ana", "user", frozenset(), {"default": frozenset({"approver"})}), "default"):
        promotion.approval_service(registry).approve(pending.request.id)
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    before = {v.version for v in registry.list_versions("churn")}
    requests_before = len(promotion.approval_service(registry).list())

    retrain = Action("retrain", RETRAIN, {"model_name": "churn", "rows": 30})
    (result,) = run_alert_actions(env.platform, monitor(retrain), alert(), Recorder())
    assert result.outcome is Outcome.SUCCEEDED, result.details
    (new,) = {v.version for v in registry.list_versions("churn")} - before
    assert registry.get_model("churn").aliases["production"] == "1.0.0"
    assert registry.get_version("churn", new).aliases == ()
    assert arms(deploy_env) == [("1.0.0", "stable", 1.0)]
    assert len(promotion.approval_service(registry).list()) == requests_before  # nothing was even requested
    with pytest.raises(PolicyViolation):  # reaching the endpoint means passing the gate, like any version
        deploy_env.deploy.start_rollout("churn", "canary", new)
    (entry,) = env.trail("automation.retrain")
    assert entry.resource_id == "a1" and entry.details["details"]["run_id"] == result.details["run_id"]


def test_one_failing_action_does_not_stop_the_next(env: Env, deploy_env: DeployEnv) -> None:
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    deploy_env.deploy.start_rollout("churn", "canary", "1.1.0")
    actions = (
        Action("retrain", "tests.automation.pipelines_for_tests:failing"),
        Action("teleport"),
        Action("rollback"),
    )
    recorder = Recorder()
    results = run_alert_actions(env.platform, monitor(*actions), alert(), recorder)
    assert [(r.kind, r.outcome) for r in results] == [
        ("retrain", Outcome.FAILED), ("teleport", Outcome.FAILED), ("rollback", Outcome.SUCCEEDED),
    ]  # fmt: skip
    assert [c[1]["kind"] for c in recorder.calls] == ["retrain", "teleport", "rollback"]
    assert arms(deploy_env)[0] == ("1.0.0", "stable", 1.0)


def test_import_paths_and_executors_are_checked() -> None:
    assert load_target(RETRAIN).name == "retrain"
    for bad in (
        "retrain",
        3,
        "tests.automation.pipelines_for_tests:not_a_pipeline",
        "tests/automation/pipelines_for_tests.py:hello",
    ):
        with pytest.raises(InvalidInput) as caught:
            load_target(bad)
        assert caught.value.details["field"] == "pipeline"
    assert [check_executor(e) for e in ("local", "processes:4", "ray://head:10001")] == [
        "local", "processes:4", "ray://head:10001",
    ]  # fmt: skip
    for bad_executor in ("processes:x", "ray:", "k8s", None):
        with pytest.raises(InvalidInput):
            check_executor(bad_executor)


def test_pipelines_outside_the_allowed_packages_are_refused_before_anything_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from steward.automation.actions import load_target

    monkeypatch.delitem(sys.modules, "antigravity", raising=False)
    with pytest.raises(InvalidInput, match="outside the packages automation may run"):
        load_target("antigravity:main", "tests.automation")
    assert "antigravity" not in sys.modules
    assert load_target("tests.automation.pipelines_for_tests:hello", "tests.automation") is not None
