"""SQL of the monitoring domain, through the engine and tables of ``steward.store``.

Tenancy: every query filters by project, so a row of one project never answers a query of another,
even by id. Reference profiles and window summaries are written with ``INSERT … ON CONFLICT`` (SQLite
and PostgreSQL alike), so two monitors summarising the same hour at once both succeed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from steward.core.time import from_ms
from steward.monitoring.models import Alert, Delivery, Monitor, TableSummary
from steward.store.tables import alerts, monitoring_references, monitoring_windows, monitors, rule_streaks

FIRING = "firing"
RESOLVED = "resolved"
STATES = (FIRING, RESOLVED)


def _dialect(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


# -- monitors -----------------------------------------------------------------------------------------


def insert_monitor(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a monitor row (``spec`` already JSON)."""
    conn.execute(insert(monitors), dict(values))


def find_monitor(conn: Connection, project: str, name: str, *, lock: bool = False) -> Row[Any] | None:
    """The project's monitor called ``name`` (locked for update on PostgreSQL with ``lock``)."""
    query = select(monitors).where(monitors.c.project == project, monitors.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def monitor_rows(conn: Connection, project: str) -> list[Row[Any]]:
    """The project's monitors, by name."""
    return list(conn.execute(select(monitors).where(monitors.c.project == project).order_by(monitors.c.name)))


def to_monitor(row: Row[Any]) -> Monitor:
    """A ``Monitor`` from its row."""
    spec = json.loads(row.spec)
    return Monitor.from_json(
        {
            **spec,
            "id": row.id,
            "name": row.name,
            "endpoint": row.endpoint,
            "enabled": bool(row.enabled),
            "created_at": from_ms(row.created_at).isoformat(),
            "created_by": row.created_by,
            "last_run_at": from_ms(row.last_run_at).isoformat() if row.last_run_at is not None else None,
        }
    )


def set_enabled(conn: Connection, project: str, monitor_id: str, enabled: bool) -> None:
    """Switch a monitor on or off."""
    conn.execute(
        update(monitors)
        .where(monitors.c.project == project, monitors.c.id == monitor_id)
        .values(enabled=int(enabled))
    )


def set_last_run(conn: Connection, project: str, monitor_id: str, at_ms: int) -> None:
    """Record when a monitor last ran."""
    conn.execute(
        update(monitors)
        .where(monitors.c.project == project, monitors.c.id == monitor_id)
        .values(last_run_at=at_ms)
    )


def delete_monitor(conn: Connection, project: str, monitor_id: str) -> int:
    """Delete a monitor with its alerts and streaks; return how many alerts went with it."""
    conn.execute(
        delete(rule_streaks).where(rule_streaks.c.project == project, rule_streaks.c.monitor_id == monitor_id)
    )
    gone = conn.execute(delete(alerts).where(alerts.c.project == project, alerts.c.monitor_id == monitor_id))
    conn.execute(delete(monitors).where(monitors.c.project == project, monitors.c.id == monitor_id))
    return int(gone.rowcount or 0)


# -- alerts -------------------------------------------------------------------------------------------


def insert_alert(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert an alert row (``deliveries`` and ``actions`` already JSON)."""
    conn.execute(insert(alerts), dict(values))


def update_alert(conn: Connection, project: str, alert_id: str, **values: Any) -> None:
    """Change columns of one alert."""
    conn.execute(update(alerts).where(alerts.c.project == project, alerts.c.id == alert_id).values(**values))


def _alerts_query(project: str) -> Any:
    return (
        select(alerts, monitors.c.name.label("monitor_name"), monitors.c.endpoint.label("monitor_endpoint"))
        .join(monitors, monitors.c.id == alerts.c.monitor_id)
        .where(alerts.c.project == project, monitors.c.project == project)
    )


def open_alert(conn: Connection, project: str, monitor_id: str, rule: str) -> Row[Any] | None:
    """The firing alert of a monitor's rule, if any (there is at most one)."""
    query = _alerts_query(project).where(
        alerts.c.monitor_id == monitor_id, alerts.c.rule == rule, alerts.c.state == FIRING
    )
    return conn.execute(query.order_by(alerts.c.first_at.desc()).limit(1)).first()


def latest_resolved(conn: Connection, project: str, monitor_id: str, rule: str) -> Row[Any] | None:
    """The most recently resolved alert of a monitor's rule, if any."""
    query = _alerts_query(project).where(
        alerts.c.monitor_id == monitor_id, alerts.c.rule == rule, alerts.c.state == RESOLVED
    )
    return conn.execute(query.order_by(alerts.c.resolved_at.desc()).limit(1)).first()


def alert_row(conn: Connection, project: str, alert_id: str) -> Row[Any] | None:
    """One alert with its monitor's name and endpoint."""
    return conn.execute(_alerts_query(project).where(alerts.c.id == alert_id)).first()


def alert_rows(
    conn: Connection, project: str, monitor_id: str | None = None, state: str | None = None
) -> list[Row[Any]]:
    """The project's alerts (of one monitor, in one state, if given), newest first."""
    query = _alerts_query(project)
    if monitor_id is not None:
        query = query.where(alerts.c.monitor_id == monitor_id)
    if state is not None:
        query = query.where(alerts.c.state == state)
    return list(conn.execute(query.order_by(alerts.c.last_at.desc(), alerts.c.id.desc())))


def to_alert(row: Row[Any]) -> Alert:
    """An ``Alert`` from a row of :func:`alert_rows` (with the monitor's name and endpoint)."""
    return Alert(
        id=row.id,
        monitor=row.monitor_name,
        endpoint=row.monitor_endpoint,
        rule=row.rule,
        state=row.state,
        value=row.value,
        threshold=float(row.threshold),
        count=int(row._mapping["count"]),
        first_at=from_ms(row.first_at),
        last_at=from_ms(row.last_at),
        resolved_at=from_ms(row.resolved_at),
        delivered=None if row.delivered is None else bool(row.delivered),
        deliveries=tuple(Delivery.from_json(d) for d in json.loads(row.deliveries)),
        actions=tuple(json.loads(row.actions)),
        message=row.message,
    )


# -- streaks ------------------------------------------------------------------------------------------


def streak(conn: Connection, project: str, monitor_id: str, rule: str) -> tuple[int, int | None]:
    """How many consecutive windows broke a rule, and the end (Unix ms) of the last one counted."""
    row = conn.execute(
        select(rule_streaks.c.broken, rule_streaks.c.last_window_end).where(
            rule_streaks.c.project == project,
            rule_streaks.c.monitor_id == monitor_id,
            rule_streaks.c.rule == rule,
        )
    ).first()
    return (int(row.broken), int(row.last_window_end)) if row is not None else (0, None)


def set_streak(
    conn: Connection, project: str, monitor_id: str, rule: str, broken: int, window_end: int
) -> None:
    """Record a rule's streak after a window."""
    statement = _dialect(conn).insert(rule_streaks)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["monitor_id", "rule"],
            set_={"broken": statement.excluded.broken, "last_window_end": statement.excluded.last_window_end},
        ),
        {
            "monitor_id": monitor_id,
            "rule": rule,
            "project": project,
            "broken": broken,
            "last_window_end": window_end,
        },
    )


