"""The run filter language and its translation to SQL.

A filter is conditions joined by ``and``/``or`` with parentheses::

    metrics.auc > 0.9 and params.model = 'lr'
    (tags.team = 'risk' or tags.team = 'fraud') and status = 'FINISHED'
    params.model in ('lr', 'rf') and run_name like 'base%'

Identifiers: ``metrics.<key>``, ``params.<key>``, ``tags.<key>`` (quote keys with odd characters in
backticks or double quotes) and the attributes ``run_id``, ``run_name``, ``status``, ``start_time``,
``end_time``, ``parent_run_id``, ``user`` (optionally prefixed ``attributes.``). Metrics compare with
numbers; params and tags are text and compare with ``= != like ilike in``, as in MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select

from steward.errors import InvalidInput
from steward.store.tables import latest_metrics, params, runs, tags

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | '(?P<squote>(?:[^'\\]|\\.|'')*)'
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_][A-Za-z0-9_./\-]*))?)
    )""",
    re.VERBOSE,
)

ATTRIBUTES: dict[str, Any] = {  # run attributes a filter or an order may name
    "run_id": runs.c.id,
    "id": runs.c.id,
    "run_name": runs.c.name,
    "name": runs.c.name,
    "status": runs.c.status,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "parent_run_id": runs.c.parent_run_id,
    "user": runs.c.user_name,
}
_NUMERICATTRIBUTES = {"start_time", "end_time"}
_TEXT_OPS = {"=", "!=", "like", "ilike", "in", "not in"}
_ALL_OPS = _TEXT_OPS | {"<", "<=", ">", ">="}


