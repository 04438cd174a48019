"""A diamond with a tail: ``load -> left, right -> merge -> report``.

``right`` fails while the environment variable ``DIAMOND_RIGHT_FAILS`` is set, so a test can fail a run
and then resume it.
"""

from __future__ import annotations

import os

from steward import pipeline, step


@step
def load() -> list[int]:
    """Some numbers."""
    return [1, 2, 3]


@step
def left(xs: list[int]) -> int:
    """Their sum."""
    return sum(xs)


@step
def right(xs: list[int]) -> int:
    """Their product; fails while ``DIAMOND_RIGHT_FAILS`` is set."""
    if os.environ.get("DIAMOND_RIGHT_FAILS"):
        raise ValueError("right was told to fail")
    out = 1
    for x in xs:
        out *= x
    return out


@step
def merge(a: int, b: int) -> dict[str, int]:
    """Both results."""
    return {"sum": a, "product": b}


@step
def report(merged: dict[str, int]) -> str:
    """A line about them."""
    return f"sum {merged['sum']}, product {merged['product']}"


@pipeline
def diamond() -> str:
    """The diamond; returns the report."""
    xs = load()
    return report(merge(left(xs), right(xs)))
