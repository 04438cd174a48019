"""The traffic plans each strategy goes through, and the option checks users meet first."""

from __future__ import annotations

from typing import Any

import pytest

from steward.deploy import strategies
from steward.deploy.models import RolloutState
from steward.deploy.options import RolloutOptions, Strategy, parse_options, parse_strategy
from steward.errors import InvalidInput
from steward.serving.models import Arm, TrafficPlan


def plans(strategy: Strategy, options: RolloutOptions | None = None) -> list[list[tuple[str, str, float]]]:
    found = strategies.sequence(strategy, "1.0.0", "1.1.0", options or RolloutOptions())
    return [[(a.version, a.role, a.weight) for a in arms] for arms in found]


def test_a_canary_climbs_its_steps_and_ends_with_the_old_version_standing_by() -> None:
    assert plans(Strategy.CANARY) == [
        [("1.0.0", "stable", 0.95), ("1.1.0", "canary", 0.05)],
        [("1.0.0", "stable", 0.75), ("1.1.0", "canary", 0.25)],
        [("1.0.0", "stable", 0.5), ("1.1.0", "canary", 0.5)],
        [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)],
    ]
    custom = parse_options(Strategy.CANARY, {"steps": "10, 100"})
    assert plans(Strategy.CANARY, custom) == [
        [("1.0.0", "stable", 0.9), ("1.1.0", "canary", 0.1)],
        [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)],
    ]


def test_blue_green_warms_the_candidate_as_standby_then_switches_at_once() -> None:
    assert plans(Strategy.BLUE_GREEN) == [
        [("1.0.0", "stable", 1.0), ("1.1.0", "standby", 0.0)],
        [("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0)],
    ]
    assert (
        strategies.start(Strategy.BLUE_GREEN, "1.0.0", "1.1.0", RolloutOptions()).state
        is RolloutState.PENDING
    )


def test_ab_splits_live_traffic_by_its_weights_and_shadow_takes_none() -> None:
    ab = plans(Strategy.AB, parse_options(Strategy.AB, {"weights": [70, 30]}))
    assert ab[0] == [("1.0.0", "stable", 0.7), ("1.1.0", "candidate", 0.3)]
    assert plans(Strategy.SHADOW)[0] == [("1.0.0", "stable", 1.0), ("1.1.0", "shadow", 0.0)]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_plan_of_every_strategy_is_a_valid_traffic_plan(strategy: Strategy) -> None:
    options = RolloutOptions()
    moves = [strategies.start(strategy, "1.0.0", "1.1.0", options)]
    moves.append(strategies.rollback(strategy, "1.0.0", "1.1.0", 0, active=True))
    moves.append(strategies.rollback(strategy, "1.0.0", "1.1.0", 3, active=False))
    moves.append(strategies.abort("1.0.0", "1.1.0", 0))
    for arms in [m.arms for m in moves] + strategies.sequence(strategy, "1.0.0", "1.1.0", options):
        plan = TrafficPlan("churn", "churn", arms)  # raises if the weights do not sum to 1
        assert sum(a.weight for a in plan.live) == pytest.approx(1.0)


def test_rolling_back_gives_the_baseline_everything_and_lists_a_live_candidate_at_weight_0() -> None:
    # Listed, not loaded: a server releases a live arm at weight 0 (tests/serving/test_router.py).
    canary = strategies.rollback(Strategy.CANARY, "1.0.0", "1.1.0", 1, active=True)
    assert canary.arms == (Arm("1.0.0", "stable", 1.0), Arm("1.1.0", "canary", 0.0))
    assert canary.state is RolloutState.ROLLED_BACK
    shadow = strategies.rollback(Strategy.SHADOW, "1.0.0", "1.1.0", 0, active=True)
    assert shadow.arms == (Arm("1.0.0", "stable", 1.0),)
    after_success = strategies.rollback(Strategy.BLUE_GREEN, "1.0.0", "1.1.0", 1, active=False)
    assert after_success.arms == (Arm("1.0.0", "stable", 1.0), Arm("1.1.0", "standby", 0.0))


def test_promoting_a_canary_with_finish_skips_its_remaining_steps() -> None:
    move = strategies.forward(Strategy.CANARY, "1.0.0", "1.1.0", 0, RolloutOptions(), finish=True)
    assert move.state is RolloutState.SUCCEEDED
    assert move.arms == strategies.finished_arms("1.0.0", "1.1.0")


@pytest.mark.parametrize(
    ("strategy", "given", "field"),
    [
        (Strategy.CANARY, {"steps": [50, 25, 100]}, "options.steps"),
        (Strategy.CANARY, {"steps": [5, 50]}, "options.steps"),
        (Strategy.CANARY, {"steps": "5,x,100"}, "options.steps"),
        (Strategy.CANARY, {"min_requests": -1}, "options.min_requests"),
        (Strategy.CANARY, {"min_requests": 2.5}, "options.min_requests"),
        (Strategy.CANARY, {"max_error_rate": 1.5}, "options.max_error_rate"),
        (Strategy.CANARY, {"p99_ratio": float("nan")}, "options.p99_ratio"),
        (Strategy.CANARY, {"weights": [50, 50]}, "options.weights"),
        (Strategy.AB, {"weights": [60, 60]}, "options.weights"),
        (Strategy.AB, {"weights": [100, 0]}, "options.weights"),
        (Strategy.AB, {"metric": "revenue"}, "options.metric"),
        (Strategy.AB, {"alpha": 0}, "options.alpha"),
        (Strategy.SHADOW, {"min_agreement": True}, "options.min_agreement"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    strategy: Strategy, given: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_options(strategy, given)
    assert info.value.details["field"] == field


def test_an_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="blue-green, canary, ab, shadow") as info:
        parse_strategy("linear")
    assert info.value.details["field"] == "strategy"


def test_options_keep_only_what_their_strategy_reads() -> None:
    options = parse_options(Strategy.AB, {"weights": "80,20", "sticky_key": "user_id"})
    assert options.to_json(Strategy.AB) == {
        "weights": [80.0, 20.0],
        "sticky_key": "user_id",
        "metric": "accuracy",
        "alpha": 0.05,
        "power": 0.8,
        "min_samples": 100,
    }
    assert parse_options(Strategy.BLUE_GREEN, None).min_duration_s == 0
