"""Operations: requests, errors, throughput and latency percentiles per model version of an endpoint.

The figures come from the serving statistics (``serving_windows``: what every worker counted per
endpoint, version and window, read back summed by :func:`steward.serving.stats.read_windows`), so they
cover every request, not the prediction log's sample, and a model failure (a 5xx) is an error while bad
input (a 4xx) is not. The span is made of the recorder's windows (10 s by default) that start in
``[start, end)``: a window that began before ``start`` is left out, one that began before ``end`` is
counted whole.

**Latency percentiles** are read off the latency histogram (bucket bounds
:data:`steward.serving.models.LATENCY_BUCKETS_MS`, 0.1 ms to 10 s) as Prometheus'
``histogram_quantile`` does: find the bucket holding the ``q``-th share of the requests and interpolate
linearly between its bounds (the first bucket starts at 0). The result is only as fine as the bucket:
a p99 between 100 and 250 ms may be off by up to 150 ms, and within the bucket the requests are assumed
evenly spread. A percentile falling in the open bucket above the last bound is given as that bound
(10,000 ms): a lower bound of the truth, so a rule ``p99_latency_ms > 500`` still fires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import Final

from steward.core.names import validate_name
from steward.core.time import from_ms, to_ms
from steward.errors import InvalidInput
from steward.monitoring.models import OpsReport
from steward.serving.models import LATENCY_BUCKETS_MS, WindowStats
from steward.serving.stats import read_windows
from steward.store.metadata import MetadataStore

PERCENTILES: Final = (("p50_latency_ms", 0.5), ("p95_latency_ms", 0.95), ("p99_latency_ms", 0.99))
FIGURES: Final = (
    "requests", "errors", "error_rate", "throughput_rps", "mean_latency_ms", *(k for k, _ in PERCENTILES),
)  # fmt: skip
"""The keys of each version's figures in :class:`~steward.monitoring.models.OpsReport`."""


def percentile_from_histogram(counts: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The value below which a share ``q`` of a histogram's observations fall, interpolated linearly
    inside the bucket that holds it (Prometheus' ``histogram_quantile``).

    Args:
        counts: Observations per bucket: ``counts[i]`` counts values in ``(bounds[i-1], bounds[i]]``
            (``counts[0]`` those up to ``bounds[0]``, from 0), and an optional last entry those above
            ``bounds[-1]`` (so ``len(counts)`` is ``len(bounds)`` or ``len(bounds) + 1``).
        bounds: The buckets' upper bounds, increasing.
        q: The share, in [0, 1] (0.99 for p99).

    Returns:
        The percentile; ``bounds[-1]`` when it falls in the open last bucket; None when there are no
        observations.

    Raises:
        InvalidInput: For ``q`` outside [0, 1], bounds that do not increase, negative counts, or
            lengths that do not match.

    Example:
        >>> percentile_from_histogram([0, 10, 0], [1.0, 2.0], 0.5)
        1.5
    """
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 1:
        raise InvalidInput(f"q must be a share in [0, 1], not {q!r}", {"field": "q"})
    edges = [float(b) for b in bounds]
    if not edges or any(not math.isfinite(b) for b in edges) or any(b >= c for b, c in pairwise(edges)):
        raise InvalidInput("bounds must be finite and increasing", {"field": "bounds"})
    found = [int(c) for c in counts]
    if len(found) not in (len(edges), len(edges) + 1):
        raise InvalidInput(
            f"{len(found)} counts for {len(edges)} bounds: give one per bound, plus one for the open bucket",
            {"field": "counts"},
        )
    if any(c < 0 for c in found):
        raise InvalidInput("counts must not be negative", {"field": "counts"})
    total = sum(found)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(found):
        if count and seen + count >= rank:
            if index == len(edges):
                return edges[-1]
            low = edges[index - 1] if index else min(0.0, edges[0])
            return low + (edges[index] - low) * (rank - seen) / count
        seen += count
    return edges[-1]  # not reached: the last non-empty bucket holds the rank q * total <= total


def version_figures(stats: WindowStats, span_s: float) -> dict[str, float | None]:
    """One version's figures over a span of ``span_s`` seconds (see :data:`FIGURES`).

    With no requests, ``requests``, ``errors`` and ``throughput_rps`` are 0 and the rest None.
    """
    requests = stats.requests
    figures: dict[str, float | None] = {
        "requests": float(requests),
        "errors": float(stats.errors),
        "error_rate": stats.errors / requests if requests else None,
        "throughput_rps": requests / span_s,
        "mean_latency_ms": stats.latency_sum_ms / requests if requests else None,
    }
    for key, q in PERCENTILES:
        figures[key] = percentile_from_histogram(stats.buckets, LATENCY_BUCKETS_MS, q) if requests else None
    return figures


def ops_report(
    metadata: MetadataStore, project: str, endpoint: str, start: datetime, end: datetime
) -> OpsReport:
    """Requests, errors, error rate, throughput and latency percentiles per version in ``[start, end)``.

    Args:
        metadata: The database the serving statistics are written to.
        project: The endpoint's project.
        endpoint: The endpoint.
        start: The span's start (naive times are UTC).
        end: Its end; throughput is requests over ``end - start``.

    Returns:
        ``versions``: every version with statistics in the span, each with :data:`FIGURES` (``requests``
        and ``errors`` as numbers; ``error_rate`` and the latencies None for a version that answered
        nothing, such as a shadow only compared).

    Raises:
        InvalidInput: For a bad name, or ``end`` not after ``start``.
        ServiceUnavailable: If the database cannot be reached.
    """
    validate_name(project, "project")
    validate_name(endpoint, "endpoint")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, not {type(value).__name__}", {"field": name})
    low, high = to_ms(start), to_ms(end)
    if high <= low:
        raise InvalidInput("end must be after start", {"field": "end"})
    totals = read_windows(metadata, project, endpoint, low, high)
    span_s = (high - low) / 1000
    versions = {version: version_figures(stats, span_s) for version, stats in sorted(totals.items())}
    return OpsReport(start=from_ms(low), end=from_ms(high), versions=versions)
