"""From a window's reports to facts, and from facts to alerts.

**Facts** (:func:`facts_of`) are the flat dict ``steward.monitoring.rules`` documents: ``rows``;
``drift_share`` and ``dataset_drift`` (1 or 0; None for an empty window); per column, every drift
score (``psi``, ``ks``, ``ks_p_value``, ``wasserstein``, ``jensenshannon``, ``chisquare``,
``chisquare_p_value``) and ``drifted`` (1 or 0; None when the column could not be compared or its
test is undefined — a constant reference column's verdict stands without one), input
columns by name and outputs as ``out.prediction``; the performance ``overall`` metrics and ``labelled``;
operations over every version that answered (``requests``, ``errors`` and ``throughput_rps`` summed,
``error_rate`` = errors / requests, each latency percentile the worst version's, since percentiles of
different versions cannot be added — no serving statistics at all count as no traffic: 0 requests,
0 rps, the rest None); per sensitive attribute, the fairness figures.

**Alerts** (:func:`judge`), for each rule of a monitor, in one transaction:

- a run is one window; ``for N windows`` needs N consecutive runs (with different ``now``) that break the
  rule — a run at the same ``now`` as the last one counted does not count again;
- a broken rule whose streak is long enough opens an alert if none is open (``opened``: delivered to
  the channels, audited ``alert.open``); with one open, the run is counted on it (``count``, ``last_at``
  and ``value`` updated; nothing delivered);
- **cooldown**: if the rule's latest alert was resolved less than ``cooldown_s`` before this run, a
  new breach is counted on that resolved alert instead (it stays resolved; nothing is opened or
  delivered), so a flapping rule notifies at most once per cooldown; after the cooldown it opens anew;
- a rule that holds resets its streak and resolves the open alert (audited ``alert.resolve``);
- a rule whose fact is missing (no labels yet, an empty window) changes nothing: no streak, no alert
  opened, none resolved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from steward.core.ids import new_id
from steward.governance import audit
from steward.monitoring import repository as repo
from steward.monitoring.models import (
    DriftReport,
    FairnessReport,
    Monitor,
    OpsReport,
    PerformanceReport,
    TableSummary,
)
from steward.monitoring.rules import FAIRNESS_METRICS, evaluate, explain, parse_rule
from steward.monitoring.runs import COOLDOWN, COUNTED, OK, OPENED, PENDING, RESOLVED, UNKNOWN, RuleOutcome

if TYPE_CHECKING:
    from steward.store.platform import Platform

_SUMMED = ("requests", "errors", "throughput_rps")
_WORST = ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "mean_latency_ms")


def facts_of(
    rows: int,
    drift: DriftReport | None,
    performance: PerformanceReport | None,
    ops: OpsReport | None,
    fairness: Mapping[str, FairnessReport],
    reference: TableSummary | None = None,
) -> dict[str, Any]:
    """The facts rules read, from one window's reports (see the module docstring); ``reference`` tells
    constant reference columns (whose verdict stands without a statistic) from undefined ones."""
    facts: dict[str, Any] = {"rows": float(rows)}
    if drift is not None:
        facts["drift_share"] = drift.drift_share
        facts["dataset_drift"] = float(drift.dataset_drift) if drift.drift_share is not None else None
        columns = reference.columns if reference is not None else {}
        for feature in (*drift.features, *drift.prediction):
            for name, value in feature.scores.items():
                facts.setdefault(name, {})[feature.column] = value
            ref = columns.get(feature.column)
            constant = ref is not None and ref.kind == "numeric" and ref.minimum == ref.maximum
            counted = drift.current_rows > 0 and feature.reference_count > 0 and feature.current_count > 0
            verdict = counted and (feature.statistic is not None or constant)
            facts.setdefault("drifted", {})[feature.column] = float(feature.drifted) if verdict else None
    if performance is not None:
        facts.update(performance.overall)
        facts["labelled"] = float(sum(w.labelled for w in performance.windows))
    if ops is not None:
        facts.update(ops_facts(ops))
    for attribute, report in fairness.items():
        for figure in FAIRNESS_METRICS:
            facts.setdefault(figure, {})[attribute] = getattr(report, figure)
    return facts


def ops_facts(ops: OpsReport) -> dict[str, float | None]:
    """Operations over every version (sums, and the worst version's latencies)."""
    found: dict[str, float | None] = dict.fromkeys(_SUMMED, 0.0)
    for figures in ops.versions.values():
        for key in _SUMMED:
            found[key] = (found[key] or 0.0) + float(figures.get(key) or 0.0)
    requests, errors = found["requests"] or 0.0, found["errors"] or 0.0
    found["error_rate"] = errors / requests if requests else None
    for key in _WORST:
        values = [float(v) for f in ops.versions.values() if (v := f.get(key)) is not None]
        found[key] = max(values) if values else None
    return found


@dataclass
class Judgement:
    """What :func:`judge` decided: each rule's outcome and the ids of the alerts it touched."""

    outcomes: list[RuleOutcome] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


def record(
    platform: Platform,
    conn: Connection,
    action: str,
    monitor: str,
    details: Mapping[str, Any],
    outcome: str = "ok",
) -> None:
    """Append an audit entry about ``monitor`` (resource kind ``monitor``) inside ``conn``'s transaction."""
    audit.record(platform, conn, action, "monitor", monitor, outcome=outcome, details=dict(details))


def judge(
    platform: Platform, conn: Connection, monitor: Monitor, facts: Mapping[str, Any], now: int, window: str
) -> Judgement:
    """Evaluate every rule of ``monitor`` against ``facts`` and open, count or resolve its alerts (see the
    module docstring), inside the caller's transaction.

    Args:
        platform: The platform (its project and acting identity).
        conn: The open transaction.
        monitor: The monitor.
        facts: What the run gathered.
        now: The run's time (Unix ms): the end of its window and the alerts' times.
        window: The window, as text for messages (``2025-03-04T10:00 - 2025-03-05T10:15``).
    """
    project, done = platform.project, Judgement()
    for text in monitor.rules:
        rule = parse_rule(text)
        value, broken = evaluate(rule, facts)
        streak, last_end = repo.streak(conn, project, monitor.id, rule.text)
        if broken is True and last_end != now:
            streak += 1
        elif broken is False:
            streak = 0
        if broken is not None:
            repo.set_streak(conn, project, monitor.id, rule.text, streak, now)
        sentence = f"{explain(rule, value)} over {window}"
        open_row = repo.open_alert(conn, project, monitor.id, rule.text)
        details = {
            "rule": rule.text,
            "value": value,
            "threshold": rule.threshold,
            "endpoint": monitor.endpoint,
        }
        outcome, alert_id = (UNKNOWN if broken is None else OK), None
        if broken is True and open_row is not None:
            outcome, alert_id = COUNTED, open_row.id
            repo.update_alert(
                conn, project, open_row.id, count=open_row._mapping["count"] + 1, last_at=now, value=value
            )
            done.updated.append(open_row.id)
        elif broken is True and streak < rule.windows:
            outcome = PENDING
            sentence = f"{sentence}: broken {streak} of the {rule.windows} windows in a row it needs"
        elif broken is True:
            last = repo.latest_resolved(conn, project, monitor.id, rule.text)
            if last is not None and now - int(last.resolved_at) < monitor.cooldown_s * 1000:
                outcome, alert_id = COOLDOWN, last.id
                sentence = f"{sentence}: within the cooldown of alert {last.id}, counted on it"
                repo.update_alert(
                    conn, project, last.id, count=last._mapping["count"] + 1, last_at=now, value=value
                )
                done.updated.append(last.id)
            else:
                outcome, alert_id = OPENED, new_id()
                repo.insert_alert(conn, {
                    "id": alert_id, "project": project, "monitor_id": monitor.id, "rule": rule.text,
                    "state": repo.FIRING, "value": value, "threshold": rule.threshold, "count": 1,
                    "first_at": now, "last_at": now, "resolved_at": None, "delivered": None,
                    "deliveries": "[]", "actions": "[]", "message": sentence,
                })  # fmt: skip
                record(platform, conn, "alert.open", monitor.name, {"alert": alert_id, **details})
                done.opened.append(alert_id)
        elif broken is False and open_row is not None:
            outcome, alert_id = RESOLVED, open_row.id
            repo.update_alert(conn, project, open_row.id, state=repo.RESOLVED, resolved_at=now)
            record(platform, conn, "alert.resolve", monitor.name, {"alert": open_row.id, **details})
            done.resolved.append(open_row.id)
        elif broken is None and open_row is not None:
            alert_id = open_row.id
        done.outcomes.append(
            RuleOutcome(rule.text, value, broken, streak, rule.windows, outcome, alert_id, sentence)
        )
    return done


def deliveries_json(deliveries: Sequence[Any]) -> str:
    """Deliveries as stored on the alert row."""
    return json.dumps([d.to_json() for d in deliveries])