# -- reference profiles and window summaries ----------------------------------------------------------


def find_reference(conn: Connection, project: str, key: str) -> tuple[str, TableSummary] | None:
    """The stored reference profile called ``key``: its id and summary."""
    row = conn.execute(
        select(monitoring_references.c.id, monitoring_references.c.summary).where(
            monitoring_references.c.project == project, monitoring_references.c.key == key
        )
    ).first()
    return (row.id, TableSummary.from_json(json.loads(row.summary))) if row is not None else None


def insert_reference(conn: Connection, values: Mapping[str, Any]) -> None:
    """Store a reference profile unless one of that key exists (the first one stored stays)."""
    statement = _dialect(conn).insert(monitoring_references)
    conn.execute(statement.on_conflict_do_nothing(index_elements=["project", "key"]), dict(values))


def window_rows(
    conn: Connection, project: str, endpoint: str, reference_id: str, low_ms: int, high_ms: int
) -> dict[int, Row[Any]]:
    """The stored window summaries of an endpoint against one reference starting in ``[low_ms, high_ms)``,
    by start."""
    query = select(monitoring_windows).where(
        monitoring_windows.c.project == project,
        monitoring_windows.c.endpoint == endpoint,
        monitoring_windows.c.reference_id == reference_id,
        monitoring_windows.c.window_start >= low_ms,
        monitoring_windows.c.window_start < high_ms,
    )
    return {int(r.window_start): r for r in conn.execute(query)}


def upsert_window(conn: Connection, values: Mapping[str, Any]) -> None:
    """Store (or replace) one window's summary."""
    statement = _dialect(conn).insert(monitoring_windows)
    excluded = statement.excluded
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["project", "endpoint", "reference_id", "window_start"],
            set_={
                "window_end": excluded.window_end,
                "rows": excluded.rows,
                "summary": excluded.summary,
                "computed_at": excluded.computed_at,
            },
        ),
        dict(values),
    )
