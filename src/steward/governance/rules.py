"""The rule language of policies: a small typed expression grammar, parsed by hand and never ``eval``-ed.

A rule compares facts about a model version::

    metrics.auc >= 0.85
    metrics.auc >= current.metrics.auc - 0.01
    -0.1 <= fairness.demographic_parity_difference <= 0.1
    data_validated and not flavor == "pyfunc"
    approvals >= 2

Grammar, loosest first: ``or``, ``and``, ``not``, comparisons (``< <= > >= == !=``, chained as in
Python), ``+ -``, ``* /``, unary ``-``; then numbers, quoted text, ``true``/``false``, ``abs(…)``,
parentheses and fact paths. A path is dotted words (``metrics.auc``) with, for a key that is not a
plain word, a quoted last part: ``metrics["val/loss"]``.

Facts are typed by their path: ``metrics.*``, ``fairness.*`` and ``approvals`` are numbers; ``model``,
``version`` and ``flavor`` are text; the named checks (``CHECKS``) are true or false; ``current.*`` is
the same facts of the version holding the alias now. Types are checked when a rule is parsed, so a
misspelt check or ``metrics.auc >= "high"`` is refused before any verdict. Numbers are compared as
decimals of their shortest text, so ``0.91 - 0.01`` is exactly ``0.9``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from steward.errors import InvalidInput

CHECKS: dict[str, str] = {
    "data_validated": "every dataset version it was trained on passed its checks (none came from quarantine)",
    "pii_protected": "no column that a PII scan tagged in its training data is left unprotected",
    "residency_ok": "the artifact store is inside every training dataset's allowed regions",
    "card_present": "a model card was written for the version",
    "safe_flavor": "its formats load without running code (no pyfunc, no pickle files)",
}
"""The named checks a rule may state bare, with what each means."""

APPROVALS = "approvals"
"""The fact holding how many distinct approvers approved the open request."""

NUMBER_ROOTS = frozenset({"metrics", "fairness"})
TEXT_FACTS = frozenset({"model", "version", "flavor"})
_CURRENT_FACTS = frozenset({"version", "flavor"})

# -- facts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What is known about a model version, as flat dotted paths (``metrics.auc``, ``current.version``).

    Attributes:
        values: The recorded values: numbers, text or booleans. A path that is absent (or None) was not
            recorded. Paths under ``current.`` describe the version holding the alias now; none at all
            means no version holds it.
        notes: Why a fact is what it is, by path (``data_validated``: ``iris@3 was released …``); the
            verdict shows them.
    """

    values: Mapping[str, Any]
    notes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Mapping[str, Any], notes: Mapping[str, str] | None = None) -> Facts:
        """Build from nested or flat mappings: ``{"metrics": {"auc": 0.9}}`` is ``metrics.auc``."""
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, Mapping):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
            elif value is not None:
                flat[prefix] = value

        walk("", data)
        return cls(flat, dict(notes or {}))

    @property
    def has_current(self) -> bool:
        """Whether some version holds the alias now (a ``current.`` fact is recorded)."""
        return any(path.startswith("current.") for path in self.values)


