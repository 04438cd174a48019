"""The deploy domain's types: endpoints, rollouts and their events, rollout options, and the
``DeployBackend`` protocol that the embedded service and the HTTP client both implement.

An **endpoint** names one registered model and owns a traffic plan: its *arms* (``serving.models.Arm``:
a version, a role, a share of live traffic), whose ``revision`` grows with every change. An endpoint may
declare a *feature service*: its requests then carry entity keys, and the server reads the model's
inputs from the online store (``serving.features``). A **rollout**
moves a candidate version onto the endpoint by one strategy:

- ``blue-green``: the candidate is listed as ``standby`` (loaded and warmed, no traffic) until the server
  says it is ready, then takes 100% at once; the old version stays as ``standby`` for instant switch-back.
- ``canary``: the candidate takes a growing share (``steps``, default 5 -> 25 -> 50 -> 100 %); each step is
  analysed over live statistics against thresholds and the stable version; a failure rolls back.
- ``ab``: two live arms (``stable`` is A, ``candidate`` B) split by ``weights``, sticky by a request key;
  ``results`` compares their outcomes from late labels with a significance test.
- ``shadow``: the candidate gets a copy of live traffic; its answers are compared, never returned.

A rollout is ``pending`` (blue-green: warming, no traffic yet) or ``running`` (at step ``step``) until it
ends ``succeeded``, ``rolled_back`` or ``aborted``. One endpoint has at most one active rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from steward.deploy.options import RolloutOptions, Strategy, options_from_json
from steward.serving.models import Arm, TrafficPlan

if TYPE_CHECKING:
    from steward.deploy.controller import Readiness

DEFAULT_GATE_ALIAS = "production"
"""The alias whose policies gate what an endpoint may serve, unless the endpoint names another."""


class RolloutState(StrEnum):
    """Where a rollout is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def active(self) -> bool:
        """Whether the rollout is still under way."""
        return self in (RolloutState.PENDING, RolloutState.RUNNING)


# -- arms, endpoints, rollouts ----------------------------------------------------------------------


def arm_to_json(arm: Arm) -> dict[str, Any]:
    """An arm as a JSON-ready dict."""
    return {"version": arm.version, "role": arm.role, "weight": arm.weight}


