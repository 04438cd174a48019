"""The rollout controller on real inputs: ``serving_windows`` rows as serving workers write them, and
predictions and late labels through the prediction log."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pytest

from steward.core.time import now_ms
from steward.deploy import strategies
from steward.deploy.analysis import two_proportion_ztest
from steward.deploy.controller import Controller, FixedReadiness, _decide
from steward.deploy.models import Rollout, RolloutState
from steward.errors import InvalidInput
from steward.serving.labels import log_labels
from steward.serving.models import PredictionRecord
from steward.serving.prediction_log import PredictionLog
from tests.deploy.conftest import DeployEnv

FAST = {"steps": [10, 50, 100], "min_duration_s": 0, "min_requests": 50}


def step_ms(rollout: Rollout) -> int:
    return int(rollout.step_started_at.timestamp() * 1000)


def plan(env: DeployEnv) -> list[tuple[str, str, float]]:
    return [(a.version, a.role, a.weight) for a in env.deploy.get_endpoint("churn").arms]


def serve_step(env: DeployEnv, stable: int, canary: int, **canary_stats: float) -> None:
    """Write the windows of the step the rollout is at: the stable and the canary version's."""
    rollout = env.deploy.get_rollout("churn")
    start = step_ms(rollout)
    env.window("churn", rollout.baseline, requests=stable, start_ms=start)
    env.window("churn", rollout.version, requests=canary, start_ms=start, role="canary", **canary_stats)  # type: ignore[arg-type]


@pytest.fixture
def canary(deploy_env: DeployEnv) -> DeployEnv:
    deploy_env.deploy.create_endpoint("churn", "churn", "1.0.0")
    deploy_env.deploy.start_rollout("churn", "canary", "1.1.0", FAST)
    return deploy_env


def test_a_healthy_canary_passes_each_step_and_takes_the_endpoint(canary: DeployEnv) -> None:
    deploy = canary.deploy
    assert deploy.advance("churn")["action"] == "waiting"  # no traffic yet
    serve_step(canary, stable=900, canary=100)
    first = deploy.advance("churn")
    assert first["action"] == "stepped" and first["analysis"]["verdict"] == "pass"
    assert plan(canary) == [("1.0.0", "stable", 0.5), ("1.1.0", "canary", 0.5)]
    # The last step's windows began before this step: they do not count for it.
    waiting = deploy.advance("churn")
    assert waiting["action"] == "waiting" and "0 requests of the 50" in waiting["message"]
    serve_step(canary, stable=300, canary=300)
    done = deploy.advance("churn")
    assert done["action"] == "succeeded" and done["rollout"]["state"] == "succeeded"
    assert plan(canary) == [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)]
    assert deploy.advance("churn")["action"] == "idle"
    steps = [e for e in canary.trail() if e.action == "rollout.step"]
    assert [(e.details["state"], e.details["analysis"]["verdict"]) for e in steps] == [
        ("running", "pass"),
        ("succeeded", "pass"),
    ]
    assert [e.kind for e in deploy.get_rollout("churn").events] == ["started", "step", "succeeded"]


def test_a_canary_erring_more_than_stable_is_rolled_back_at_once(canary: DeployEnv) -> None:
    serve_step(canary, stable=900, canary=100, errors=4)  # 4% against stable's 0% + 1%
    found = canary.deploy.advance("churn")
    assert found["action"] == "rolled_back"
    assert [c["name"] for c in found["analysis"]["checks"] if not c["passed"]] == ["error_rate_vs_stable"]
    assert plan(canary) == [("1.0.0", "stable", 1.0), ("1.1.0", "canary", 0.0)]
    rollout = canary.deploy.get_rollout("churn")
    assert rollout.state is RolloutState.ROLLED_BACK and rollout.message.startswith("automatic rollback")
    entry = canary.trail()[-1]
    assert (entry.action, entry.details["automatic"], entry.details["analysis"]["verdict"]) == (
        "rollout.rollback",
        True,
        "fail",
    )
    assert canary.deploy.get_endpoint("churn").active_rollout is None


def test_a_canary_slower_than_stable_is_rolled_back(canary: DeployEnv) -> None:
    serve_step(canary, stable=900, canary=100, latency_ms=80.0)
    found = canary.deploy.advance("churn")
    assert found["action"] == "rolled_back"
    assert [c["name"] for c in found["analysis"]["checks"] if not c["passed"]] == ["p99_vs_stable"]


