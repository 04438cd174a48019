"""The policy engine: documents parsed and checked, rules evaluated over plain facts, verdicts shown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from steward.errors import InvalidInput
from steward.governance.policy import (
    Facts,
    Verdict,
    combine,
    evaluate,
    parse_policy,
    parse_rule,
)

GATE = """\
name: production-gate
description: What production models must meet
aliases: [production]          # default [production]
models: ["*"]                  # glob patterns, default all
rules:
  - metrics.auc >= 0.85
  - metrics.auc >= current.metrics.auc - 0.01
  - fairness.demographic_parity_difference <= 0.1
  - data_validated
  - pii_protected
  - residency_ok
  - card_present
  - safe_flavor
  - approvals >= 2
"""

GOOD: dict[str, Any] = {
    "metrics": {"auc": 0.9},
    "current": {"version": "1.0.0", "metrics": {"auc": 0.91}},
    "fairness": {"demographic_parity_difference": 0.04},
    "data_validated": True,
    "pii_protected": True,
    "residency_ok": True,
    "card_present": True,
    "safe_flavor": True,
    "approvals": 2,
}


def results(policy_text: str, facts: dict[str, Any]) -> dict[str, Any]:
    """``{rule: RuleResult}`` of evaluating the document over the facts."""
    return {r.rule: r for r in evaluate(parse_policy(policy_text), facts).results}


def one(rule: str, facts: dict[str, Any] | Facts) -> Any:
    """The result of a policy holding only ``rule``."""
    policy = parse_policy(f"name: p\nrules:\n  - {json.dumps(rule)}\n")
    return evaluate(policy, facts).results[0]


# -- documents ------------------------------------------------------------------------------------------


def test_the_example_document_parses_with_its_defaults_and_globs() -> None:
    policy = parse_policy(GATE)
    assert policy.name == "production-gate" and len(policy.rules) == 9
    assert policy.aliases == ("production",) and policy.models == ("*",)
    assert policy.required_approvals == 2
    assert [r.is_approval for r in policy.rules] == [False] * 8 + [True]
    assert policy.applies_to("churn", "production") and not policy.applies_to("churn", "staging")
    assert policy.rules[3].line == 9  # "  - data_validated" is the document's ninth line

    scoped = parse_policy("name: fraud-gate\nmodels: ['fraud*', 'risk']\nrules: [card_present]\n")
    assert scoped.aliases == ("production",)
    assert scoped.applies_to("fraud-eu", "production") and scoped.applies_to("risk", "production")
    assert not scoped.applies_to("churn", "production")


def test_rules_may_carry_a_description() -> None:
    policy = parse_policy("name: p\nrules:\n  - rule: metrics.auc >= 0.8\n    description: good enough\n")
    assert (policy.rules[0].text, policy.rules[0].description) == ("metrics.auc >= 0.8", "good enough")


def test_comments_and_layout_do_not_change_the_digest_but_content_does() -> None:
    same = GATE.replace("aliases: [production]          # default [production]", "aliases:\n  - production")
    assert parse_policy(same).digest == parse_policy(GATE).digest
    assert parse_policy(GATE.replace("0.85", "0.86")).digest != parse_policy(GATE).digest


@pytest.mark.parametrize(
    ("document", "expected", "line"),
    [
        ("name: p\nrules:\n  - metrics.auc >= 0.8\n  - metrics.auc >=> 1\n", "rule 2 'metrics.auc >=> 1'", 4),
        ("name: p\nrules:\n  - data_valdated\n", "unknown fact 'data_valdated'", 3),
        ("name: p\nrules:\n  - metrics.auc >= 'high'\n", "'metrics.auc' is number", 3),
        ("name: p\nrules:\n  - metrics.auc\n", "not a check", 3),
        ("name: p\nrules:\n  - metrics.auc = 0.8\n", "compare with ==", 3),
        ("name: p\nrules:\n  - approvals >= 2 and card_present\n", "approvals may read no other fact", 3),
        ("name: p\nrules:\n  - approvals > 1000\n", "no number of approvals", 3),
        ("name: p\nrules:\n  - true\n", "rule 1 must be text", 3),
        ("name: p\nrules:\n  - \"__import__('os').system('id')\"\n", "unexpected", 3),
        ("name: p\nrule:\n  - card_present\n", "unknown key 'rule'", 2),
        ("name: p\nname: q\nrules: [card_present]\n", "'name' is given twice", 2),
        ("name: p\nrules: []\n", "at least one rule", 2),
        ("name: p\naliases: [latest]\nrules: [card_present]\n", "'latest' is not an alias", 2),
        ("name: bad name\nrules: [card_present]\n", "invalid policy name", 1),
        ("name: p\nrules: [card_present\n", "not valid YAML", 3),
    ],
)
def test_bad_documents_are_refused_naming_the_rule_and_its_line(
    document: str, expected: str, line: int
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_policy(document)
    assert expected in info.value.message
    assert info.value.details["line"] == line
    assert f"line {line}" in info.value.message


def test_a_document_without_rules_or_name_is_refused() -> None:
    for document in ("", "name: p\n", "rules: [card_present]\n", "- a list\n"):
        with pytest.raises(InvalidInput):
            parse_policy(document)


# -- evaluation -----------------------------------------------------------------------------------------


def test_a_version_meeting_every_rule_passes_with_one_line_per_rule() -> None:
    verdict = evaluate(parse_policy(GATE), GOOD, version=3)
    assert verdict.passed and not verdict.pending_only
    assert len(verdict.results) == 9 and all(r.passed for r in verdict.results)
    regression = verdict.results[1]
    assert (regression.actual, regression.required) == (0.9, ">= 0.9 (current.metrics.auc - 0.01)")
    assert verdict.policies == ({"name": "production-gate", "version": 3},)


def test_failing_rules_show_the_actual_and_required_values() -> None:
    found = results(GATE, {**GOOD, "metrics": {"auc": 0.8}, "card_present": False})
    assert not found["metrics.auc >= 0.85"].passed
    assert (found["metrics.auc >= 0.85"].actual, found["metrics.auc >= 0.85"].required) == (0.8, ">= 0.85")
    assert not found["metrics.auc >= current.metrics.auc - 0.01"].passed
    assert (found["card_present"].actual, found["card_present"].required) == (False, "true")


def test_a_missing_fact_fails_its_rule_with_a_message_rather_than_an_error() -> None:
    facts = {k: v for k, v in GOOD.items() if k != "fairness"}
    verdict = evaluate(parse_policy(GATE), facts)
    failed = verdict.failures
    assert [r.rule for r in failed] == ["fairness.demographic_parity_difference <= 0.1"]
    assert failed[0].message == "no value recorded for fairness.demographic_parity_difference"
    assert failed[0].actual is None
    assert one("metrics.auc >= 0.8", {}).message == "no value recorded for metrics.auc"


def test_a_rule_on_the_current_version_passes_when_no_version_holds_the_alias() -> None:
    result = one("metrics.auc >= current.metrics.auc - 0.01", {"metrics": {"auc": 0.5}})
    assert result.passed and result.message == "no current version"
    # A current version without the metric is a failure, not a pass.
    held = one(
        "metrics.auc >= current.metrics.auc - 0.01", {"metrics": {"auc": 0.5}, "current": {"version": "1"}}
    )
    assert not held.passed and held.message == "no value recorded for current.metrics.auc"
    # The version's own missing metric still fails, current or not.
    assert not one("metrics.auc >= current.metrics.auc - 0.01", {}).passed


def test_thresholds_are_compared_as_written_not_as_binary_floats() -> None:
    # In binary floating point 0.91 - 0.01 is 0.9000000000000001, which 0.9 would fail.
    facts = {"metrics": {"auc": 0.9}, "current": {"metrics": {"auc": 0.91}}}
    assert one("metrics.auc >= current.metrics.auc - 0.01", facts).passed
    assert one("metrics.auc * 3 == 2.7", facts).passed


def test_chained_comparisons_abs_text_and_logic() -> None:
    facts = {
        "fairness": {"dpd": -0.05},
        "flavor": "sklearn",
        "metrics": {"val/loss": 0.2},
        "card_present": False,
    }
    chained = one("-0.1 <= fairness.dpd <= 0.1", facts)
    assert chained.passed and chained.actual == -0.05 and chained.required == "-0.1 <= fairness.dpd <= 0.1"
    assert one("abs(fairness.dpd) < 0.06", facts).passed
    assert one('flavor != "pyfunc"', facts).passed
    assert one("""metrics["val/loss"] < 0.3""", facts).passed
    assert one("not card_present", facts).passed
    mixed = one("card_present or abs(fairness.dpd) > 1", facts)
    assert not mixed.passed and mixed.message == "false: card_present, abs(fairness.dpd) > 1"
    mirrored = one("0.1 >= fairness.dpd", facts)
    assert (mirrored.actual, mirrored.required) == (-0.05, "<= 0.1")


def test_facts_of_the_wrong_type_or_a_division_by_zero_fail_the_rule() -> None:
    assert (
        one("metrics.auc > 0.5", {"metrics": {"auc": "high"}}).message
        == "metrics.auc is 'high', not a number"
    )
    assert not one("metrics.auc > 0.5", {"metrics": {"auc": float("nan")}}).passed
    assert not one("card_present", {"card_present": "yes"}).passed
    assert "division by zero" in one("metrics.a / metrics.b > 1", {"metrics": {"a": 1, "b": 0}}).message


def test_notes_explain_a_named_check() -> None:
    facts = Facts.of({"data_validated": False}, {"data_validated": "iris@3 came from quarantine"})
    assert one("data_validated", facts).message == "iris@3 came from quarantine"


def test_only_missing_approvals_make_a_verdict_pending() -> None:
    pending = evaluate(parse_policy(GATE), {**GOOD, "approvals": 1})
    assert not pending.passed and pending.pending_only and pending.required_approvals == 2
    approvals = pending.failures[0]
    assert approvals.approval and approvals.message == "awaiting approvals: 1 of 2"
    refused = evaluate(parse_policy(GATE), {**GOOD, "approvals": 1, "card_present": False})
    assert not refused.pending_only
    assert parse_rule("approvals > 2").approvals_required == 3


def test_verdicts_of_several_policies_combine() -> None:
    first = evaluate(parse_policy(GATE), GOOD, 1)
    second = evaluate(
        parse_policy("name: cards\nrules: [card_present, safe_flavor]\n"), {"card_present": True}, 4
    )
    both = combine([first, second], {"model": "churn", "version": "1.1.0", "alias": "production"})
    assert not both.passed and [r.policy for r in both.failures] == ["cards"]
    assert [p["name"] for p in both.policies] == ["production-gate", "cards"]
    assert combine([]).passed and combine([]).summary() == "no policy applies"


def test_the_text_rendering_has_one_line_per_rule_and_survives_json() -> None:
    verdict = combine([evaluate(parse_policy(GATE), {**GOOD, "card_present": False}, 2)],
                      {"model": "churn", "version": "1.1.0", "alias": "production"})  # fmt: skip
    text = verdict.render()
    lines = text.splitlines()
    assert lines[0] == "churn 1.1.0 -> production: FAIL"
    assert lines[1] == "policy production-gate (version 2)"
    rule_lines = lines[2:]
    assert len(rule_lines) == 9
    assert rule_lines[0].split()[:2] == ["PASS", "metrics.auc"]
    card = next(line for line in rule_lines if "card_present" in line)
    assert card.split()[0] == "FAIL" and "actual false" in card and "required true" in card
    again = Verdict.from_json(json.loads(json.dumps(verdict.to_json())))
    assert again.render() == text and again.passed is False
    assert verdict.to_json()["summary"].startswith("failed: card_present")
