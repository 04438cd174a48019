"""What a monitor run and a monitoring report return: the facts and reports gathered over one window,
each rule's outcome, and the alerts opened, updated and resolved.

Both have ``to_json`` (complete: every report, summary and note, for the API and the HTML report) and
``from_json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from steward.monitoring.models import (
    Alert,
    DriftReport,
    FairnessReport,
    OpsReport,
    PerformanceReport,
    TableSummary,
)

OPENED: Final = "opened"
"""The rule broke (for its N windows) with no alert open: a new alert, delivered to the channels."""
COUNTED: Final = "counted"
"""The rule broke again while its alert was open: counted on it, nothing delivered."""
COOLDOWN: Final = "cooldown"
"""The rule broke again less than the cooldown after its last alert resolved: counted on that alert,
which stays resolved; nothing is opened or delivered."""
RESOLVED: Final = "resolved"
"""The rule holds again: its open alert is resolved."""
PENDING: Final = "pending"
"""The rule broke but fewer consecutive windows than its ``for N windows`` so far."""
OK: Final = "ok"
"""The rule holds and no alert was open."""
UNKNOWN: Final = "unknown"
"""The fact the rule reads could not be gathered (no labels, an empty window …): nothing changes."""


@dataclass(frozen=True)
class RuleOutcome:
    """One rule in one run.

    Attributes:
        rule: The rule's text.
        value: The observed value (None when it could not be gathered).
        broken: Whether it broke the rule (None when unknown).
        streak: Consecutive windows (runs) that broke it, this one included.
        windows: How many it needs before it fires.
        outcome: :data:`OPENED`, :data:`COUNTED`, :data:`COOLDOWN`, :data:`RESOLVED`, :data:`PENDING`,
            :data:`OK` or :data:`UNKNOWN`.
        alert_id: The alert it opened, counted on or resolved.
        message: A sentence about it.
    """

    rule: str
    value: float | None
    broken: bool | None
    streak: int
    windows: int
    outcome: str
    alert_id: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "rule": self.rule,
            "value": self.value,
            "broken": self.broken,
            "streak": self.streak,
            "windows": self.windows,
            "outcome": self.outcome,
            "alert_id": self.alert_id,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleOutcome:
        """Build from the dict ``to_json`` returns."""
        return cls(
            str(data["rule"]), data.get("value"), data.get("broken"), int(data["streak"]),
            int(data["windows"]), str(data["outcome"]), data.get("alert_id"), str(data.get("message", "")),
        )  # fmt: skip


@dataclass(frozen=True)
class MonitoringReport:
    """Everything observed about an endpoint over one window ``[start, end)``: what
    ``MonitoringService.report`` returns and what a monitor run evaluates its rules against.

    Attributes:
        endpoint: The endpoint.
        start: The window's start.
        end: Its end (the run's ``now``).
        rows: Prediction rows answered in it (shadow answers left out).
        served: ``{"model", "version", "rows"}`` of the version that answered most rows (None if none).
        reference: ``{"key", "id", "kind", "rows", …}`` of the reference profile (None if there is none).
        reference_summary: The reference profile (inputs, then ``out.*`` outputs when compared).
        current_summary: The window, counted in the reference's bins (None without a reference).
        drift: Input and output drift (None without a reference or rows).
        performance: Quality on late labels (None if it could not be computed).
        fairness: Per sensitive attribute asked for, its report.
        ops: Latency, errors and throughput per version (None if not available).
        facts: The numbers the rules read (``steward.monitoring.rules``).
        notes: Why something is missing or partial.
    """

    endpoint: str
    start: datetime
    end: datetime
    rows: int
    served: Mapping[str, Any] | None
    reference: Mapping[str, Any] | None
    reference_summary: TableSummary | None
    current_summary: TableSummary | None
    drift: DriftReport | None
    performance: PerformanceReport | None
    fairness: Mapping[str, FairnessReport]
    ops: OpsReport | None
    facts: Mapping[str, Any]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "endpoint": self.endpoint,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "served": dict(self.served) if self.served is not None else None,
            "reference": dict(self.reference) if self.reference is not None else None,
            "reference_summary": self.reference_summary.to_json() if self.reference_summary else None,
            "current_summary": self.current_summary.to_json() if self.current_summary else None,
            "drift": self.drift.to_json() if self.drift is not None else None,
            "performance": self.performance.to_json() if self.performance is not None else None,
            "fairness": {k: v.to_json() for k, v in self.fairness.items()},
            "ops": self.ops.to_json() if self.ops is not None else None,
            "facts": _plain(self.facts),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitoringReport:
        """Build from the dict ``to_json`` returns."""

        def summary(key: str) -> TableSummary | None:
            found = data.get(key)
            return TableSummary.from_json(found) if found is not None else None

        return cls(
            endpoint=str(data["endpoint"]),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            rows=int(data["rows"]),
            served=data.get("served"),
            reference=data.get("reference"),
            reference_summary=summary("reference_summary"),
            current_summary=summary("current_summary"),
            drift=DriftReport.from_json(data["drift"]) if data.get("drift") is not None else None,
            performance=(
                PerformanceReport.from_json(data["performance"])
                if data.get("performance") is not None
                else None
            ),
            fairness={k: FairnessReport.from_json(v) for k, v in (data.get("fairness") or {}).items()},
            ops=OpsReport.from_json(data["ops"]) if data.get("ops") is not None else None,
            facts=dict(data.get("facts") or {}),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class MonitorRun:
    """One run of a monitor: what it gathered, each rule's outcome and the alerts it touched.

    Attributes:
        monitor: The monitor's name.
        report: The window's facts and reports.
        rules: Each rule's outcome, in the monitor's order.
        opened: Alerts opened by this run (with their deliveries).
        updated: Alerts this run counted a repeat on (open ones, or resolved ones within the cooldown).
        resolved: Alerts this run resolved.
    """

    monitor: str
    report: MonitoringReport
    rules: tuple[RuleOutcome, ...]
    opened: tuple[Alert, ...] = ()
    updated: tuple[Alert, ...] = ()
    resolved: tuple[Alert, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def facts(self) -> Mapping[str, Any]:
        """The numbers the rules were evaluated against."""
        return self.report.facts

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "monitor": self.monitor,
            "report": self.report.to_json(),
            "rules": [r.to_json() for r in self.rules],
            "opened": [a.to_json() for a in self.opened],
            "updated": [a.to_json() for a in self.updated],
            "resolved": [a.to_json() for a in self.resolved],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorRun:
        """Build from the dict ``to_json`` returns."""
        return cls(
            monitor=str(data["monitor"]),
            report=MonitoringReport.from_json(data["report"]),
            rules=tuple(RuleOutcome.from_json(r) for r in data["rules"]),
            opened=tuple(Alert.from_json(a) for a in data.get("opened", ())),
            updated=tuple(Alert.from_json(a) for a in data.get("updated", ())),
            resolved=tuple(Alert.from_json(a) for a in data.get("resolved", ())),
            notes=tuple(data.get("notes", ())),
        )


def _plain(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in facts.items()}
