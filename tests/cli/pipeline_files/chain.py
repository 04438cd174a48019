"""A chain of three steps, ``load -> scale -> total``, with parameters of every convertible type."""

from __future__ import annotations

from typing import Any

from steward import pipeline, step


@step
def load(n: int) -> list[int]:
    """The numbers 0 .. n-1."""
    return list(range(n))


@step
def scale(xs: list[int], c: float) -> list[float]:
    """Each number times ``c``."""
    return [x * c for x in xs]


@step
def total(xs: list[float], shout: bool) -> float:
    """The sum (printed, when ``shout``: the step's log captures it)."""
    if shout:
        print("TOTAL", sum(xs))
    return sum(xs)


@pipeline
def chain(n: int = 3, c: float = 1.0, label: str = "run", shout: bool = False, weights=()) -> Any:
    """``total(scale(load(n), c))``; ``label`` and ``weights`` (not annotated: JSON) are only recorded."""
    return total(scale(load(n), c), shout)
