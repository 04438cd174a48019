"""Shadow traffic: a copy of each live request goes to the endpoint's shadow versions, off the response
path, and their answers are compared with the answer that was returned.

The copy runs as an asyncio task started after the live answer is sent, through the shadow version's
own batcher. Two answers agree when they are equal (labels) or, for numbers, close (``rtol=1e-4``,
``atol=1e-6``; an ONNX float32 graph against a float64 estimator differs in the last digits). Each
comparison is counted in the shadow version's window statistics (``shadow_compared``/``shadow_agreed``).
At most ``limit`` copies are in flight; beyond that, copies are skipped (and counted) rather than
letting a slow shadow pile up work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from steward.serving.accounting import Accounting
from steward.serving.models import TrafficPlan
from steward.serving.router import Route, Router
from steward.serving.runtime import ServedVersion

log = logging.getLogger("steward.serving")

DEFAULT_LIMIT: Final = 256
RTOL: Final = 1e-4
ATOL: Final = 1e-6

Decode = Callable[[ServedVersion], tuple[Any, int]]
"""Decodes the original request for a version (used when a shadow's signature differs)."""


def answers_agree(expected: Any, actual: Any) -> bool:
    """Whether two answers to the same rows agree: equal labels, or numbers within tolerance.

    Args:
        expected: The answer returned to the client.
        actual: The shadow's answer.
    """
    left, right = np.asarray(expected), np.asarray(actual)
    if left.shape != right.shape:
        if left.size != right.size:  # e.g. labels against probabilities
            return False
        right = right.reshape(left.shape)
    numeric = "biuf"
    if left.dtype.kind in numeric and right.dtype.kind in numeric:
        if left.dtype.kind == "f" or right.dtype.kind == "f":
            return bool(
                np.allclose(
                    left.astype(np.float64), right.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True
                )
            )
        return bool(np.array_equal(left, right))
    return bool(np.array_equal(left.astype(str), right.astype(str)))


@dataclass(frozen=True)
class Original:
    """A live request as answered: what its shadow copies start from.

    Attributes:
        served: The version that answered.
        item: Its model-ready input (reused for a shadow with the same signature).
        rows: The input's rows.
        decode: Decodes the original request for a version (a shadow with another signature).
        answers: The answer returned.
        request_id: The request's id.
        at_ms: When it arrived (Unix ms).
    """

    served: ServedVersion
    item: Any
    rows: int
    decode: Decode
    answers: Any
    request_id: str
    at_ms: int


class ShadowMirror:
    """Sends copies of live requests to shadow arms and counts how their answers compare.

    Args:
        accounting: Where the shadows' requests and comparisons are counted.
        limit: The most copies in flight at once.
    """

    def __init__(self, accounting: Accounting, limit: int = DEFAULT_LIMIT) -> None:
        self._accounting = accounting
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self.skipped = 0

    def mirror(self, plan: TrafficPlan, shadows: tuple[Route, ...], original: Original) -> None:
        """Start one copy of a request per shadow arm (returns at once).

        Args:
            plan: The endpoint's plan.
            shadows: Its shadow routes.
            original: The live request as answered.
        """
        for route in shadows:
            if len(self._tasks) >= self._limit:
                self.skipped += 1
                continue
            Router.enter(route.served)  # now, before the task's first await: its version stays loaded
            task = asyncio.ensure_future(self._copy(plan, route.served, original))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _copy(self, plan: TrafficPlan, served: ServedVersion, original: Original) -> None:
        started = time.perf_counter()
        request_id, at_ms = original.request_id, original.at_ms
        try:
            if served.signature == original.served.signature:
                item, rows = original.item, original.rows
            else:
                item, rows = original.decode(served)
            answers = await served.predict(item, rows)
        except Exception as exc:  # the shadow's failure is recorded; the live answer is already sent
            log.warning("shadow %s failed on request %s: %s", served.key, request_id, exc)
            latency = time.perf_counter() - started
            self._accounting.answered(plan, served, "shadow", 500, latency, request_id, at_ms)
            return
        finally:
            Router.leave(served)
        latency = time.perf_counter() - started
        self._accounting.answered(plan, served, "shadow", 200, latency, request_id, at_ms, item, answers)
        self._accounting.compared(plan, served, answers_agree(original.answers, answers))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` seconds) for the copies in flight to finish."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