class Undecided(Exception):
    """A rule cannot be decided from the facts: a fact is missing or of the wrong type, or a division by
    zero. Evaluating a policy turns this into a failed rule, never an error."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


# -- the expression tree ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A parsed, typed expression.

    Attributes:
        kind: ``lit``, ``path``, ``neg``, ``abs``, ``arith``, ``cmp``, ``not``, ``and`` or ``or``.
        type: ``number``, ``text`` or ``bool``.
        text: Its source text.
        value: A literal's value (a ``Decimal``, text or bool); a path's name.
        ops: The operators of ``arith`` (one) and ``cmp`` (one per pair).
        args: Its operands.
    """

    kind: str
    type: str
    text: str
    value: Any = None
    ops: tuple[str, ...] = ()
    args: tuple[Expression, ...] = ()

    def paths(self) -> set[str]:
        """Every fact path this expression reads."""
        found = {str(self.value)} if self.kind == "path" else set()
        for arg in self.args:
            found |= arg.paths()
        return found

    def evaluate(self, lookup: Callable[[str], Any]) -> Any:
        """The value of this expression, reading facts through ``lookup``.

        Raises:
            Undecided: ``lookup`` raised it for a missing fact, a fact has the wrong type, or a number is
                divided by zero.
        """
        kind = self.kind
        if kind == "lit":
            return self.value
        if kind == "path":
            return _typed(self, lookup(str(self.value)))
        if kind == "neg":
            return -self.args[0].evaluate(lookup)
        if kind == "abs":
            return abs(self.args[0].evaluate(lookup))
        if kind == "arith":
            left, right = (arg.evaluate(lookup) for arg in self.args)
            return _arith(self.ops[0], left, right, self.text)
        if kind == "cmp":
            values = [arg.evaluate(lookup) for arg in self.args]
            return all(_COMPARE[op](a, b) for op, a, b in zip(self.ops, values, values[1:], strict=False))
        if kind == "not":
            return not self.args[0].evaluate(lookup)
        results = (arg.evaluate(lookup) for arg in self.args)
        return all(results) if kind == "and" else any(results)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _arith(op: str, left: Decimal, right: Decimal, text: str) -> Decimal:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        raise Undecided(f"division by zero in {text}")
    return left / right


