"""Monitors on their schedules: the scheduler runs each once per due time, and an alert it newly fires
runs the monitor's actions (rollback, retrain), recorded on the alert and audited with it as the cause;
a repeat of an open alert starts nothing again; a monitor run that fails is a failed firing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from steward.automation.models import Outcome, TriggerKind
from steward.automation.scheduler import default_monitoring
from steward.errors import ServiceUnavailable
from steward.monitoring.models import Action
from steward.monitoring.service import MonitoringService
from tests.automation.pipelines_for_tests import Env, env_for
from tests.deploy.conftest import DeployEnv, open_deploy_env

RETRAIN = "tests.automation.pipelines_for_tests:retrain"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from env_for(request, tmp_path, monkeypatch, request.param)


@pytest.fixture
def deploy_env(env: Env, tmp_path: Path) -> Iterator[DeployEnv]:
    """churn 1.0.0 serving, 1.1.0 on a canary at 25% (what a rollback undoes), on ``env``'s store."""
    made = open_deploy_env(tmp_path, home=env.home, db=env.db)
    made.deploy.create_endpoint("churn", "churn", "1.0.0")
    made.deploy.start_rollout("churn", "canary", "1.1.0", {"steps": [25, 100]})
    yield made
    made.platform.close()


def failing_traffic(deploy_env: DeployEnv, at: datetime) -> None:
    """Half the canary's requests failed ten minutes before ``at``."""
    start = int((at - timedelta(minutes=10)).timestamp() * 1000)
    deploy_env.window("churn", "1.1.0", requests=100, errors=50, start_ms=start, role="canary")


def test_a_due_monitor_runs_once_and_its_new_alert_rolls_back_and_retrains(
    env: Env, deploy_env: DeployEnv
) -> None:
    monitors = MonitoringService(env.platform)
    actions = [Action("rollback"), Action("retrain", RETRAIN, {"model_name": "churn", "rows": 30})]
    made = monitors.create_monitor(
        "churn-errors", "churn", rules=["error_rate > 0.1"], window="1h", schedule="300", actions=actions
    )
    due = made.created_at + timedelta(seconds=300)
    failing_traffic(deploy_env, due)
    scheduler = env.scheduler("a", monitoring=default_monitoring)
    assert scheduler.tick(due - timedelta(seconds=1)) == []
    versions_before = len(deploy_env.registry.list_versions("churn"))

    (fired,) = scheduler.tick(due)
    assert (fired.trigger, fired.outcome) == ("monitor:churn-errors", Outcome.SUCCEEDED)
    (opened,) = fired.details["result"]["details"]["fired"]
    assert [a["kind"] for a in opened["actions"]] == ["rollback", "retrain"]
    plan = [(a.version, a.role, a.weight) for a in deploy_env.deploy.get_endpoint("churn").arms]
    assert plan == [("1.0.0", "stable", 1.0), ("1.1.0", "canary", 0.0)]
    assert len(deploy_env.registry.list_versions("churn")) == versions_before + 1
    assert deploy_env.registry.get_model("churn").aliases.get("production") is None
    alert = monitors.get_alert(opened["alert"])
    assert [(a["kind"], a["outcome"]) for a in alert.actions] == [
        ("rollback", "succeeded"),
        ("retrain", "succeeded"),
    ]
    causes = [e.details["cause"] for e in env.trail("automation.rollback") + env.trail("automation.retrain")]
    assert {c["alert"] for c in causes} == {alert.id} and {c["rule"] for c in causes} == {"error_rate > 0.1"}
    assert monitors.get_monitor("churn-errors").last_run_at == due

    # the same due time again, or before the next one: nothing; the next run counts the open alert only
    assert scheduler.tick(due) == [] and scheduler.tick(due + timedelta(seconds=299)) == []
    failing_traffic(deploy_env, due + timedelta(seconds=300))
    (again,) = scheduler.tick(due + timedelta(seconds=300))
    assert again.outcome is Outcome.SUCCEEDED and again.details["result"]["details"]["fired"] == []
    assert len(monitors.get_alert(alert.id).actions) == 2
    assert len(deploy_env.registry.list_versions("churn")) == versions_before + 1

    trigger = env.automation.get_trigger("monitor:churn-errors")
    assert (trigger.kind, trigger.spec, trigger.id) == (TriggerKind.MONITOR, "churn-errors", made.id)
    assert [f.outcome for f in env.automation.list_firings("monitor:churn-errors")] == [Outcome.SUCCEEDED] * 2


def test_disabled_monitors_are_not_run(env: Env, deploy_env: DeployEnv) -> None:
    monitors = MonitoringService(env.platform)
    made = monitors.create_monitor("quiet", "churn", rules=["error_rate > 0.1"], schedule="60")
    monitors.set_enabled("quiet", False)
    assert env.scheduler("a", monitoring=default_monitoring).tick(made.created_at + timedelta(hours=1)) == []


class Broken(MonitoringService):
    """A monitoring service whose runs fail (the database away during a run)."""

    def run_monitor(self, name: str, *, now: datetime | None = None) -> Any:
        raise ServiceUnavailable("metadata database went away")


def test_a_failing_monitor_run_is_a_failed_firing_and_is_not_retried_for_the_same_time(
    env: Env, deploy_env: DeployEnv
) -> None:
    made = MonitoringService(env.platform).create_monitor(
        "m", "churn", rules=["error_rate > 0.1"], schedule="60"
    )
    scheduler = env.scheduler("a", monitoring=Broken)
    due = made.created_at + timedelta(seconds=60)
    (fired,) = scheduler.tick(due)
    assert fired.outcome is Outcome.FAILED and "went away" in fired.details["result"]["details"]["error"]
    assert scheduler.tick(due + timedelta(seconds=30)) == []  # its last run never got recorded: next time
    assert len(scheduler.tick(due + timedelta(seconds=60))) == 1
    assert [e.outcome for e in env.trail("automation.monitor")] == ["failed", "failed"]


def test_a_deleted_monitors_trigger_goes_and_a_new_monitor_of_its_name_runs(
    env: Env, deploy_env: DeployEnv
) -> None:
    monitors = MonitoringService(env.platform)
    first = monitors.create_monitor("m", "churn", rules=["error_rate > 0.1"], schedule="60")
    scheduler = env.scheduler("a", monitoring=default_monitoring)
    assert len(scheduler.tick(first.created_at + timedelta(seconds=60))) == 1
    monitors.delete_monitor("m")
    assert scheduler.tick(first.created_at + timedelta(seconds=120)) == []
    assert env.automation.list_triggers() == []
    assert env.trail("trigger.delete")[-1].details["reason"] == "its monitor was deleted"
    second = monitors.create_monitor("m", "churn", rules=["error_rate > 0.1"], schedule="60")
    (fired,) = scheduler.tick(second.created_at + timedelta(seconds=60))
    assert fired.trigger == "monitor:m" and fired.trigger_id == second.id
