"""What the serving runtime and the layers above it (deploy, monitoring) agree on.

A server serves *endpoints*. Each endpoint has a :class:`TrafficPlan`: the model it serves and its
*arms*, one per model version, each with a role and a share of live traffic. ``deploy`` writes plans
(rollouts move weights between arms); the server reads them through a :class:`TrafficSource`, loads
and warms every version a plan names, and only then routes by the new plan. What the server sees is
summed per endpoint, version and time window into :class:`WindowStats`, which rollout analysis and
monitoring read back from the ``serving_windows`` table.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from steward.core.names import validate_name
from steward.errors import InvalidInput

ROLES: Final = ("stable", "canary", "candidate", "shadow", "standby")
"""Arm roles. ``stable``: the version that holds the endpoint. ``canary``: a new version taking a
growing share. ``candidate``: the B arm of an A/B test. ``shadow``: gets a copy of live traffic, its
answers compared and never returned. ``standby``: kept loaded and warm (blue-green's previous version)
so switching back is instant; it gets no traffic."""

LIVE_ROLES: Final = frozenset({"stable", "canary", "candidate"})
"""Roles whose weight is a share of live traffic (the weights of live arms sum to 1)."""

LATENCY_BUCKETS_MS: Final = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
)  # fmt: skip
"""Upper bounds (ms) of the latency histogram; a last, open bucket counts everything slower."""


@dataclass(frozen=True)
class Arm:
    """One model version of an endpoint.

    Args:
        version: The registry version string (``"1.2.0"``).
        role: One of :data:`ROLES`.
        weight: Its share of live traffic in [0, 1]; 0 for ``shadow`` and ``standby`` arms.
    """

    version: str
    role: str
    weight: float = 0.0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidInput(
                f"unknown arm role {self.role!r}; one of {', '.join(ROLES)}", {"field": "role"}
            )
        if not 0.0 <= self.weight <= 1.0 or math.isnan(self.weight):
            raise InvalidInput(f"an arm's weight must be in [0, 1], not {self.weight}", {"field": "weight"})
        if self.role not in LIVE_ROLES and self.weight != 0.0:
            raise InvalidInput(
                f"a {self.role} arm takes no live traffic: its weight must be 0", {"field": "weight"}
            )


@dataclass(frozen=True)
class TrafficPlan:
    """How one endpoint's traffic is split across the versions of its model.

    Args:
        endpoint: The endpoint's name (for ``steward serve churn@production``: the model's name).
        model: The registered model's name.
        arms: The versions it serves; live arms' weights sum to 1.
        project: The project the endpoint belongs to.
        sticky_key: For A/B tests: the request field (JSON key or ``X-Steward-Key`` header) whose hash
            picks the arm, so one user always sees one arm. None: each request is drawn at random.
        revision: Increases with every change; a server re-routes when it sees a new revision.
        feature_service: The feature service whose online features complete each request: requests
            then carry entity keys and the server reads the model's inputs from the online store
            (``steward.serving.features``). None: requests carry the model's inputs.
    """

    endpoint: str
    model: str
    arms: tuple[Arm, ...]
    project: str = "default"
    sticky_key: str | None = None
    revision: int = 0
    feature_service: str | None = None

    def __post_init__(self) -> None:
        live = [arm for arm in self.arms if arm.role in LIVE_ROLES]
        if not live:
            raise InvalidInput(f"endpoint {self.endpoint!r} has no live version", {"field": "arms"})
        total = sum(arm.weight for arm in live)
        if abs(total - 1.0) > 1e-6:
            raise InvalidInput(
                f"the live weights of endpoint {self.endpoint!r} sum to {total:g}, not 1", {"field": "arms"}
            )
        versions = [arm.version for arm in self.arms]
        if len(set(versions)) != len(versions):
            raise InvalidInput(f"endpoint {self.endpoint!r} names a version twice", {"field": "arms"})
        if self.feature_service is not None:
            validate_name(self.feature_service, "feature_service")

    @property
    def live(self) -> tuple[Arm, ...]:
        """The arms that answer requests (weight > 0)."""
        return tuple(arm for arm in self.arms if arm.role in LIVE_ROLES and arm.weight > 0)

    @property
    def shadows(self) -> tuple[Arm, ...]:
        """The arms that get a copy of live traffic."""
        return tuple(arm for arm in self.arms if arm.role == "shadow")

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the plan names, in any role and at any weight (the router loads only those it
        holds: ``steward.serving.router.held``)."""
        return tuple(arm.version for arm in self.arms)


