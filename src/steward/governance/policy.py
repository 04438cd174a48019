"""Policy documents and their verdicts: the rules a model version must meet to take a protected alias.

A policy is a YAML document (the full schema is in ``docs/policies.md``)::

    name: production-gate
    description: What production models must meet
    aliases: [production]          # the aliases it protects (default: [production])
    models: ["churn*"]             # glob patterns of the model names it covers (default: all)
    rules:
      - metrics.auc >= 0.85
      - metrics.auc >= current.metrics.auc - 0.01
      - rule: fairness.demographic_parity_difference <= 0.1
        description: the gap in positive rates between groups
      - data_validated
      - approvals >= 2

Each rule is an expression of ``steward.governance.rules``. ``evaluate`` runs a policy over ``Facts``
that the caller gathered (the registry's ``gates``), so this module knows nothing of models or
datasets. It never raises for what the facts lack: a fact not recorded fails its rule with ``no value
recorded for …``, and a rule on ``current.*`` passes when no version holds the alias yet (``no current
version``). A rule on ``approvals`` is an *approval rule*: when only those fail the verdict is
``pending_only``, and the move waits for approvers instead of being refused.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from steward.core.names import NAME_PATTERN
from steward.errors import InvalidInput
from steward.governance.rules import (
    APPROVALS,
    CHECKS,
    Expression,
    Facts,
    Undecided,
    describe,
    format_value,
    json_value,
    parse_expression,
)

__all__ = [
    "APPROVALS",
    "CHECKS",
    "DEFAULT_ALIASES",
    "Facts",
    "Policy",
    "Rule",
    "RuleResult",
    "Verdict",
    "combine",
    "evaluate",
    "format_value",
    "parse_policy",
    "parse_rule",
]

DEFAULT_ALIASES = ("production",)
"""The aliases a policy protects when it names none."""

MAX_APPROVALS = 50
"""The most approvals a rule may ask for."""

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_RULES = 200
MAX_RULE_CHARS = 1000
_TOP_KEYS = ("name", "description", "aliases", "models", "rules")
_GLOB = re.compile(r"^[A-Za-z0-9._\-*?\[\]!]{1,128}$")
_STR = "tag:yaml.org,2002:str"

# -- rules ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One parsed rule.

    Attributes:
        text: The rule as written.
        description: What it is for (optional).
        line: Its line in the YAML document, if it came from one.
        approvals_required: For a rule on ``approvals``: the fewest approvals that meet it; else None.
        expression: The parsed expression.
    """

    text: str
    expression: Expression = field(repr=False, compare=False)
    description: str = ""
    line: int | None = None
    approvals_required: int | None = None

    @property
    def is_approval(self) -> bool:
        """Whether this rule asks for approvals (it may read no other fact)."""
        return self.approvals_required is not None

    def to_json(self) -> dict[str, Any]:
        """Return ``{"rule", "description"}``."""
        return {"rule": self.text, "description": self.description}


def parse_rule(text: str, description: str = "", line: int | None = None) -> Rule:
    """Parse and type-check one rule.

    Raises:
        InvalidInput: Naming the rule, the problem and its column.
    """
    try:
        return _parse_rule(text, description, line)
    except InvalidInput as exc:
        raise InvalidInput(
            f"rule {str(text).strip()!r}: {exc.message}", {**exc.details, "rule": text}
        ) from None


def _parse_rule(text: str, description: str, line: int | None) -> Rule:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a rule must be non-empty text", {"field": "rules"})
    if len(text) > MAX_RULE_CHARS:
        raise InvalidInput(f"a rule may be at most {MAX_RULE_CHARS} characters", {"field": "rules"})
    node = parse_expression(text)
    paths = node.paths()
    if not paths:
        raise InvalidInput("it reads no fact, so it can never change", {"field": "rules"})
    if node.type != "bool":
        raise InvalidInput(
            f"{node.text!r} is a {node.type}, not a check: compare it (metrics.auc >= 0.8); only "
            f"the named checks ({', '.join(CHECKS)}) stand alone",
            {"field": "rules"},
        )
    required = _approvals_required(node, paths)
    return Rule(text.strip(), node, description, line, required)


