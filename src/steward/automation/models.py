"""The automation domain's types: triggers, the pipeline action they start, firings and action results.

A **trigger** starts a pipeline when it is due: ``cron`` (``spec`` is a five-field cron expression, UTC),
``interval`` (``spec`` is a period: ``900``, ``15m``, ``1h``), or ``dataset`` (``spec`` names a dataset; a
new version of it is due; ``cursor`` holds the highest version number seen). The scheduler also keeps
one ``monitor`` trigger per monitor, made by itself: its ``spec`` names the monitor and its schedule is
the monitor's own.

A **firing** is one time a trigger was due and fired, keyed by the moment it was due (for a data
arrival: when the version was published), so that two schedulers racing for it store it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TriggerKind(StrEnum):
    """What makes a trigger due."""

    CRON = "cron"
    INTERVAL = "interval"
    DATASET = "dataset"
    MONITOR = "monitor"

    @property
    def timed(self) -> bool:
        """Whether it is due by the clock (``next_due_at``) rather than by new data or a monitor."""
        return self in (TriggerKind.CRON, TriggerKind.INTERVAL)


class Outcome(StrEnum):
    """How a firing (or one action) ended.

    ``running`` until its action returns; ``abandoned`` when its scheduler died with it running (the
    next holder of the trigger's lease marks it so).
    """

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class PipelineAction:
    """What a trigger starts: a ``@pipeline`` imported from ``target``, run with ``params``.

    Attributes:
        target: The pipeline's import path, ``package.module:attribute`` (or ``path/to/file.py:name``).
        params: Its parameters (JSON values).
        executor: Where its steps run: ``local``, ``processes``, ``processes:N``, ``ray`` …
        kind: Always ``pipeline``.
    """

    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    executor: str = "local"
    kind: str = "pipeline"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "kind": self.kind,
            "target": self.target,
            "params": dict(self.params),
            "executor": self.executor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PipelineAction:
        """Build from the dict ``to_json`` returns."""
        return cls(
            target=str(data["target"]),
            params=dict(data.get("params") or {}),
            executor=str(data.get("executor") or "local"),
            kind=str(data.get("kind") or "pipeline"),
        )


@dataclass(frozen=True)
class Trigger:
    """A schedule or a data-arrival rule and the pipeline it starts.

    Attributes:
        id: Its id (a ``monitor`` trigger has its monitor's id).
        project: The project it belongs to.
        name: Unique in the project (a ``monitor`` trigger is called ``monitor:<monitor name>``).
        kind: ``cron``, ``interval``, ``dataset`` or ``monitor``.
        spec: The cron expression, the period, the dataset's name or the monitor's name.
        action: The pipeline it starts (None for a ``monitor`` trigger: the monitor's actions apply).
        enabled: Whether the scheduler fires it.
        created_at: When it was made.
        created_by: Who made it.
        next_due_at: When a timed trigger next fires (for a monitor trigger, as of its last firing).
        last_fired_at: When it last fired.
        cursor: A ``dataset`` trigger's highest version number seen (as text).
    """

    id: str
    project: str
    name: str
    kind: TriggerKind
    spec: str
    action: PipelineAction | None
    enabled: bool
    created_at: datetime
    created_by: str
    next_due_at: datetime | None = None
    last_fired_at: datetime | None = None
    cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times in ISO 8601, UTC)."""
        return {
            "id": self.id,
            "project": self.project,
            "name": self.name,
            "kind": self.kind.value,
            "spec": self.spec,
            "action": self.action.to_json() if self.action is not None else None,
            "enabled": self.enabled,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "next_due_at": _iso(self.next_due_at),
            "last_fired_at": _iso(self.last_fired_at),
            "cursor": self.cursor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        """Build from the dict ``to_json`` returns."""
        action = data.get("action")
        created = _time(data["created_at"])
        assert created is not None
        return cls(
            id=str(data["id"]),
            project=str(data["project"]),
            name=str(data["name"]),
            kind=TriggerKind(data["kind"]),
            spec=str(data["spec"]),
            action=PipelineAction.from_json(action) if action else None,
            enabled=bool(data["enabled"]),
            created_at=created,
            created_by=str(data.get("created_by", "")),
            next_due_at=_time(data.get("next_due_at")),
            last_fired_at=_time(data.get("last_fired_at")),
            cursor=data.get("cursor"),
        )


@dataclass(frozen=True)
class Firing:
    """One firing of a trigger.

    Attributes:
        trigger_id: The trigger's id.
        trigger: The trigger's name.
        project: Its project.
        due_at: The moment it was due (its key, with the trigger's id).
        fired_at: When a scheduler claimed it.
        fired_by: Which scheduler (its lease holder name).
        outcome: ``running``, ``succeeded``, ``failed`` or ``abandoned``.
        details: What it was (``cause``) and what its action did (``result``: a pipeline run id, the
            alerts a monitor run fired and the actions they started, an error).
    """

    trigger_id: str
    trigger: str
    project: str
    due_at: datetime
    fired_at: datetime
    fired_by: str
    outcome: Outcome
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "trigger_id": self.trigger_id,
            "trigger": self.trigger,
            "project": self.project,
            "due_at": _iso(self.due_at),
            "fired_at": _iso(self.fired_at),
            "fired_by": self.fired_by,
            "outcome": self.outcome.value,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Firing:
        """Build from the dict ``to_json`` returns."""
        due, fired = _time(data["due_at"]), _time(data["fired_at"])
        assert due is not None and fired is not None
        return cls(
            trigger_id=str(data["trigger_id"]),
            trigger=str(data["trigger"]),
            project=str(data["project"]),
            due_at=due,
            fired_at=fired,
            fired_by=str(data["fired_by"]),
            outcome=Outcome(data["outcome"]),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class ActionResult:
    """What one automatic action did, in the form an alert's ``actions`` and the audit trail hold.

    Attributes:
        kind: ``pipeline`` (a trigger's), ``retrain`` (an alert's pipeline) or ``rollback``.
        outcome: ``succeeded`` or ``failed``.
        details: A pipeline's ``run_id``, ``state`` and ``error``; a rollback's ``rollout``, ``stable``
            version and ``plan``; the error of an action that could not start.
    """

    kind: str
    outcome: Outcome
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """Whether the action did what it was for."""
        return self.outcome is Outcome.SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        """Return ``{"kind", "outcome", "details"}`` (``Alert.actions`` holds these)."""
        return {"kind": self.kind, "outcome": self.outcome.value, "details": dict(self.details)}
