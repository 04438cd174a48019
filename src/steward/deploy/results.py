"""A rollout's results: what each of its two versions served and, where labels arrived, how they did.

Over the rollout's whole life (from its start to its end, or now): per arm (``A``, the baseline, and
``B``, the candidate) the serving statistics and the labelled outcomes; for an A/B test the
significance test of ``options.metric``; for a shadow, how many answers were compared and agreed; for
a canary, its last analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.deploy.analysis import TestResult, ab_test, outcome_of, stats_json
from steward.deploy.models import Rollout
from steward.deploy.options import Strategy
from steward.deploy.stats import outcomes, windows
from steward.serving.models import WindowStats

if TYPE_CHECKING:
    from steward.deploy.service import DeployService

_CANDIDATE_ROLE = {
    Strategy.CANARY: "canary",
    Strategy.AB: "candidate",
    Strategy.SHADOW: "shadow",
    Strategy.BLUE_GREEN: "standby",
}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _summary(rollout: Rollout, test: TestResult | str | None, shadow: Mapping[str, Any] | None) -> str:
    if isinstance(test, TestResult):
        level = f"{1 - test.alpha:.0%}"
        verdict = "significant" if test.significant else "not significant"
        size = "" if test.enough else f"; the sample is too small to trust: {test.sample}"
        return (
            f"B - A = {test.effect:+.4g} ({level} CI {test.ci_low:+.4g} to {test.ci_high:+.4g}), "
            f"p = {test.p_value:.3g}: {verdict} at {test.alpha:g}{size}"
        )
    if isinstance(test, str):
        return test
    if shadow is not None:
        agreement = shadow["agreement"]
        share = f" ({agreement:.1%})" if agreement is not None else ""
        return (
            f"{shadow['agreed']} of {shadow['compared']} shadow answers agreed with the stable version{share}"
        )
    if rollout.analysis:
        return str(rollout.analysis.get("message", ""))
    return f"{rollout.strategy.value} rollout {rollout.state.value}"


def results(service: DeployService, rollout: Rollout) -> dict[str, Any]:
    """The results of ``rollout``.

    Returns:
        ``{"endpoint", "rollout", "strategy", "state", "metric", "since", "until", "arms", "test",
        "shadow", "analysis", "summary"}``; each arm ``{"arm", "version", "role", "stats", "outcomes",
        "outcome"}``; ``test`` is ``TestResult.to_json()`` for A/B (None before there are outcomes, with
        ``summary`` saying why).
    """
    platform = service.platform
    until = rollout.ended_at
    found = windows(
        platform,
        platform.project,
        rollout.endpoint,
        _ms(rollout.created_at),
        _ms(until) + 1 if until is not None else None,
    )
    labelled = outcomes(platform, platform.project, rollout.endpoint, rollout.created_at, until)
    metric = rollout.options.metric if rollout.strategy is Strategy.AB else "accuracy"
    arms = []
    for arm, version, role in (
        ("A", rollout.baseline, "stable"),
        ("B", rollout.version, _CANDIDATE_ROLE[rollout.strategy]),
    ):
        got = labelled.get(version)
        arms.append(
            {
                "arm": arm,
                "version": version,
                "role": role,
                "stats": stats_json(found.get(version, WindowStats())),
                "outcomes": dict(got) if got else None,
                "outcome": outcome_of(got or {}, metric),
            }
        )
    test: TestResult | str | None = None
    if rollout.strategy is Strategy.AB:
        test = ab_test(
            labelled.get(rollout.baseline) or {}, labelled.get(rollout.version) or {}, rollout.options
        )
    shadow = None
    if rollout.strategy is Strategy.SHADOW:
        seen = found.get(rollout.version, WindowStats())
        shadow = {"compared": seen.shadow_compared, "agreed": seen.shadow_agreed, "agreement": seen.agreement}
    return {
        "endpoint": rollout.endpoint,
        "rollout": rollout.id,
        "strategy": rollout.strategy.value,
        "state": rollout.state.value,
        "metric": metric,
        "since": rollout.created_at.isoformat(),
        "until": until.isoformat() if until is not None else None,
        "arms": arms,
        "test": test.to_json() if isinstance(test, TestResult) else None,
        "shadow": shadow,
        "analysis": dict(rollout.analysis) if rollout.analysis else None,
        "summary": _summary(rollout, test, shadow),
    }