def test_the_windows_of_every_worker_are_summed(canary: DeployEnv) -> None:
    rollout = canary.deploy.get_rollout("churn")
    start = step_ms(rollout)
    for worker in ("w1", "w2"):
        canary.window("churn", "1.0.0", requests=400, start_ms=start, worker=worker)
        canary.window("churn", "1.1.0", requests=30, start_ms=start, worker=worker, role="canary")
    found = canary.deploy.advance("churn")
    assert found["action"] == "stepped", found["message"]  # 60 canary requests, 30 per worker
    assert found["analysis"]["canary"]["requests"] == 60
    status = canary.deploy.status("churn")
    assert status.rollout is not None and status.rollout.step == 1


def test_a_wait_is_recorded_on_the_rollout_without_changing_the_plan(canary: DeployEnv) -> None:
    before = canary.deploy.get_endpoint("churn").revision
    serve_step(canary, stable=100, canary=10)
    assert canary.deploy.advance("churn")["action"] == "waiting"
    rollout = canary.deploy.get_rollout("churn")
    assert rollout.analysis is not None and rollout.analysis["verdict"] == "wait"
    assert canary.deploy.get_endpoint("churn").revision == before
    assert [e.action for e in canary.trail()] == ["endpoint.create", "rollout.start"]


def test_a_step_decided_on_a_rollout_that_moved_meanwhile_changes_nothing(canary: DeployEnv) -> None:
    stale = canary.deploy.get_rollout("churn")
    canary.deploy.promote("churn")  # someone moved it by hand after the analysis read it
    move = strategies.forward(stale.strategy, stale.baseline, stale.version, stale.step, stale.options)
    found = _decide(canary.deploy, stale, move, {"verdict": "pass"}, rollback=False)
    assert found["action"] == "moved"
    assert canary.deploy.get_rollout("churn").step == 1


def test_blue_green_switches_once_the_candidate_is_ready(deploy_env: DeployEnv) -> None:
    deploy = deploy_env.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    deploy.start_rollout("churn", "blue-green", "1.1.0")
    assert deploy.advance("churn", readiness=FixedReadiness(False))["action"] == "waiting"
    assert plan(deploy_env) == [("1.0.0", "stable", 1.0), ("1.1.0", "standby", 0.0)]
    assert deploy.advance("churn", readiness=FixedReadiness(True))["action"] == "succeeded"
    assert plan(deploy_env) == [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)]
    assert deploy.rollback("churn").state is RolloutState.ROLLED_BACK  # instant switch-back
    assert plan(deploy_env) == [("1.0.0", "stable", 1.0), ("1.1.0", "standby", 0.0)]


def test_a_shadow_that_disagrees_too_often_is_rolled_back_and_reports_its_agreement(
    deploy_env: DeployEnv,
) -> None:
    deploy = deploy_env.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0")
    rollout = deploy.start_rollout("churn", "shadow", "1.1.0", {"min_requests": 100, "min_agreement": 0.9})
    start = step_ms(rollout)
    deploy_env.window("churn", "1.0.0", requests=200, start_ms=start)
    deploy_env.window("churn", "1.1.0", requests=50, start_ms=start, role="shadow", compared=50, agreed=40)
    assert deploy.advance("churn")["action"] == "waiting"  # 50 compared: too few to judge
    deploy_env.window(
        "churn",
        "1.1.0",
        requests=150,
        start_ms=start,
        role="shadow",
        compared=150,
        agreed=130,
        worker="worker-2",
    )
    assert deploy.advance("churn")["action"] == "rolled_back"  # 170 of 200 agree: 85% < 90%
    assert plan(deploy_env) == [("1.0.0", "stable", 1.0)]
    found = deploy.results("churn")
    assert found["shadow"] == {"compared": 200, "agreed": 170, "agreement": 0.85}
    assert "170 of 200 shadow answers agreed" in found["summary"]


def test_the_controller_thread_drives_a_canary_to_the_end(canary: DeployEnv) -> None:
    controller = Controller(canary.platform, ["churn"], interval=0.05).start()
    try:
        deadline = time.monotonic() + 20
        while canary.deploy.get_rollout("churn").active and time.monotonic() < deadline:
            rollout = canary.deploy.get_rollout("churn")
            serve_step(canary, stable=500, canary=500)
            while canary.deploy.get_rollout("churn").step == rollout.step and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        controller.stop()
    assert canary.deploy.get_rollout("churn").state is RolloutState.SUCCEEDED


