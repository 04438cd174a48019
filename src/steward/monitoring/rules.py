"""Alert rules: parsed from text, evaluated against the facts one monitor run gathered.

A rule reads ``<metric>[(<argument>)] <op> <number>[%] [for <N> windows]``::

    drift_share > 0.3                   share of the input columns judged drifted
    psi(income) > 0.2                   a per-column drift measure (ks, wasserstein, jensenshannon …)
    drifted(income)                     the column's drift verdict (no comparison: "is drifted")
    accuracy < 0.85 for 3 windows       a performance metric on late labels, three runs in a row
    p99_latency_ms > 50                 serving latency (p50, p95, p99)
    error_rate > 1%                     a percentage is a fraction: 1% is 0.01
    throughput_rps < 1                  requests a second
    demographic_parity_difference(gender) > 0.1    a fairness figure over a sensitive input column
    rows < 100                          answered prediction rows in the window (``labelled``: with a label)

``op`` is one of ``>``, ``>=``, ``<``, ``<=``. A percentage is refused for figures with units
(milliseconds, requests a second, counts).

**Facts** (what :func:`evaluate` reads; ``steward.monitoring.evaluate.facts_of`` builds them from a run's
reports) are a flat dict: a metric without an argument maps to its
number, a per-column or per-attribute metric maps to ``{argument: number}``::

    {"rows": 1200, "drift_share": 0.4, "dataset_drift": 0.0,
     "psi": {"income": 0.31, "age": 0.02}, "ks": {...}, "drifted": {"income": 1.0, "age": 0.0},
     "accuracy": 0.91, "f1": 0.88, "p99_latency_ms": 41.0, "error_rate": 0.002, "throughput_rps": 3.1,
     "demographic_parity_difference": {"gender": 0.07}}

A fact that is absent or None (no labels yet, an empty window, a constant column whose measure is
undefined) makes :func:`evaluate` return ``(None, None)``: the rule is neither broken nor holding, so
a run without the number neither fires nor resolves an alert.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Final

from steward.errors import InvalidInput
from steward.monitoring.models import Rule

Facts = Mapping[str, float | Mapping[str, float | None] | None]
"""What a monitor run gathered (see the module's docstring for the shape)."""

DATASET_METRICS: Final = frozenset({"rows", "drift_share", "dataset_drift"})
"""Whole-window figures: prediction rows, the share of drifted input columns, the dataset verdict (0/1)."""
FEATURE_METRICS: Final = frozenset(
    {"psi", "ks", "ks_p_value", "wasserstein", "jensenshannon", "chisquare", "chisquare_p_value", "drifted"}
)
"""Per-column drift figures (``psi(income)``): the column is an input, or an output such as
``out.prediction``; ``drifted`` is the column's verdict as 1 or 0."""
PERFORMANCE_METRICS: Final = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "mape", "labelled"}
)
"""Model quality over the window's labelled predictions (``labelled``: how many rows had a label)."""
OPS_METRICS: Final = frozenset(
    {
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "mean_latency_ms",
        "error_rate",
        "throughput_rps",
        "requests",
        "errors",
    }
)
"""Serving figures over every version that answered in the window."""
FAIRNESS_METRICS: Final = frozenset(
    {"demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"}
)
"""Gaps between the groups of a sensitive input column (``demographic_parity_difference(gender)``)."""
METRICS: Final = DATASET_METRICS | FEATURE_METRICS | PERFORMANCE_METRICS | OPS_METRICS | FAIRNESS_METRICS

BOOLEAN_METRICS: Final = frozenset({"drifted", "dataset_drift"})
"""Metrics that may stand alone (``drifted(income)`` means ``drifted(income) >= 1``)."""
_WITH_ARGUMENT: Final = FEATURE_METRICS | FAIRNESS_METRICS
_WITH_UNITS: Final = frozenset(
    {"rows", "labelled", "requests", "errors", "throughput_rps", "rmse", "mae", "log_loss"}
    | {
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "mean_latency_ms",
        "psi",
        "wasserstein",
        "chisquare",
    }
)
"""Figures that are not fractions: a percentage threshold for them is refused."""
MAX_RULE_LENGTH: Final = 512
MAX_WINDOWS: Final = 1000

_OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_FOR = re.compile(r"^(?P<head>.*)\s+for\s+(?P<tail>[^)]*)$", re.IGNORECASE | re.DOTALL)
_WINDOWS = re.compile(r"^(?P<n>\d+)\s+windows?$", re.IGNORECASE)
_METRIC = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<call>\((?P<arg>[^()]*)\))?\s*(?P<rest>.*)$")
_COMPARISON = re.compile(r"^(?P<op>>=|<=|==|!=|=>|=<|=|>|<)\s*(?P<number>[^\s%]+)\s*(?P<pct>%)?$")


def _bad(text: str, part: str, message: str) -> InvalidInput:
    return InvalidInput(f"rule {text!r}: {message}", {"field": "rules", "rule": text, "part": part})


def parse_rule(text: object) -> Rule:
    """Parse one rule (see the module's docstring for the grammar).

    Args:
        text: The rule as written, e.g. ``"psi(income) > 0.2"`` or ``"accuracy < 0.85 for 3 windows"``.

    Returns:
        The parsed rule (``text`` stripped of surrounding spaces; ``1%`` stored as 0.01).

    Raises:
        InvalidInput: Naming the part that is wrong (``details["part"]``): an unknown metric (with the
            closest known one), a missing or unexpected argument, a missing or unknown operator, a
            threshold that is not a finite number, a percentage for a figure with units, or a bad
            ``for N windows``.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(
            "a rule must be text such as 'drift_share > 0.3'", {"field": "rules", "rule": repr(text)}
        )
    text = text.strip()
    if len(text) > MAX_RULE_LENGTH:
        raise _bad(text[:40] + "…", "rule", f"rules are at most {MAX_RULE_LENGTH} characters")
    head, windows = _split_windows(text)
    match = _METRIC.match(head)
    if match is None:
        raise _bad(text, head, "it must start with a metric such as drift_share, psi(column) or accuracy")
    metric = match.group("metric").lower()
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, sorted(METRICS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known metrics: {', '.join(sorted(METRICS))}"
        raise _bad(text, match.group("metric"), f"unknown metric {match.group('metric')!r}{hint}")
    argument = _argument(text, metric, match.group("call"), match.group("arg"))
    op, threshold = _comparison(text, metric, match.group("rest").strip())
    return Rule(text, metric, op, threshold, argument, windows)


def _split_windows(text: str) -> tuple[str, int]:
    found = _FOR.match(text)
    if found is None:
        return text, 1
    tail = found.group("tail").strip()
    counted = _WINDOWS.match(tail)
    if counted is None:
        raise _bad(
            text, f"for {tail}", "'for' must be followed by a number of windows, as in 'for 3 windows'"
        )
    windows = int(counted.group("n"))
    if not 1 <= windows <= MAX_WINDOWS:
        raise _bad(text, f"for {tail}", f"the number of windows must be between 1 and {MAX_WINDOWS}")
    return found.group("head").strip(), windows


def _argument(text: str, metric: str, call: str | None, raw: str | None) -> str | None:
    if metric not in _WITH_ARGUMENT:
        if call is not None:
            raise _bad(text, call, f"{metric} takes no argument: write it without parentheses")
        return None
    what = "a sensitive input column" if metric in FAIRNESS_METRICS else "a column"
    if call is None:
        raise _bad(text, metric, f"{metric} needs {what} in parentheses, as in {metric}(income)")
    argument = (raw or "").strip()
    if len(argument) >= 2 and argument[0] == argument[-1] and argument[0] in "'\"`":
        argument = argument[1:-1]
    if not argument:
        raise _bad(text, call, f"{metric} needs {what} in parentheses, as in {metric}(income)")
    return argument


def _comparison(text: str, metric: str, rest: str) -> tuple[str, float]:
    if not rest:
        if metric in BOOLEAN_METRICS:
            return ">=", 1.0
        raise _bad(text, metric, "a comparison is missing: add one such as '> 0.3' or '< 0.85'")
    found = _COMPARISON.match(rest)
    if found is None:
        raise _bad(text, rest, "expected an operator (>, >=, <, <=) and a number, such as '> 0.3'")
    op = found.group("op")
    if op not in _OPERATORS:
        raise _bad(text, op, f"unknown operator {op!r}: use >, >=, < or <=")
    number = found.group("number")
    try:
        threshold = float(number)
    except ValueError:
        raise _bad(text, number, f"the threshold {number!r} is not a number") from None
    if not math.isfinite(threshold):
        raise _bad(text, number, "the threshold must be a finite number")
    if found.group("pct"):
        if metric in _WITH_UNITS:
            raise _bad(text, f"{number}%", f"{metric} is not a fraction: give it without '%'")
        threshold /= 100.0
    return op, threshold


def check_rules(texts: object) -> tuple[str, ...]:
    """Parse every rule of a monitor; return their texts (stripped).

    Raises:
        InvalidInput: If ``texts`` is not a non-empty list of rules, a rule is bad (naming it and the part
            that is wrong), or one is given twice.
    """
    if isinstance(texts, str) or not isinstance(texts, list | tuple):
        raise InvalidInput("rules must be a list of rules such as ['drift_share > 0.3']", {"field": "rules"})
    if not texts:
        raise InvalidInput(
            "a monitor needs at least one rule, such as 'drift_share > 0.3'", {"field": "rules"}
        )
    parsed = [parse_rule(t).text for t in texts]
    seen: set[str] = set()
    for rule in parsed:
        if rule in seen:
            raise InvalidInput(f"rule {rule!r} is given twice", {"field": "rules", "rule": rule})
        seen.add(rule)
    return tuple(parsed)


def fact(rule: Rule, facts: Facts) -> float | None:
    """The number ``rule`` compares (None when the run did not gather it, or it is not finite)."""
    found = facts.get(rule.metric)
    if rule.argument is not None:
        found = found.get(rule.argument) if isinstance(found, Mapping) else None
    if isinstance(found, bool):
        return float(found)
    if not isinstance(found, int | float) or not math.isfinite(found):
        return None
    return float(found)


def evaluate(rule: Rule, facts: Facts) -> tuple[float | None, bool | None]:
    """Compare ``rule`` with the facts of one run.

    Args:
        rule: The parsed rule.
        facts: What the run gathered (see the module's docstring).

    Returns:
        ``(value, broken)``: the observed number and whether it breaks the rule; ``(None, None)`` when
        the fact is missing (no labels yet, an empty window, an undefined measure), which neither fires
        nor resolves an alert. ``for N windows`` is not applied here: the caller counts the streak.
    """
    value = fact(rule, facts)
    if value is None:
        return None, None
    return value, _OPERATORS[rule.op](value, rule.threshold)


def subject(rule: Rule) -> str:
    """The rule's left-hand side as written canonically: ``psi(income)``, ``accuracy``."""
    return f"{rule.metric}({rule.argument})" if rule.argument is not None else rule.metric


def explain(rule: Rule, value: float | None) -> str:
    """A sentence saying what was observed against the rule, e.g. ``psi(income) is 0.41 (rule: > 0.2)``."""
    if value is None:
        return f"{subject(rule)} could not be computed (rule: {rule.op} {rule.threshold:g})"
    return f"{subject(rule)} is {value:.4g} (rule: {rule.op} {rule.threshold:g})"


_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_SECONDS = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>[smhdw]?)\s*$", re.IGNORECASE)


def parse_seconds(value: object, field: str, *, minimum: int = 1) -> int:
    """Whole seconds from ``900``, ``"900"``, ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` or ``"1w"``.

    Raises:
        InvalidInput: Naming ``field``, for anything else or fewer than ``minimum`` seconds.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{field} must be a duration such as '15m', '24h' or 900", {"field": field})
    if isinstance(value, int):
        seconds = value
    else:
        found = _SECONDS.match(value)
        if found is None:
            raise InvalidInput(
                f"{field} {value!r} is not a duration such as '90s', '15m', '24h', '7d' or 900",
                {"field": field},
            )
        seconds = int(found.group("n")) * _UNITS.get(found.group("unit").lower() or "s", 1)
    if seconds < minimum:
        raise InvalidInput(f"{field} must be at least {minimum} seconds, not {value!r}", {"field": field})
    return seconds
