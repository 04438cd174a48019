"""The traffic plans each strategy moves an endpoint through: pure functions of the rollout, no I/O.

A *move* is the next plan (arms), the state and step it leaves the rollout in, and what to record.
Every strategy starts from the plan ``[baseline stable 100%]`` (older standby arms are dropped) and,
when it succeeds, ends at ``[candidate stable 100%, baseline standby]``: the old version stays loaded and
warm, so ``rollback`` can switch back at once.

============  =================================================  ==========================================
Strategy      Start                                              Forward (pass or ``promote``)
============  =================================================  ==========================================
blue-green    baseline stable 100%, candidate standby (warming)  the switch: candidate stable 100%
canary        baseline stable 100-s%, candidate canary s%        the next step; 100% ends it
ab            baseline stable A%, candidate candidate B%         candidate stable 100% (B won)
shadow        baseline stable 100%, candidate shadow             candidate stable 100%
============  =================================================  ==========================================

Rolling back an active rollout gives the baseline 100% at once; a canary or B arm stays listed at weight
0 (servers release its version once the baseline has taken over and its requests in flight finish), a
standby or shadow candidate leaves the plan. Rolling back a succeeded rollout swaps the two arms of its
end plan back.
"""

from __future__ import annotations

from dataclasses import dataclass

from steward.deploy.models import RolloutState
from steward.deploy.options import RolloutOptions, Strategy
from steward.serving.models import Arm

FINAL_SHARE = 100.0
"""The share (percent) at which a canary has taken the endpoint."""


@dataclass(frozen=True)
class Move:
    """A change of plan and the rollout's place after it.

    Attributes:
        arms: The plan's arms after the move.
        state: The rollout's state after it.
        step: Its step after it.
        kind: The event to record (``started``, ``step``, ``succeeded``, ``rolled_back``, ``aborted``).
        message: A sentence for a person.
    """

    arms: tuple[Arm, ...]
    state: RolloutState
    step: int
    kind: str
    message: str


def _share(percent: float) -> float:
    return round(percent / 100.0, 9)


def canary_arms(baseline: str, candidate: str, percent: float) -> tuple[Arm, ...]:
    """The plan of a canary at ``percent``: the end plan at 100."""
    if percent >= FINAL_SHARE:
        return finished_arms(baseline, candidate)
    share = _share(percent)
    return (Arm(baseline, "stable", round(1.0 - share, 9)), Arm(candidate, "canary", share))


def finished_arms(baseline: str, candidate: str) -> tuple[Arm, ...]:
    """The plan a succeeded rollout leaves: the candidate holds the endpoint, the baseline stands by."""
    return (Arm(candidate, "stable", 1.0), Arm(baseline, "standby", 0.0))


def start(strategy: Strategy, baseline: str, candidate: str, options: RolloutOptions) -> Move:
    """The first move of a rollout of ``candidate`` onto an endpoint held by ``baseline``."""
    if strategy is Strategy.BLUE_GREEN:
        arms = (Arm(baseline, "stable", 1.0), Arm(candidate, "standby", 0.0))
        return Move(
            arms,
            RolloutState.PENDING,
            0,
            "started",
            f"{candidate} is loading and warming as standby; it takes 100% once ready",
        )
    if strategy is Strategy.CANARY:
        first = options.steps[0]
        if first >= FINAL_SHARE:
            return Move(
                finished_arms(baseline, candidate),
                RolloutState.SUCCEEDED,
                0,
                "succeeded",
                f"{candidate} took 100% in one step",
            )
        return Move(
            canary_arms(baseline, candidate, first),
            RolloutState.RUNNING,
            0,
            "started",
            f"{candidate} takes {first:g}% (step 1 of {len(options.steps)})",
        )
    if strategy is Strategy.AB:
        a, b = options.weights
        arms = (Arm(baseline, "stable", _share(a)), Arm(candidate, "candidate", round(1.0 - _share(a), 9)))
        return Move(
            arms,
            RolloutState.RUNNING,
            0,
            "started",
            f"A/B: {baseline} (A) takes {a:g}%, {candidate} (B) {b:g}%",
        )
    arms = (Arm(baseline, "stable", 1.0), Arm(candidate, "shadow", 0.0))
    return Move(
        arms,
        RolloutState.RUNNING,
        0,
        "started",
        f"{candidate} gets a copy of live traffic; only {baseline} answers",
    )


def forward(
    strategy: Strategy,
    baseline: str,
    candidate: str,
    step: int,
    options: RolloutOptions,
    *,
    finish: bool = False,
) -> Move:
    """The move after the rollout at ``step`` passed (or was promoted): the next step or its end.

    Args:
        strategy: The rollout's strategy.
        baseline: Its baseline version.
        candidate: Its candidate version.
        step: The step it is at.
        options: Its options.
        finish: Go straight to the end (a canary skips its remaining steps).
    """
    if strategy is Strategy.CANARY and not finish:
        nxt = step + 1
        percent = options.steps[nxt] if nxt < len(options.steps) else FINAL_SHARE
        if percent < FINAL_SHARE:
            return Move(
                canary_arms(baseline, candidate, percent),
                RolloutState.RUNNING,
                nxt,
                "step",
                f"{candidate} takes {percent:g}% (step {nxt + 1} of {len(options.steps)})",
            )
        return Move(
            finished_arms(baseline, candidate),
            RolloutState.SUCCEEDED,
            nxt,
            "succeeded",
            f"{candidate} took 100%; {baseline} stands by",
        )
    last = len(options.steps) - 1 if strategy is Strategy.CANARY else 1
    return Move(
        finished_arms(baseline, candidate),
        RolloutState.SUCCEEDED,
        last,
        "succeeded",
        f"{candidate} took 100%; {baseline} stands by",
    )


def rollback(strategy: Strategy, baseline: str, candidate: str, step: int, *, active: bool) -> Move:
    """The move that gives the baseline all traffic again (of an active or a succeeded rollout)."""
    arms: tuple[Arm, ...]
    if not active:
        arms = (Arm(baseline, "stable", 1.0), Arm(candidate, "standby", 0.0))
    elif strategy is Strategy.CANARY:
        arms = (Arm(baseline, "stable", 1.0), Arm(candidate, "canary", 0.0))
    elif strategy is Strategy.AB:
        arms = (Arm(baseline, "stable", 1.0), Arm(candidate, "candidate", 0.0))
    else:
        arms = (Arm(baseline, "stable", 1.0),)
    return Move(arms, RolloutState.ROLLED_BACK, step, "rolled_back", f"{baseline} takes 100% again")


def abort(baseline: str, candidate: str, step: int) -> Move:
    """The move that stops an active rollout and takes its candidate out of the plan."""
    return Move(
        (Arm(baseline, "stable", 1.0),),
        RolloutState.ABORTED,
        step,
        "aborted",
        f"stopped; {candidate} left the plan and {baseline} takes 100%",
    )


def sequence(
    strategy: Strategy, baseline: str, candidate: str, options: RolloutOptions
) -> list[tuple[Arm, ...]]:
    """Every plan a rollout that passes each step goes through, from its start to its end."""
    move = start(strategy, baseline, candidate, options)
    plans = [move.arms]
    while move.state.active:
        move = forward(strategy, baseline, candidate, move.step, options)
        plans.append(move.arms)
    return plans
