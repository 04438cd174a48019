"""Alert rules: the grammar, the errors that name the wrong part, and evaluation against a run's facts."""

from __future__ import annotations

import pytest

from steward.errors import InvalidInput
from steward.monitoring.models import Rule
from steward.monitoring.rules import Facts, check_rules, evaluate, explain, parse_rule, parse_seconds

FACTS: Facts = {
    "rows": 1200,
    "drift_share": 0.4,
    "dataset_drift": 0.0,
    "psi": {"income": 0.31, "age": 0.02},
    "ks": {"income": 0.2, "age": None},
    "drifted": {"income": 1.0, "age": 0.0},
    "accuracy": 0.81,
    "p99_latency_ms": 61.0,
    "error_rate": 0.002,
    "throughput_rps": 0.5,
    "demographic_parity_difference": {"gender": 0.12},
}


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold", "argument", "windows"),
    [
        ("drift_share > 0.3", "drift_share", ">", 0.3, None, 1),
        ("psi(income) > 0.2", "psi", ">", 0.2, "income", 1),
        ("ks( 'annual income' )>=0.1", "ks", ">=", 0.1, "annual income", 1),
        ("wasserstein(age) > 3", "wasserstein", ">", 3.0, "age", 1),
        ("jensenshannon(plan) > 0.1", "jensenshannon", ">", 0.1, "plan", 1),
        ("chisquare_p_value(plan) < 0.01", "chisquare_p_value", "<", 0.01, "plan", 1),
        ("drifted(income)", "drifted", ">=", 1.0, "income", 1),
        ("psi(out.prediction) > 0.25", "psi", ">", 0.25, "out.prediction", 1),
        ("accuracy < 0.85 for 3 windows", "accuracy", "<", 0.85, None, 3),
        ("rmse > 12.5 FOR 1 window", "rmse", ">", 12.5, None, 1),
        ("p99_latency_ms > 50", "p99_latency_ms", ">", 50.0, None, 1),
        ("p95_latency_ms >= 20", "p95_latency_ms", ">=", 20.0, None, 1),
        ("error_rate > 1%", "error_rate", ">", 0.01, None, 1),
        ("throughput_rps < 1", "throughput_rps", "<", 1.0, None, 1),
        (
            "demographic_parity_difference(gender) > 0.1",
            "demographic_parity_difference",
            ">",
            0.1,
            "gender",
            1,
        ),
        ("psi(cost for x) > 1 for 2 windows", "psi", ">", 1.0, "cost for x", 2),
    ],
)
def test_rules_parse(
    text: str, metric: str, op: str, threshold: float, argument: str | None, windows: int
) -> None:
    assert parse_rule(f"  {text} ") == Rule(text, metric, op, threshold, argument, windows)


@pytest.mark.parametrize(
    ("text", "part", "words"),
    [
        ("acuracy < 0.8", "acuracy", "did you mean 'accuracy'"),
        ("psi > 0.2", "psi", "needs a column in parentheses"),
        ("psi() > 0.2", "()", "needs a column"),
        ("accuracy(x) < 0.8", "(x)", "takes no argument"),
        ("drift_share", "drift_share", "comparison is missing"),
        ("drift_share == 0.3", "==", "use >, >=, < or <="),
        ("drift_share ~ 0.3", "~ 0.3", "expected an operator"),
        ("drift_share > high", "high", "is not a number"),
        ("drift_share > nan", "nan", "finite"),
        ("p99_latency_ms > 5%", "5%", "not a fraction"),
        ("accuracy < 0.8 for three windows", "for three windows", "number of windows"),
        ("accuracy < 0.8 for 0 windows", "for 0 windows", "between 1 and"),
        ("demographic_parity_ratio < 0.8", "demographic_parity_ratio", "sensitive input column"),
    ],
)
def test_bad_rules_name_the_part_that_is_wrong(text: str, part: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_rule(text)
    assert words in caught.value.message
    assert caught.value.details == {"field": "rules", "rule": text, "part": part}


def test_a_rule_must_be_text() -> None:
    for bad in (None, "", "   ", 3):
        with pytest.raises(InvalidInput, match="must be text"):
            parse_rule(bad)


def test_check_rules_wants_a_list_without_repeats() -> None:
    assert check_rules([" drift_share > 0.3", "accuracy < 0.8"]) == ("drift_share > 0.3", "accuracy < 0.8")
    with pytest.raises(InvalidInput, match="given twice"):
        check_rules(["drift_share > 0.3", "drift_share > 0.3 "])
    with pytest.raises(InvalidInput, match="at least one rule"):
        check_rules([])
    with pytest.raises(InvalidInput, match="must be a list"):
        check_rules("drift_share > 0.3")


@pytest.mark.parametrize(
    ("text", "value", "broken"),
    [
        ("drift_share > 0.3", 0.4, True),
        ("drift_share > 0.5", 0.4, False),
        ("psi(income) > 0.2", 0.31, True),
        ("psi(age) > 0.2", 0.02, False),
        ("drifted(income)", 1.0, True),
        ("drifted(age)", 0.0, False),
        ("dataset_drift", 0.0, False),
        ("accuracy < 0.85 for 3 windows", 0.81, True),
        ("p99_latency_ms > 50", 61.0, True),
        ("error_rate > 1%", 0.002, False),
        ("throughput_rps < 1", 0.5, True),
        ("throughput_rps <= 0.5", 0.5, True),
        ("rows >= 1000", 1200.0, True),
        ("demographic_parity_difference(gender) > 0.1", 0.12, True),
    ],
)
def test_rules_evaluate_against_facts(text: str, value: float, broken: bool) -> None:
    assert evaluate(parse_rule(text), FACTS) == (value, broken)


@pytest.mark.parametrize(
    "text",
    [
        "f1 < 0.8",  # no labels yet: no performance facts
        "ks(age) > 0.1",  # undefined measure (a constant column)
        "psi(unknown) > 0.2",  # a column the window does not have
        "demographic_parity_difference(age) > 0.1",
    ],
)
def test_a_missing_fact_neither_breaks_nor_holds(text: str) -> None:
    assert evaluate(parse_rule(text), FACTS) == (None, None)


def test_non_finite_facts_count_as_missing() -> None:
    assert evaluate(parse_rule("accuracy < 0.9"), {"accuracy": float("nan")}) == (None, None)


def test_explain_says_what_was_seen() -> None:
    rule = parse_rule("psi(income) > 0.2")
    assert explain(rule, 0.41234) == "psi(income) is 0.4123 (rule: > 0.2)"
    assert "could not be computed" in explain(rule, None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(900, 900), ("900", 900), ("90s", 90), ("15m", 900), ("24h", 86_400), ("7d", 604_800)],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_seconds(value, "window") == seconds


@pytest.mark.parametrize("value", ["", "1y", "-5m", "1.5h", 0, True, None, 2.5])
def test_bad_durations_name_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_seconds(value, "cooldown")
    assert caught.value.details == {"field": "cooldown"}