def _approvals_required(node: Expression, paths: set[str]) -> int | None:
    if APPROVALS not in paths:
        return None
    if paths != {APPROVALS}:
        raise InvalidInput("a rule on approvals may read no other fact", {"field": "rules"})
    for count in range(MAX_APPROVALS + 1):

        def given(_path: str, count: int = count) -> int:
            return count

        if node.evaluate(given):
            return count
    raise InvalidInput(f"no number of approvals up to {MAX_APPROVALS} meets it", {"field": "rules"})


# -- the document ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """A parsed policy document.

    Attributes:
        name: Its name (versions are kept under it).
        rules: Its rules, in order.
        description: What it is for.
        aliases: The aliases it protects.
        models: Glob patterns (``fnmatch``, case-sensitive) of the model names it covers.
    """

    name: str
    rules: tuple[Rule, ...]
    description: str = ""
    aliases: tuple[str, ...] = DEFAULT_ALIASES
    models: tuple[str, ...] = ("*",)

    def applies_to(self, model: str, alias: str) -> bool:
        """Whether this policy gates ``model`` taking ``alias``."""
        return alias in self.aliases and any(fnmatch.fnmatchcase(model, p) for p in self.models)

    @property
    def required_approvals(self) -> int:
        """The most approvals any of its rules asks for (0 for none)."""
        return max((r.approvals_required or 0 for r in self.rules), default=0)

    def to_json(self) -> dict[str, Any]:
        """Return the document's content as JSON (what its digest covers)."""
        return {
            "name": self.name,
            "description": self.description,
            "aliases": list(self.aliases),
            "models": list(self.models),
            "rules": [r.to_json() for r in self.rules],
        }

    @property
    def digest(self) -> str:
        """The SHA-256 of its content: comments and formatting do not change it."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _bad(message: str, line: int | None = None, **details: Any) -> InvalidInput:
    where = f" line {line}" if line is not None else ""
    found = {"field": "policy", **({"line": line} if line is not None else {}), **details}
    return InvalidInput(f"policy{where}: {message}", found)


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _text(node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        raise _bad(f"{what} must be text", _line(node))
    return str(node.value)


def _text_list(node: yaml.Node, what: str, check: Callable[[str, int | None], None]) -> tuple[str, ...]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not items:
        raise _bad(f"{what} must list at least one entry", _line(node), key=what)
    found = []
    for item in items:
        value = _text(item, f"each entry of {what}")
        check(value, _line(item))
        found.append(value)
    return tuple(dict.fromkeys(found))


def _check_alias(value: str, line: int | None) -> None:
    if not NAME_PATTERN.match(value) or value == "latest":
        raise _bad(f"{value!r} is not an alias a policy can protect", line, key="aliases")


def _check_glob(value: str, line: int | None) -> None:
    if not _GLOB.match(value):
        raise _bad(
            f"{value!r} is not a model name pattern (letters, digits, . _ - * ? [ ])", line, key="models"
        )


def _rule_of(index: int, node: yaml.Node) -> Rule:
    line = _line(node)
    description = ""
    if isinstance(node, yaml.MappingNode):
        entries = {_text(k, "a rule's keys"): v for k, v in node.value}
        unknown = sorted(set(entries) - {"rule", "description"})
        if unknown or "rule" not in entries:
            raise _bad(f"rule {index} takes 'rule' and 'description', not {unknown}", line, rule=index)
        description = (
            _text(entries["description"], "a rule's description") if "description" in entries else ""
        )
        node = entries["rule"]
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        raise _bad(f"rule {index} must be text (quote it if it holds ': ' or starts with a symbol)", line,
                   rule=index)  # fmt: skip
    try:
        return _parse_rule(str(node.value), description, line)
    except InvalidInput as exc:
        raise _bad(
            f"rule {index} {str(node.value).strip()!r}: {exc.message}",
            line,
            rule=index,
            text=str(node.value),
            **{k: v for k, v in exc.details.items() if k == "column"},
        ) from None


def _root(document: str) -> yaml.MappingNode:
    if not isinstance(document, str) or not document.strip():
        raise _bad("the document is empty")
    if len(document.encode()) > MAX_DOCUMENT_BYTES:
        raise _bad(f"the document is over {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        root = yaml.compose(document, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise _bad(f"not valid YAML: {problem}", mark.line + 1 if mark is not None else None) from None
    if not isinstance(root, yaml.MappingNode):
        raise _bad("the document must be a mapping with a name and rules", _line(root))
    return root


def parse_policy(document: str) -> Policy:
    """Parse and validate a policy document (YAML).

    Raises:
        InvalidInput: For malformed YAML, an unknown or repeated key, a bad name, alias or pattern, or a
            bad rule. The message names the rule and its line; ``details`` has ``line`` and ``rule``.
    """
    keys: dict[str, yaml.Node] = {}
    for key_node, value_node in _root(document).value:
        key = _text(key_node, "a key")
        if key in keys:
            raise _bad(f"{key!r} is given twice", _line(key_node), key=key)
        if key not in _TOP_KEYS:
            raise _bad(f"unknown key {key!r}: a policy has {', '.join(_TOP_KEYS)}", _line(key_node), key=key)
        keys[key] = value_node
    if "name" not in keys or "rules" not in keys:
        raise _bad("a policy needs a name and rules", key="name" if "name" not in keys else "rules")
    name = _text(keys["name"], "name")
    if not NAME_PATTERN.match(name):
        raise _bad(f"invalid policy name {name!r}: use letters, digits, '.', '_', '-'", _line(keys["name"]),
                   key="name")  # fmt: skip
    rules = keys["rules"]
    if not isinstance(rules, yaml.SequenceNode) or not rules.value:
        raise _bad("rules must be a list of at least one rule", _line(rules), key="rules")
    if len(rules.value) > MAX_RULES:
        raise _bad(f"a policy may have at most {MAX_RULES} rules", _line(rules), key="rules")
    return Policy(
        name=name,
        rules=tuple(_rule_of(i, node) for i, node in enumerate(rules.value, 1)),
        description=_text(keys["description"], "description") if "description" in keys else "",
        aliases=_text_list(keys["aliases"], "aliases", _check_alias)
        if "aliases" in keys
        else DEFAULT_ALIASES,
        models=_text_list(keys["models"], "models", _check_glob) if "models" in keys else ("*",),
    )


# -- verdicts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """How one rule fared.

    Attributes:
        rule: The rule's text.
        passed: Whether it holds.
        actual: The value of the fact it tests, as JSON has it (None when not recorded, or for a compound
            rule).
        required: What it asks of that value (``>= 0.85``, ``true``).
        message: Why, where that is worth saying (``no value recorded for metrics.auc``).
        policy: The policy it belongs to.
        approvals_required: For an approval rule, the approvals it asks for; else None.
    """

    rule: str
    passed: bool
    actual: Any
    required: str
    message: str = ""
    policy: str = ""
    approvals_required: int | None = None

    @property
    def approval(self) -> bool:
        """Whether it is a rule on approvals."""
        return self.approvals_required is not None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "rule": self.rule,
            "passed": self.passed,
            "actual": self.actual,
            "required": self.required,
            "message": self.message,
            "policy": self.policy,
            "approval": self.approval,
            "approvals_required": self.approvals_required,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleResult:
        """Build from the dict ``to_json`` returns (a verdict that came over HTTP)."""
        return cls(
            str(data["rule"]), bool(data["passed"]), data.get("actual"), str(data.get("required", "")),
            str(data.get("message", "")), str(data.get("policy", "")), data.get("approvals_required"),
        )  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """The outcome of the policies gating one move: one ``RuleResult`` per rule.

    Attributes:
        results: The rules' results, policy by policy, in document order.
        policies: The policies evaluated: ``{"name", "version"}`` each.
        subject: What was checked (``model``, ``version``, ``alias``), when known.
    """

    results: tuple[RuleResult, ...] = ()
    policies: tuple[Mapping[str, Any], ...] = ()
    subject: Mapping[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every rule holds (true when no policy applies)."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        """The rules that do not hold."""
        return [r for r in self.results if not r.passed]

    @property
    def pending_only(self) -> bool:
        """Whether only approval rules fail: the move waits for approvers rather than being refused."""
        failed = self.failures
        return bool(failed) and all(r.approval for r in failed)

    @property
    def required_approvals(self) -> int:
        """The most approvals any approval rule asks for (0 for none)."""
        return max((r.approvals_required or 0 for r in self.results), default=0)

    def summary(self) -> str:
        """One line: ``passed``, ``awaiting approvals …`` or the failing rules with why."""
        if self.passed:
            return "passed" if self.results else "no policy applies"
        if self.pending_only:
            return f"awaiting approvals ({self.required_approvals} required)"
        reasons = [f"{r.rule} ({r.message or f'actual {format_value(r.actual)}'})" for r in self.failures]
        return "failed: " + "; ".join(reasons)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict: the subject, ``passed``, ``pending_only``, ``results`` and more."""
        return {
            **dict(self.subject),
            "passed": self.passed,
            "pending_only": self.pending_only,
            "required_approvals": self.required_approvals,
            "summary": self.summary(),
            "policies": [dict(p) for p in self.policies],
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Build from the dict ``to_json`` returns (a verdict that came over HTTP)."""
        subject = {k: str(data[k]) for k in ("model", "version", "alias") if k in data}
        results = tuple(RuleResult.from_json(r) for r in data.get("results", ()))
        return cls(results, tuple(dict(p) for p in data.get("policies", ())), subject)

    def render(self) -> str:
        """Plain text: a heading, then per policy one line per rule with PASS/FAIL, actual and required."""
        s = self.subject
        what = f"{s.get('model', '?')} {s.get('version', '?')} -> {s.get('alias', '?')}" if s else "verdict"
        state = "PASS" if self.passed else "PENDING APPROVAL" if self.pending_only else "FAIL"
        lines = [f"{what}: {state}" + ("" if self.results else " (no policy protects this alias)")]
        width = max((len(r.rule) for r in self.results), default=0)
        shown = max((len(format_value(r.actual)) for r in self.results), default=0)
        for ref in self.policies:
            version = ref.get("version")
            lines.append(f"policy {ref['name']}" + (f" (version {version})" if version else ""))
            for r in self.results:
                if r.policy != ref["name"]:
                    continue
                line = (f"  {'PASS' if r.passed else 'FAIL'}  {r.rule:<{width}}  actual "
                        f"{format_value(r.actual):<{shown}}  required {r.required}")  # fmt: skip
                lines.append(line + (f"  ({r.message})" if r.message else ""))
        return "\n".join(lines)


def _result(rule: Rule, facts: Facts, policy: str) -> RuleResult:
    node = rule.expression

    def lookup(path: str) -> Any:
        value = facts.values.get(path)
        if value is None:
            raise Undecided(f"no value recorded for {path}", path)
        return value

    def value_of(part: Expression) -> Any:
        try:
            return part.evaluate(lookup)
        except Undecided:
            return None

    def result(passed: bool, message: str) -> RuleResult:
        return RuleResult(rule.text, passed, actual, required, message, policy, rule.approvals_required)

    paths = node.paths()
    found, required = describe(node, value_of)
    actual = json_value(found)
    missing = [p for p in paths if facts.values.get(p) is None]
    if missing and all(p.startswith("current.") for p in missing) and not facts.has_current:
        return result(True, "no current version")
    try:
        passed = bool(node.evaluate(lookup))
    except Undecided as failure:
        note = facts.notes.get(failure.path or "")
        return result(False, failure.message + (f" ({note})" if note else ""))
    if rule.is_approval and not passed:
        return result(False, f"awaiting approvals: {format_value(actual)} of {rule.approvals_required}")
    if node.kind in ("and", "or") and not passed:
        return result(False, "false: " + ", ".join(a.text for a in node.args if not value_of(a)))
    return result(passed, next((facts.notes[p] for p in sorted(paths) if p in facts.notes), ""))


def evaluate(policy: Policy, facts: Facts | Mapping[str, Any], version: int | None = None) -> Verdict:
    """Evaluate every rule of ``policy`` over ``facts``; it never raises for what the facts lack.

    Args:
        policy: The policy.
        facts: The facts: a ``Facts``, or a nested or flat mapping (``{"metrics": {"auc": 0.9}}``).
        version: The stored version of the policy, to name in the verdict.

    Returns:
        The verdict, one ``RuleResult`` per rule in order.
    """
    known = facts if isinstance(facts, Facts) else Facts.of(facts)
    results = tuple(_result(rule, known, policy.name) for rule in policy.rules)
    return Verdict(results, ({"name": policy.name, "version": version},))


def combine(verdicts: Iterable[Verdict], subject: Mapping[str, str] | None = None) -> Verdict:
    """Join the verdicts of several policies into one, which passes only if each does."""
    listed = list(verdicts)
    return Verdict(
        tuple(r for v in listed for r in v.results),
        tuple(p for v in listed for p in v.policies),
        dict(subject or {}),
    )