# -- labels: accuracy in the canary analysis and A/B outcomes -------------------------------------


def log_answers(env: DeployEnv, version: str, role: str, correct: Sequence[bool], prefix: str) -> None:
    """Log one prediction (always 1) per request for ``version``, then labels: 1 where it was right."""
    ids = [f"{prefix}-{i}" for i in range(len(correct))]
    with PredictionLog.from_settings(env.platform.settings, flush_interval=0.05) as log:
        for request_id in ids:
            log.offer(
                PredictionRecord(
                    "default",
                    "churn",
                    "churn",
                    version,
                    role,
                    request_id,
                    now_ms(),
                    np.zeros((1, 2)),
                    np.ones(1, dtype=np.int64),
                    1.0,
                )
            )
    log_labels(env.platform, ids, [int(c) for c in correct], endpoint="churn")


def test_a_canary_whose_labelled_accuracy_falls_short_of_stable_is_rolled_back(canary: DeployEnv) -> None:
    log_answers(canary, "1.0.0", "stable", [True] * 90 + [False] * 10, "a")  # 90%
    log_answers(canary, "1.1.0", "canary", [True] * 35 + [False] * 15, "b")  # 70%
    serve_step(canary, stable=900, canary=100)
    found = canary.deploy.advance("churn")
    assert found["action"] == "rolled_back", found["message"]
    assert [c["name"] for c in found["analysis"]["checks"] if not c["passed"]] == ["accuracy_vs_stable"]
    assert found["analysis"]["outcomes"]["canary"]["n"] == 50


def test_ab_results_test_the_labelled_outcomes_of_each_arm(deploy_env: DeployEnv) -> None:
    deploy = deploy_env.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0", sticky_key="user")
    deploy.start_rollout("churn", "ab", "1.1.0", {"min_samples": 200})
    log_answers(deploy_env, "1.0.0", "stable", [True] * 240 + [False] * 60, "a")  # 80%
    log_answers(deploy_env, "1.1.0", "candidate", [True] * 270 + [False] * 30, "b")  # 90%
    found = deploy.results("churn")
    expected = two_proportion_ztest(240, 300, 270, 300, min_samples=200)
    test = found["test"]
    assert test["test"] == "two-proportion z-test" and test["enough"] and test["significant"]
    assert test["statistic"] == pytest.approx(expected.statistic)
    assert test["p_value"] == pytest.approx(expected.p_value)
    assert (test["ci_low"], test["ci_high"]) == (
        pytest.approx(expected.ci_low),
        pytest.approx(expected.ci_high),
    )
    a, b = found["arms"]
    assert (a["arm"], a["version"], a["outcome"], a["outcomes"]["n"]) == ("A", "1.0.0", 0.8, 300)
    assert (b["arm"], b["role"], b["outcome"]) == ("B", "candidate", 0.9)
    assert "significant at 0.05" in found["summary"] and "too small" not in found["summary"]
    assert test["required_per_arm"] == 199 and "at least the 200 each arm needs" in test["sample"]
    assert deploy.advance("churn")["action"] == "waiting"  # an A/B test is decided by a person
    deploy.promote("churn", reason="B wins")
    assert plan(deploy_env) == [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)]


def test_ab_results_say_when_the_sample_is_short_of_what_the_effect_needs(deploy_env: DeployEnv) -> None:
    deploy = deploy_env.deploy
    deploy.create_endpoint("churn", "churn", "1.0.0", sticky_key="user")
    deploy.start_rollout("churn", "ab", "1.1.0", {"min_samples": 100})
    log_answers(deploy_env, "1.0.0", "stable", [True] * 160 + [False] * 40, "a")  # 80%
    log_answers(deploy_env, "1.1.0", "candidate", [True] * 170 + [False] * 30, "b")  # 85%
    found = deploy.results("churn")
    test = found["test"]
    assert not test["enough"] and test["required_per_arm"] > 200  # above min_samples, short of the need
    assert f"short of the {test['required_per_arm']} each arm needs" in found["summary"]


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan"), float("inf")])
def test_a_controller_interval_that_is_not_a_positive_number_is_refused(
    deploy_env: DeployEnv, interval: float
) -> None:
    with pytest.raises(InvalidInput) as refused:
        Controller(deploy_env.platform, interval=interval)
    assert refused.value.details == {"field": "interval"}
    assert "positive number of seconds" in refused.value.message