def to_number(value: Any, path: str) -> Decimal:
    """A fact value as a decimal of its shortest text.

    Raises:
        Undecided: It is not a finite number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise Undecided(f"{path} is {value!r}, not a number", path)
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not number.is_finite():
        raise Undecided(f"{path} is {value!r}, not a finite number", path)
    return number


def _typed(node: Expression, value: Any) -> Any:
    path = str(node.value)
    if node.type == "number":
        return to_number(value, path)
    if node.type == "bool" and not isinstance(value, bool):
        raise Undecided(f"{path} is {value!r}, not true or false", path)
    if node.type == "text" and not isinstance(value, str):
        raise Undecided(f"{path} is {value!r}, not text", path)
    return value


def fact_type(path: str) -> str:
    """The type (``number``, ``text``, ``bool``) of a fact path.

    Raises:
        ValueError: Naming what is wrong with a path that is no fact.
    """
    head, _, rest = path.partition(".")
    if head == "current":
        inner = rest.partition(".")[0]
        if inner in NUMBER_ROOTS or inner in _CURRENT_FACTS:
            return fact_type(rest)
        raise ValueError(f"{path!r} is not a fact of the current version: use current.metrics.<key>")
    if head in NUMBER_ROOTS:
        if not rest:
            raise ValueError(f"{head!r} needs a key: {head}.auc")
        return "number"
    if not rest and head in CHECKS:
        return "bool"
    if not rest and head == APPROVALS:
        return "number"
    if not rest and head in TEXT_FACTS:
        return "text"
    raise ValueError(
        f"unknown fact {path!r}: the facts are metrics.<key>, fairness.<key>, current.<fact>, "
        f"{', '.join([APPROVALS, *sorted(TEXT_FACTS)])} and the checks {', '.join(CHECKS)}"
    )


# -- the parser ------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
      | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\])
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "abs"})
_HINTS = {"=": " (compare with ==)", "&": " (use and)", "|": " (use or)", "!": " (use not or !=)"}
_Token = tuple[str, str, int, int]  # kind, text, start, end


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    pos = 0
    while text[pos:].strip():
        match = _TOKEN.match(text, pos)
        if match is None:
            at = len(text) - len(text[pos:].lstrip())
            raise _error(f"unexpected {text[at]!r}{_HINTS.get(text[at], '')}", at)
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind), match.start(kind), match.end()))
        pos = match.end()
    return found


def _error(problem: str, at: int) -> InvalidInput:
    return InvalidInput(f"{problem} at column {at + 1}", {"field": "rules", "column": at + 1})


class _Parser:
    """Recursive descent over one rule's tokens, loosest binding first."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    def parse(self) -> Expression:
        node = self._logic("or")
        if self.index < len(self.tokens):
            raise _error(f"unexpected {self.tokens[self.index][1]!r}", self._pos())
        return node

    def _pos(self) -> int:
        return self.tokens[self.index][2] if self.index < len(self.tokens) else len(self.text)

    def _peek(self) -> tuple[str, str] | None:
        if self.index >= len(self.tokens):
            return None
        kind, value, _, _ = self.tokens[self.index]
        return kind, value

    def _at(self, *values: str) -> str | None:
        """The next token's text if it is one of these operators or keywords (never a quoted text)."""
        token = self._peek()
        return token[1] if token is not None and token[0] in ("op", "name") and token[1] in values else None

    def _take(self) -> _Token:
        if self.index >= len(self.tokens):
            raise _error("the rule ends too soon", len(self.text))
        self.index += 1
        return self.tokens[self.index - 1]

    def _expect(self, value: str) -> None:
        if self._at(value) is None:
            raise _error(f"expected {value!r}", self._pos())
        self.index += 1

    def _node(self, start: int, kind: str, type_: str, **fields: Any) -> Expression:
        text = self.text[start : self.tokens[self.index - 1][3]].strip()
        return Expression(kind, type_, text, **fields)

    def _want(self, node: Expression, wanted: str, why: str, at: int) -> None:
        if node.type != wanted:
            raise _error(f"{why}, but {node.text!r} is {node.type}", at)

    def _logic(self, word: str) -> Expression:
        start = self._pos()
        inner: Callable[[], Expression] = self._and if word == "or" else self._not
        args = [inner()]
        while self._at(word):
            self.index += 1
            args.append(inner())
        if len(args) == 1:
            return args[0]
        for arg in args:
            self._want(arg, "bool", f"{word!r} joins checks and comparisons", start)
        return self._node(start, word, "bool", args=tuple(args))

    def _and(self) -> Expression:
        return self._logic("and")

    def _not(self) -> Expression:
        if not self._at("not"):
            return self._comparison()
        start = self._pos()
        self.index += 1
        operand = self._not()
        self._want(operand, "bool", "'not' negates a check or comparison", start)
        return self._node(start, "not", "bool", args=(operand,))

    def _comparison(self) -> Expression:
        start = self._pos()
        args, ops = [self._arith(("+", "-"))], []
        while op := self._at(*_COMPARE):
            self.index += 1
            ops.append(op)
            args.append(self._arith(("+", "-")))
        if not ops:
            return args[0]
        for op, left, right in zip(ops, args, args[1:], strict=False):
            if left.type != right.type:
                raise _error(f"{left.text!r} is {left.type} and {right.text!r} is {right.type}", start)
            if op not in ("==", "!=") and left.type != "number":
                raise _error(f"{op} compares numbers, but {left.text!r} is {left.type}", start)
        return self._node(start, "cmp", "bool", ops=tuple(ops), args=tuple(args))

    def _arith(self, ops: tuple[str, ...]) -> Expression:
        start = self._pos()
        inner: Callable[[], Expression] = self._product if "+" in ops else self._unary
        node = inner()
        while op := self._at(*ops):
            self.index += 1
            right = inner()
            for operand in (node, right):
                self._want(operand, "number", f"{op!r} works on numbers", start)
            node = self._node(start, "arith", "number", ops=(op,), args=(node, right))
        return node

    def _product(self) -> Expression:
        return self._arith(("*", "/"))

    def _unary(self) -> Expression:
        if not self._at("-"):
            return self._primary()
        start = self._pos()
        self.index += 1
        operand = self._unary()
        self._want(operand, "number", "'-' negates a number", start)
        return self._node(start, "neg", "number", args=(operand,))

    def _primary(self) -> Expression:
        kind, value, start, _ = self._take()
        if kind == "op" and value == "(":
            inner = self._logic("or")
            self._expect(")")
            return self._node(
                start, inner.kind, inner.type, value=inner.value, ops=inner.ops, args=inner.args
            )
        if kind == "number":
            return Expression("lit", "number", value, Decimal(value))
        if kind == "string":
            return Expression("lit", "text", value, _unquote(value))
        if value in ("true", "false"):
            return Expression("lit", "bool", value, value == "true")
        if value == "abs":
            self._expect("(")
            inner = self._arith(("+", "-"))
            self._expect(")")
            self._want(inner, "number", "abs() takes a number", start)
            return self._node(start, "abs", "number", args=(inner,))
        if kind == "name" and value not in _KEYWORDS:
            return self._path(value, start)
        raise _error(f"unexpected {value!r}", start)

    def _path(self, name: str, start: int) -> Expression:
        path = name
        if self._at("["):  # metrics["val/loss"]: a key that is not a plain word
            self.index += 1
            kind, key, at, _ = self._take()
            if kind != "string":
                raise _error("expected a quoted key inside [ ]", at)
            self._expect("]")
            path = f"{name}.{_unquote(key)}"
        try:
            type_ = fact_type(path)
        except ValueError as exc:
            raise _error(str(exc), start) from None
        return self._node(start, "path", type_, value=path)