class TrafficSource(Protocol):
    """Where a server reads the plans of the endpoints it serves (``deploy`` provides one over the
    database; ``serving.sources`` has one for a fixed model reference).

    Example:
        >>> class Fixed:
        ...     def __init__(self, plan: TrafficPlan) -> None:
        ...         self.plan = plan
        ...     def plans(self) -> Sequence[TrafficPlan]:
        ...         return [self.plan]
    """

    def plans(self) -> Sequence[TrafficPlan]:
        """Return the current plan of every endpoint served (called every poll interval)."""
        ...


@dataclass
class WindowStats:
    """Counts for one endpoint version over some time, mergeable by addition.

    Attributes:
        requests: Requests answered (errors included).
        errors: Requests that failed inside the model (a 5xx); bad input (4xx) is not the model's error.
        latency_sum_ms: The sum of latencies, for the mean.
        buckets: Counts per :data:`LATENCY_BUCKETS_MS` bucket plus the open last one.
        shadow_compared: For a shadow arm: answers compared with the stable arm's.
        shadow_agreed: Of those, how many agreed.
    """

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    shadow_compared: int = 0
    shadow_agreed: int = 0

    def observe(self, latency_ms: float, error: bool = False) -> None:
        """Count one request."""
        self.requests += 1
        self.errors += int(error)
        self.latency_sum_ms += latency_ms
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1

    def merge(self, other: WindowStats) -> WindowStats:
        """Add ``other``'s counts into this one and return it."""
        self.requests += other.requests
        self.errors += other.errors
        self.latency_sum_ms += other.latency_sum_ms
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.shadow_compared += other.shadow_compared
        self.shadow_agreed += other.shadow_agreed
        return self

    @property
    def error_rate(self) -> float:
        """Errors per request (0 with no requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_ms(self) -> float:
        """The mean latency (0 with no requests)."""
        return self.latency_sum_ms / self.requests if self.requests else 0.0

    @property
    def agreement(self) -> float | None:
        """The share of compared shadow answers that agreed, or None when none were compared."""
        return self.shadow_agreed / self.shadow_compared if self.shadow_compared else None

    def quantile_ms(self, q: float) -> float:
        """The latency at quantile ``q`` (0 < q <= 1), read off the histogram: the upper bound of the
        bucket it falls in, interpolated linearly inside it (as Prometheus' ``histogram_quantile``).
        Returns 0 with no requests and ``inf`` when it falls in the open last bucket."""
        total = sum(self.buckets)
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                if index == len(LATENCY_BUCKETS_MS):
                    return math.inf
                low = LATENCY_BUCKETS_MS[index - 1] if index else 0.0
                high = LATENCY_BUCKETS_MS[index]
                return low + (high - low) * (rank - seen) / count
            seen += count
        return math.inf

    def buckets_json(self) -> str:
        """The histogram as the ``serving_windows.latency_buckets`` column stores it."""
        return json.dumps(self.buckets)

    @staticmethod
    def parse_buckets(text: str) -> list[int]:
        """Read a ``latency_buckets`` column back (a shorter list is padded: buckets never shrink)."""
        values = [int(v) for v in json.loads(text)]
        width = len(LATENCY_BUCKETS_MS) + 1
        return (values + [0] * width)[:width]


@dataclass(frozen=True)
class PredictionRecord:
    """One answered request, as the server hands it to the prediction log.

    Args:
        project: The endpoint's project.
        endpoint: The endpoint (or, for ``steward serve churn@production``, the model's name).
        model: The registered model.
        version: The version that answered (for a shadow arm: the shadow version).
        role: The arm's role (:data:`ROLES`).
        request_id: The request's id (``X-Request-Id`` if the client sent one, else generated); what
            ``steward.log_labels`` joins on.
        at_ms: When the request arrived (Unix ms, UTC).
        inputs: What the model received for this request after the signature check: a DataFrame or
            :class:`NamedColumns` (columns signature) or an ndarray (tensor signature); one request may
            hold several rows.
        outputs: The model's answer for those rows (an ndarray, one entry or row per input row).
        latency_ms: Time from the request's arrival to its answer.
        status: The HTTP status sent back.
    """

    project: str
    endpoint: str
    model: str
    version: str
    role: str
    request_id: str
    at_ms: int
    inputs: object
    outputs: object
    latency_ms: float
    status: int = 200


class PredictionSink(Protocol):
    """Where the server hands answered requests; must return at once (never block the response)."""

    def offer(self, record: PredictionRecord) -> None:
        """Queue ``record`` (or count it as dropped when the queue is full)."""
        ...


@dataclass(frozen=True)
class NamedColumns:
    """A 2-D array whose columns have names: how the server hands a columns-signature input to the
    prediction log without building a DataFrame per request (the log concatenates many at once).

    Args:
        names: The column names, in the array's column order.
        values: The rows, shape ``(rows, len(names))``.
    """

    names: tuple[str, ...]
    values: Any

    def __len__(self) -> int:
        return len(self.values)