@dataclass(frozen=True)
class Field:
    """A thing a condition names: ``kind`` is metrics, params, tags or attributes."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.key}"


@dataclass(frozen=True)
class Condition:
    """``field op value``."""

    field: Field
    op: str
    value: Any


@dataclass(frozen=True)
class BoolOp:
    """``and``/``or`` over sub-expressions."""

    op: str
    items: tuple[Expr, ...]


Expr = Condition | BoolOp


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidInput(
                f"filter: cannot read {text[pos : pos + 20]!r}", {"field": "filter", "position": pos}
            )
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "squote":
            value = value.replace("''", "'").replace("\\'", "'")
            kind = "string"
        out.append((kind, value))
        pos = match.end()
    return out


def parse_field(text: str) -> Field:
    """Parse ``metrics.auc``, ``params.`my key` `` or an attribute name into a ``Field``.

    Raises:
        InvalidInput: For an unknown prefix or attribute.
    """
    prefix, _, key = text.partition(".")
    if key and key[0] in '`"' and key[-1] == key[0]:
        key = key[1:-1]
    prefix = prefix.lower()
    aliases = {
        "metric": "metrics",
        "param": "params",
        "tag": "tags",
        "attribute": "attributes",
        "attr": "attributes",
    }
    prefix = aliases.get(prefix, prefix)
    if prefix in ("metrics", "params", "tags") and key:
        return Field(prefix, key)
    name = key if prefix == "attributes" else text
    if name.lower() in ATTRIBUTES:
        return Field("attributes", name.lower())
    raise InvalidInput(
        f"filter: unknown field {text!r}; use metrics.<key>, params.<key>, tags.<key> or one of "
        + ", ".join(sorted(ATTRIBUTES)),
        {"field": "filter"},
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise InvalidInput("filter: ends too early", {"field": "filter"})
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token[0] == "ident" and token[1].lower() in words:
            self.pos += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self.disjunction()
        if self.peek() is not None:
            raise InvalidInput(f"filter: unexpected {self.peek()[1]!r}", {"field": "filter"})  # type: ignore[index]
        return expr

    def disjunction(self) -> Expr:
        items = [self.conjunction()]
        while self.keyword("or"):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conjunction(self) -> Expr:
        items = [self.primary()]
        while self.keyword("and"):
            items.append(self.primary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def primary(self) -> Expr:
        if self.peek() == ("punct", "("):
            self.take()
            expr = self.disjunction()
            if self.take() != ("punct", ")"):
                raise InvalidInput("filter: missing ')'", {"field": "filter"})
            return expr
        kind, text = self.take()
        if kind != "ident":
            raise InvalidInput(f"filter: expected a field, got {text!r}", {"field": "filter"})
        field = parse_field(text)
        op = self.operator()
        value = self.list_value() if op in ("in", "not in") else self.scalar()
        return _checked(Condition(field, op, value))

    def operator(self) -> str:
        if self.keyword("not"):
            if self.keyword("in"):
                return "not in"
            if self.keyword("like"):
                return "not like"
            raise InvalidInput("filter: expected 'in' or 'like' after 'not'", {"field": "filter"})
        if self.keyword("in", "like", "ilike"):
            return self.tokens[self.pos - 1][1].lower()
        kind, text = self.take()
        if kind != "op":
            raise InvalidInput(f"filter: expected an operator, got {text!r}", {"field": "filter"})
        return {"==": "=", "<>": "!="}.get(text, text)

    def scalar(self) -> float | str:
        kind, text = self.take()
        if kind == "number":
            return float(text)
        if kind == "string":
            return text
        raise InvalidInput(
            f"filter: expected a number or a 'quoted string', got {text!r}", {"field": "filter"}
        )

    def list_value(self) -> tuple[float | str, ...]:
        if self.take() != ("punct", "("):
            raise InvalidInput("filter: 'in' needs a list like ('a', 'b')", {"field": "filter"})
        items = [self.scalar()]
        while self.peek() == ("punct", ","):
            self.take()
            items.append(self.scalar())
        if self.take() != ("punct", ")"):
            raise InvalidInput("filter: missing ')' after the list", {"field": "filter"})
        return tuple(items)


def _checked(cond: Condition) -> Condition:
    kind, op, value = cond.field.kind, cond.op, cond.value
    if op not in _ALL_OPS and op != "not like":
        raise InvalidInput(f"filter: unknown operator {op!r}", {"field": "filter"})
    if kind == "metrics":
        if op not in ("=", "!=", "<", "<=", ">", ">=") or not isinstance(value, float):
            raise InvalidInput(
                f"filter: {cond.field} compares with a number (= != < <= > >=)", {"field": "filter"}
            )
    elif kind in ("params", "tags") or cond.field.key not in _NUMERICATTRIBUTES:
        if op in ("<", "<=", ">", ">="):
            raise InvalidInput(
                f"filter: {cond.field} is text; compare it with = != like ilike in", {"field": "filter"}
            )
        values = value if isinstance(value, tuple) else (value,)
        if any(not isinstance(v, str) for v in values):
            raise InvalidInput(f"filter: {cond.field} is text; quote the value", {"field": "filter"})
    elif not isinstance(value, float):
        raise InvalidInput(f"filter: {cond.field} compares with Unix milliseconds", {"field": "filter"})
    return cond


def parse_filter(text: str) -> Expr | None:
    """Parse a filter string; an empty one gives ``None``.

    Raises:
        InvalidInput: With the field ``filter`` and what could not be read.
    """
    if not text or not text.strip():
        return None
    return _Parser(text).parse()


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool]
    if op == "=":
        result = column == value
    elif op == "!=":
        result = column != value
    elif op == "<":
        result = column < value
    elif op == "<=":
        result = column <= value
    elif op == ">":
        result = column > value
    elif op == ">=":
        result = column >= value
    elif op == "like":
        result = column.like(value)
    elif op == "not like":
        result = not_(column.like(value))
    elif op == "ilike":
        result = func.lower(column).like(func.lower(value))
    elif op == "in":
        result = column.in_(value)
    else:  # not in
        result = column.not_in(value)
    return result


def to_sql(expr: Expr) -> ColumnElement[bool]:
    """Translate a parsed filter into a SQL condition on the ``runs`` table."""
    if isinstance(expr, BoolOp):
        parts = [to_sql(item) for item in expr.items]
        return and_(*parts) if expr.op == "and" else or_(*parts)
    field, op, value = expr.field, expr.op, expr.value
    if field.kind == "attributes":
        return _compare(ATTRIBUTES[field.key], op, value)
    table = {"metrics": latest_metrics, "params": params, "tags": tags}[field.kind]
    return exists(
        select(1).where(
            table.c.run_id == runs.c.id, table.c.key == field.key, _compare(table.c.value, op, value)
        )
    )


def parse_order_by(clauses: list[str] | tuple[str, ...]) -> list[tuple[Field, bool]]:
    """Parse ``["metrics.auc DESC", "start_time"]`` into (field, descending) pairs.

    Raises:
        InvalidInput: naming ``order_by``.
    """
    out: list[tuple[Field, bool]] = []
    for clause in clauses:
        words = clause.strip().rsplit(None, 1)
        descending = False
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            descending = words[1].lower() == "desc"
            name = words[0]
        else:
            name = clause.strip()
        if not name:
            raise InvalidInput("order_by: empty clause", {"field": "order_by"})
        try:
            out.append((parse_field(name), descending))
        except InvalidInput as exc:
            raise InvalidInput(exc.message.replace("filter:", "order_by:"), {"field": "order_by"}) from None
    return out