def arm_from_json(data: Mapping[str, Any]) -> Arm:
    """An arm from ``arm_to_json``'s dict."""
    return Arm(str(data["version"]), str(data["role"]), float(data.get("weight", 0.0)))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Endpoint:
    """A named entry point to one registered model, with its traffic plan.

    Attributes:
        id: Its id.
        name: Its name (unique in the project).
        project: The project it belongs to.
        model: The registered model it serves.
        description: What it is for.
        gate_alias: The alias whose policies every version deployed here must pass.
        sticky_key: The request field whose hash picks an A/B arm (None: drawn per request).
        revision: The traffic plan's revision.
        arms: The traffic plan's arms.
        created_at: When it was created.
        created_by: Who created it.
        updated_at: When its plan last changed.
        active_rollout: The id of the rollout under way, if any.
        feature_service: The feature service whose online features complete its requests, if any.
    """

    id: str
    name: str
    project: str
    model: str
    description: str
    gate_alias: str
    sticky_key: str | None
    revision: int
    arms: tuple[Arm, ...]
    created_at: datetime
    created_by: str
    updated_at: datetime
    active_rollout: str | None = None
    feature_service: str | None = None

    @property
    def stable(self) -> str:
        """The version holding the endpoint (the ``stable`` arm)."""
        return next(arm.version for arm in self.arms if arm.role == "stable")

    @property
    def plan(self) -> TrafficPlan:
        """The traffic plan a server routes by."""
        return TrafficPlan(
            self.name, self.model, self.arms, self.project, self.sticky_key, self.revision,
            self.feature_service,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times in ISO 8601, UTC)."""
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "model": self.model,
            "description": self.description,
            "gate_alias": self.gate_alias,
            "sticky_key": self.sticky_key,
            "revision": self.revision,
            "arms": [arm_to_json(a) for a in self.arms],
            "stable": self.stable,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "updated_at": _iso(self.updated_at),
            "active_rollout": self.active_rollout,
            "feature_service": self.feature_service,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoint:
        """Build from the dict ``to_json`` returns."""
        return cls(
            id=data["id"],
            name=data["name"],
            project=data["project"],
            model=data["model"],
            description=data.get("description", ""),
            gate_alias=data.get("gate_alias", DEFAULT_GATE_ALIAS),
            sticky_key=data.get("sticky_key"),
            revision=int(data["revision"]),
            arms=tuple(arm_from_json(a) for a in data["arms"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=data.get("created_by", ""),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            active_rollout=data.get("active_rollout"),
            feature_service=data.get("feature_service"),
        )


@dataclass(frozen=True)
class RolloutEvent:
    """One thing that happened to a rollout.

    Attributes:
        seq: Its number within the rollout, from 1.
        at: When.
        kind: ``started``, ``step``, ``analysis``, ``ready``, ``promoted``, ``succeeded``, ``rolled_back``
            or ``aborted``.
        step: The step the rollout was at after it.
        actor: Who (or, for the controller, on whose behalf).
        message: A sentence for a person.
        details: The plan after it (``arms``), the analysis that decided it, and so on.
    """

    seq: int
    at: datetime
    kind: str
    step: int
    actor: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "seq": self.seq,
            "at": _iso(self.at),
            "kind": self.kind,
            "step": self.step,
            "actor": self.actor,
            "message": self.message,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutEvent:
        """Build from the dict ``to_json`` returns."""
        return cls(
            int(data["seq"]),
            datetime.fromisoformat(data["at"]),
            data["kind"],
            int(data["step"]),
            data.get("actor", ""),
            data.get("message", ""),
            dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Rollout:
    """One rollout of a candidate version onto an endpoint.

    Attributes:
        id: Its id.
        endpoint: The endpoint's name.
        strategy: How it moves traffic.
        version: The candidate version.
        baseline: The stable version when it started (where a rollback returns).
        state: Where it is.
        step: The step it is at (canary: an index into ``options.steps``; others: 0, or 1 once switched).
        options: Its options.
        step_started_at: When the current step began (what its analysis reads from).
        analysis: The last analysis (``analysis.Analysis.to_json``), if any.
        message: The latest news, for a person.
        created_at: When it started.
        created_by: Who started it.
        ended_at: When it ended, if it has.
        events: What happened, oldest first (empty in listings).
    """

    id: str
    endpoint: str
    strategy: Strategy
    version: str
    baseline: str
    state: RolloutState
    step: int
    options: RolloutOptions
    step_started_at: datetime
    analysis: Mapping[str, Any] | None
    message: str
    created_at: datetime
    created_by: str
    ended_at: datetime | None = None
    events: tuple[RolloutEvent, ...] = ()

    @property
    def active(self) -> bool:
        """Whether it is still under way."""
        return self.state.active

    @property
    def share(self) -> float:
        """The candidate's share of live traffic the strategy gives it at this step, in percent."""
        if self.strategy is Strategy.CANARY:
            return self.options.steps[min(self.step, len(self.options.steps) - 1)]
        if self.strategy is Strategy.AB:
            return self.options.weights[1]
        if self.strategy is Strategy.BLUE_GREEN:
            return 100.0 if self.step else 0.0
        return 0.0

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "strategy": self.strategy.value,
            "version": self.version,
            "baseline": self.baseline,
            "state": self.state.value,
            "step": self.step,
            "share": self.share,
            "options": self.options.to_json(self.strategy),
            "step_started_at": _iso(self.step_started_at),
            "analysis": dict(self.analysis) if self.analysis is not None else None,
            "message": self.message,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "ended_at": _iso(self.ended_at),
            "events": [e.to_json() for e in self.events],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollout:
        """Build from the dict ``to_json`` returns."""
        strategy = Strategy(data["strategy"])
        started = _time(data["step_started_at"])
        created = _time(data["created_at"])
        assert started is not None and created is not None
        return cls(
            id=data["id"],
            endpoint=data["endpoint"],
            strategy=strategy,
            version=data["version"],
            baseline=data["baseline"],
            state=RolloutState(data["state"]),
            step=int(data["step"]),
            options=options_from_json(data.get("options") or {}),
            step_started_at=started,
            analysis=data.get("analysis"),
            message=data.get("message", ""),
            created_at=created,
            created_by=data.get("created_by", ""),
            ended_at=_time(data.get("ended_at")),
            events=tuple(RolloutEvent.from_json(e) for e in data.get("events") or ()),
        )