def parse_expression(text: str) -> Expression:
    """Parse and type-check one expression.

    Raises:
        InvalidInput: Naming the problem and its column (``details["column"]``).
    """
    return _Parser(text).parse()


# -- showing values --------------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """A fact value ready for JSON: decimals become int or float."""
    if isinstance(value, Decimal):
        whole = value == value.to_integral_value() and abs(value) < 2**53
        return int(value) if whole else float(value)
    return value


def format_value(value: Any) -> str:
    """Show a value as a rule would write it (``0.9``, ``"sklearn"``, ``true``; ``-`` for none)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | float | int):
        number = (value if isinstance(value, Decimal) else Decimal(repr(value))).normalize()
        text = format(number, "f")
        return text if len(text) <= 16 else f"{float(number):.6g}"
    return f'"{value}"'


def describe(node: Expression, value_of: Callable[[Expression], Any]) -> tuple[Any, str]:
    """``(actual, required)`` for a rule: the value of the fact it tests and what it asks of that value.

    ``metrics.auc >= current.metrics.auc - 0.01`` gives ``(0.87, ">= 0.9 (current.metrics.auc - 0.01)")``;
    a bare check gives ``(value, "true")``; ``and``/``or`` give ``(None, <the rule>)``.

    Args:
        node: The rule.
        value_of: The value of a part of it (None when it cannot be decided).
    """
    if node.kind == "path":
        return value_of(node), "true"
    if node.kind == "not" and node.args[0].kind == "path":
        return value_of(node.args[0]), "false"
    if node.kind in ("and", "or"):
        return None, "all parts true" if node.kind == "and" else "one part true"
    if node.kind != "cmp":
        return None, node.text
    args, ops = node.args, node.ops
    if len(ops) == 1:
        left, right, op = args[0], args[1], ops[0]
        if not left.paths() and right.paths():
            left, right, op = right, left, _MIRROR[op]
        other = value_of(right)
        if other is None:  # not recorded (or no current version): show what it would be
            return value_of(left), f"{op} {right.text}"
        return value_of(left), f"{op} {format_value(other)}" + (
            f" ({right.text})" if right.kind != "lit" else ""
        )
    subject = next(a for a in args if a.paths())
    parts = [a.text if a is subject else format_value(value_of(a)) for a in args]
    return value_of(subject), " ".join(p for pair in zip(parts, [*ops, ""], strict=True) for p in pair if p)
