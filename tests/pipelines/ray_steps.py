"""Module-level steps and pipelines for the Ray executor's tests."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import steward
from steward import pipeline, step


@step
def where(i: int) -> int:
    """Hold one CPU for a moment, so that several of these spread over the nodes."""
    time.sleep(0.5)
    return i


@step(resources={"cpu": 2})
def greedy() -> int:
    """Ask for more CPUs than any node of the test cluster has."""
    return 0


@step
def broken(x: int) -> int:
    """Fail with a message naming ``x``."""
    raise ValueError(f"bad input {x}")


@step(timeout=1)
def slow() -> int:
    """Sleep far past the timeout."""
    time.sleep(30)
    return 0


@step(timeout=0.5)
def stubborn() -> int:
    """Swallow the timeout (as a broad ``except`` does) and keep going."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            time.sleep(0.05)
    return 0


@step
def crash() -> int:
    """End its own worker process at once, as a segfault would."""
    os._exit(3)


@step
def numbers(n: int) -> list[int]:
    """0 … n-1: large enough to be stored as a blob rather than inline."""
    return list(range(n))


@step
def total(values: list[int], plus: int = 0) -> int:
    """The sum, plus ``plus`` (held a moment, so that parallel copies spread over the nodes)."""
    time.sleep(0.5)
    return sum(values) + plus


@step
def report(totals: list[int]) -> int:
    """Log how many totals came in to the step's run; return their sum."""
    steward.log_metric("parts", len(totals))
    return sum(totals)


@pipeline
def spread(n: int = 2000, parts: int = 4) -> Any:
    """One list, ``parts`` parallel sums of it, one report."""
    values = numbers(n)
    return report([total(values, k) for k in range(parts)])