@dataclass(frozen=True)
class EndpointStatus:
    """An endpoint, its latest rollout and what each of its versions served lately.

    Attributes:
        endpoint: The endpoint.
        rollout: Its latest rollout (with events), if it ever had one.
        stats: Per version: requests, errors, error rate, latency quantiles and shadow agreement
            (``stats.stats_json``) since the rollout's current step began, or over the last
            ``since_s`` seconds without one.
        since: The start of the period ``stats`` covers.
    """

    endpoint: Endpoint
    rollout: Rollout | None
    stats: Mapping[str, Mapping[str, Any]]
    since: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "endpoint": self.endpoint.to_json(),
            "rollout": self.rollout.to_json() if self.rollout is not None else None,
            "stats": {k: dict(v) for k, v in self.stats.items()},
            "since": _iso(self.since),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndpointStatus:
        """Build from the dict ``to_json`` returns."""
        rollout = data.get("rollout")
        since = _time(data["since"])
        assert since is not None
        return cls(
            Endpoint.from_json(data["endpoint"]),
            Rollout.from_json(rollout) if rollout else None,
            {k: dict(v) for k, v in (data.get("stats") or {}).items()},
            since,
        )


# -- the backend protocol ---------------------------------------------------------------------------


class DeployBackend(Protocol):
    """The deploy operations, embedded (``DeployService``) or over HTTP (``steward.client.deploy``).

    Both raise the errors of ``steward.errors``; one contract suite runs against both. Results and
    advance outcomes are JSON-ready dicts (``analysis`` describes them).
    """

    def create_endpoint(
        self,
        name: str,
        model: str,
        version: str,
        *,
        description: str = "",
        gate_alias: str = DEFAULT_GATE_ALIAS,
        sticky_key: str | None = None,
        feature_service: str | None = None,
    ) -> Endpoint:
        """Create an endpoint serving ``version`` of ``model``, through the policy gate (its requests
        completed from ``feature_service``'s online features, if given)."""
        ...

    def update_endpoint(
        self,
        name: str,
        *,
        description: str | None = None,
        sticky_key: str | None = None,
        feature_service: str | None = None,
        clear_sticky_key: bool = False,
        clear_feature_service: bool = False,
        reason: str = "",
    ) -> Endpoint:
        """Change an endpoint's description, sticky key or feature service (only what is given), bumping
        its plan's revision with the arms unchanged."""
        ...

    def get_endpoint(self, name: str) -> Endpoint:
        """Return one endpoint."""
        ...

    def list_endpoints(self) -> list[Endpoint]:
        """Return the project's endpoints, by name."""
        ...

    def delete_endpoint(self, name: str, reason: str = "") -> None:
        """Delete an endpoint that has no rollout under way."""
        ...

    def start_rollout(
        self, endpoint: str, strategy: str, version: str, options: Mapping[str, Any] | None = None
    ) -> Rollout:
        """Start rolling ``version`` out onto ``endpoint``, through the policy gate."""
        ...

    def get_rollout(self, endpoint: str, rollout_id: str | None = None) -> Rollout:
        """Return a rollout (the latest by default) with its events."""
        ...

    def list_rollouts(self, endpoint: str) -> list[Rollout]:
        """Return the endpoint's rollouts, newest first (without events)."""
        ...

    def status(self, endpoint: str) -> EndpointStatus:
        """Return the endpoint, its latest rollout and its versions' recent statistics."""
        ...

    def advance(self, endpoint: str, *, readiness: Readiness | None = None) -> dict[str, Any]:
        """Run one analysis step of the active rollout now (``readiness`` tells a blue-green rollout
        whether its candidate is ready)."""
        ...

    def promote(self, endpoint: str, *, finish: bool = False, reason: str = "") -> Rollout:
        """Move the active rollout one step on (or to its end, with ``finish``), skipping analysis."""
        ...

    def rollback(self, endpoint: str, reason: str = "") -> Rollout:
        """Send all traffic back to the rollout's baseline version at once."""
        ...

    def abort(self, endpoint: str, reason: str = "") -> Rollout:
        """Stop the active rollout and take its candidate out of the plan."""
        ...

    def results(self, endpoint: str, rollout_id: str | None = None) -> dict[str, Any]:
        """Per-arm outcomes of a rollout and, for A/B, the significance test."""
        ...

    def export(
        self, endpoint: str, target: str, version: str | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The Kubernetes, KServe or Docker files of a version of the endpoint's model."""
        ...
