"""Rollout strategies and their options: which knobs each strategy takes, checked and defaulted.

Options come from users (CLI flags, JSON bodies), so every bad one is an ``InvalidInput`` naming the
field (``options.steps`` …), never a crash deeper down.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from steward.errors import InvalidInput


class Strategy(StrEnum):
    """How a rollout moves traffic to its candidate."""

    BLUE_GREEN = "blue-green"
    CANARY = "canary"
    AB = "ab"
    SHADOW = "shadow"


def parse_strategy(value: object) -> Strategy:
    """Return the strategy named ``value``.

    Raises:
        InvalidInput: Naming the strategies, for any other value.
    """
    try:
        return Strategy(str(value))
    except ValueError:
        known = ", ".join(s.value for s in Strategy)
        raise InvalidInput(f"unknown strategy {value!r}; one of {known}", {"field": "strategy"}) from None


@dataclass(frozen=True)
class RolloutOptions:
    """The knobs of a rollout; each strategy reads only its own (``STRATEGY_OPTIONS``).

    Attributes:
        steps: Canary: the candidate's share at each step, in percent, rising, ending at 100.
        min_duration_s: Canary: seconds each step lasts at least before it is analysed; blue-green:
            seconds the warmed candidate waits in standby, once ready, before the switch.
        min_requests: Canary: requests the candidate must have answered in a step before it is judged;
            shadow: answers compared before ``min_agreement`` is judged.
        max_error_rate: Canary: the highest error rate the candidate may show (absolute).
        error_margin: Canary: how much higher than the stable version's its error rate may be.
        max_p99_ms: Canary: the highest p99 latency the candidate may show (absolute).
        p99_ratio: Canary: its p99 may be at most ``stable p99 x p99_ratio + p99_slack_ms``.
        p99_slack_ms: See ``p99_ratio``.
        min_labels: Canary: labelled outcomes each arm needs before accuracy is compared.
        accuracy_margin: Canary: how much lower than the stable version's its accuracy may be.
        weights: A/B: the shares of A (stable) and B (candidate), in percent, summing to 100.
        sticky_key: A/B: the request field whose hash keeps one user on one arm (default: the
            endpoint's ``sticky_key``).
        metric: A/B: the outcome compared: ``accuracy`` (the share of correct answers) or
            ``label_rate`` (the share of 0/1 labels that are 1, e.g. a conversion), both binary and
            compared by a two-proportion z-test; or ``label_mean`` (a continuous label's mean),
            compared by Welch's t-test.
        alpha: A/B: the significance level.
        power: A/B: the power the required sample size is computed for.
        min_samples: A/B: outcomes each arm needs before the test counts as large enough.
        min_agreement: Shadow: below this share of agreeing answers (with at least ``min_requests``
            compared) the shadow is rolled back by the controller; None never does.
    """

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    min_duration_s: float = 60.0
    min_requests: int = 100
    max_error_rate: float = 0.05
    error_margin: float = 0.01
    max_p99_ms: float = 1000.0
    p99_ratio: float = 1.5
    p99_slack_ms: float = 5.0
    min_labels: int = 30
    accuracy_margin: float = 0.02
    weights: tuple[float, float] = (50.0, 50.0)
    sticky_key: str | None = None
    metric: str = "accuracy"
    alpha: float = 0.05
    power: float = 0.8
    min_samples: int = 100
    min_agreement: float | None = None

    def to_json(self, strategy: Strategy) -> dict[str, Any]:
        """The options ``strategy`` reads, as a JSON-ready dict."""
        values = asdict(self)
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in values.items()
            if k in STRATEGY_OPTIONS[strategy]
        }


STRATEGY_OPTIONS: Mapping[Strategy, frozenset[str]] = {
    Strategy.BLUE_GREEN: frozenset({"min_duration_s"}),
    Strategy.CANARY: frozenset(
        {
            "steps",
            "min_duration_s",
            "min_requests",
            "max_error_rate",
            "error_margin",
            "max_p99_ms",
            "p99_ratio",
            "p99_slack_ms",
            "min_labels",
            "accuracy_margin",
        }
    ),
    Strategy.AB: frozenset({"weights", "sticky_key", "metric", "alpha", "power", "min_samples"}),
    Strategy.SHADOW: frozenset({"min_requests", "min_agreement"}),
}
"""Which options each strategy takes."""

_DEFAULTS = {"blue-green": {"min_duration_s": 0.0}}
_METRICS = ("accuracy", "label_rate", "label_mean")


def _number(key: str, value: object, low: float, high: float = math.inf, *, integer: bool = False) -> float:
    field_name = f"options.{key}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"option {key} must be a finite number, not {value!r}", {"field": field_name})
    if integer and value != int(value):
        raise InvalidInput(f"option {key} must be a whole number, not {value!r}", {"field": field_name})
    if not low <= value <= high:
        bounds = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise InvalidInput(f"option {key} must be {bounds}, not {value!r}", {"field": field_name})
    return float(value)


def _percents(key: str, value: object) -> list[float]:
    if isinstance(value, str):
        parts: Sequence[object] = [p.strip() for p in value.split(",") if p.strip()]
        try:
            value = [float(str(p)) for p in parts]
        except ValueError:
            raise InvalidInput(
                f"option {key} must be numbers separated by commas, not {value!r}",
                {"field": f"options.{key}"},
            ) from None
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(f"option {key} must be a list of percentages", {"field": f"options.{key}"})
    return [_number(key, v, 0.0, 100.0) for v in value]


def parse_options(strategy: Strategy, given: Mapping[str, Any] | None) -> RolloutOptions:
    """Check ``given`` options for ``strategy`` and fill in the defaults.

    Raises:
        InvalidInput: Naming the option (``options.steps`` …) that is unknown or out of range.
    """
    given = dict(given or {})
    allowed = STRATEGY_OPTIONS[strategy]
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown option {unknown[0]!r} for a {strategy} rollout; it takes {', '.join(sorted(allowed))}",
            {"field": f"options.{unknown[0]}"},
        )
    values: dict[str, Any] = {**_DEFAULTS.get(strategy.value, {})}
    for key, value in given.items():
        if value is None and key in ("sticky_key", "min_agreement"):
            values[key] = None
        elif key == "steps":
            steps = _percents(key, value)
            if any(b <= a for a, b in itertools.pairwise(steps)) or steps[0] <= 0 or steps[-1] != 100:
                raise InvalidInput(
                    f"canary steps must rise above 0 and end at 100, not {steps}", {"field": "options.steps"}
                )
            values[key] = tuple(steps)
        elif key == "weights":
            weights = _percents(key, value)
            if len(weights) != 2 or abs(sum(weights) - 100.0) > 1e-6 or min(weights) <= 0:
                raise InvalidInput(
                    f"A/B weights must be two positive percentages summing to 100, not {weights}",
                    {"field": "options.weights"},
                )
            values[key] = (weights[0], weights[1])
        elif key == "sticky_key":
            if not isinstance(value, str) or not 0 < len(value) <= 128:
                raise InvalidInput("option sticky_key must be a field name", {"field": "options.sticky_key"})
            values[key] = value
        elif key == "metric":
            if value not in _METRICS:
                raise InvalidInput(
                    f"option metric must be one of {', '.join(_METRICS)}, not {value!r}",
                    {"field": "options.metric"},
                )
            values[key] = value
        elif key in ("min_requests", "min_labels", "min_samples"):
            values[key] = int(_number(key, value, 0, integer=True))
        elif key in ("max_error_rate", "error_margin", "accuracy_margin", "min_agreement"):
            values[key] = _number(key, value, 0.0, 1.0)
        elif key in ("alpha", "power"):
            values[key] = _number(key, value, 1e-9, 1 - 1e-9)
        elif key == "p99_ratio":
            values[key] = _number(key, value, 1.0)
        else:
            values[key] = _number(key, value, 0.0)
    return RolloutOptions(**values)


def options_from_json(data: Mapping[str, Any]) -> RolloutOptions:
    """Rebuild stored options (``RolloutOptions.to_json``)."""
    known = {f.name for f in fields(RolloutOptions)}
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
    }
    return RolloutOptions(**values)
