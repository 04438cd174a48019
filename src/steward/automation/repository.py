"""SQL of the automation domain: triggers, their firings and the scheduler's leases.

Tenancy: triggers are found by project and name; the scheduler alone reads across projects (it acts in
each trigger's project). Leases are named by a trigger's id, which is unique across projects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from steward.automation.models import Firing, Outcome, PipelineAction, Trigger, TriggerKind
from steward.core.time import from_ms
from steward.store.tables import monitors, scheduler_leases, trigger_firings, triggers

# -- triggers ------------------------------------------------------------------------------------------


def insert_trigger(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert one trigger row (``spec`` already JSON)."""
    conn.execute(insert(triggers), dict(values))


def spec_json(spec: str, action: PipelineAction | None, **extra: Any) -> str:
    """The ``spec`` column: the trigger's spec, its action and any kind-specific facts."""
    return json.dumps({"spec": spec, "action": action.to_json() if action else None, **extra})


def find_trigger(conn: Connection, project: str, name: str) -> Row[Any] | None:
    """The project's trigger row called ``name``."""
    query = select(triggers).where(triggers.c.project == project, triggers.c.name == name)
    return conn.execute(query).first()


def trigger_by_id(conn: Connection, trigger_id: str, *, lock: bool = False) -> Row[Any] | None:
    """A trigger row by id (locked for update on PostgreSQL with ``lock``)."""
    query = select(triggers).where(triggers.c.id == trigger_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def trigger_rows(conn: Connection, project: str) -> list[Row[Any]]:
    """The project's trigger rows, by name."""
    query = select(triggers).where(triggers.c.project == project).order_by(triggers.c.name)
    return list(conn.execute(query))


def candidate_rows(conn: Connection, now: int) -> list[Row[Any]]:
    """Every project's enabled triggers that may be due at ``now``: timed ones whose time has come, and
    every ``dataset`` trigger (whether a new version arrived is asked of the data domain)."""
    timed = triggers.c.kind.in_([TriggerKind.CRON.value, TriggerKind.INTERVAL.value]) & (
        triggers.c.next_due_at <= now
    )
    query = (
        select(triggers)
        .where(triggers.c.enabled == 1, timed | (triggers.c.kind == TriggerKind.DATASET.value))
        .order_by(triggers.c.next_due_at, triggers.c.id)
    )
    return list(conn.execute(query))


def monitor_trigger_rows(conn: Connection) -> list[Row[Any]]:
    """Every project's ``monitor`` trigger rows (the scheduler's, one per monitor it has seen)."""
    return list(conn.execute(select(triggers).where(triggers.c.kind == TriggerKind.MONITOR.value)))


def update_trigger(conn: Connection, trigger_id: str, **values: Any) -> None:
    """Set columns of one trigger."""
    conn.execute(update(triggers).where(triggers.c.id == trigger_id).values(**values))


def delete_trigger(conn: Connection, trigger_id: str) -> None:
    """Delete a trigger with its firings and lease."""
    conn.execute(delete(trigger_firings).where(trigger_firings.c.trigger_id == trigger_id))
    conn.execute(delete(scheduler_leases).where(scheduler_leases.c.name == trigger_id))
    conn.execute(delete(triggers).where(triggers.c.id == trigger_id))


def to_trigger(row: Row[Any]) -> Trigger:
    """A ``Trigger`` from its row."""
    spec = json.loads(row.spec)
    action = spec.get("action")
    return Trigger(
        id=row.id,
        project=row.project,
        name=row.name,
        kind=TriggerKind(row.kind),
        spec=str(spec["spec"]),
        action=PipelineAction.from_json(action) if action else None,
        enabled=bool(row.enabled),
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        next_due_at=from_ms(row.next_due_at),
        last_fired_at=from_ms(row.last_fired_at),
        cursor=row.cursor,
    )


def monitor_of(row: Row[Any]) -> str | None:
    """The monitor id a ``monitor`` trigger row follows."""
    found = json.loads(row.spec).get("monitor_id")
    return str(found) if found else None


# -- firings -------------------------------------------------------------------------------------------


def last_due(conn: Connection, trigger_id: str) -> int | None:
    """The key (due time, Unix ms) of a trigger's latest firing."""
    query = select(func.max(trigger_firings.c.due_at)).where(trigger_firings.c.trigger_id == trigger_id)
    found = conn.execute(query).scalar()
    return int(found) if found is not None else None


def insert_firing(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a firing: raises SQLAlchemy's ``IntegrityError`` if this (trigger, due time) is taken."""
    conn.execute(insert(trigger_firings), dict(values))


def finish_firing(
    conn: Connection, trigger_id: str, due_at: int, outcome: Outcome, details: Mapping[str, Any]
) -> None:
    """Record how a firing ended."""
    conn.execute(
        update(trigger_firings)
        .where(trigger_firings.c.trigger_id == trigger_id, trigger_firings.c.due_at == due_at)
        .values(outcome=outcome.value, details=json.dumps(details, default=str))
    )


def abandon_firings(conn: Connection, trigger_id: str, holder: str) -> int:
    """Mark a trigger's firings still ``running`` under ``holder`` (whose lease ran out) abandoned."""
    result = conn.execute(
        update(trigger_firings)
        .where(
            trigger_firings.c.trigger_id == trigger_id,
            trigger_firings.c.fired_by == holder,
            trigger_firings.c.outcome == Outcome.RUNNING.value,
        )
        .values(outcome=Outcome.ABANDONED.value)
    )
    return int(result.rowcount or 0)


def firing_rows(conn: Connection, project: str, trigger_id: str, limit: int) -> list[Row[Any]]:
    """A trigger's latest firings, newest first."""
    query = (
        select(trigger_firings)
        .where(trigger_firings.c.project == project, trigger_firings.c.trigger_id == trigger_id)
        .order_by(trigger_firings.c.due_at.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def to_firing(row: Row[Any], trigger: str) -> Firing:
    """A ``Firing`` from its row and its trigger's name."""
    return Firing(
        trigger_id=row.trigger_id,
        trigger=trigger,
        project=row.project,
        due_at=from_ms(row.due_at),
        fired_at=from_ms(row.fired_at),
        fired_by=row.fired_by,
        outcome=Outcome(row.outcome),
        details=json.loads(row.details),
    )


# -- leases --------------------------------------------------------------------------------------------


def acquire_lease(
    conn: Connection, name: str, holder: str, now: int, expires_at: int
) -> tuple[bool, str | None]:
    """Take the lease ``name`` until ``expires_at`` if it is free, expired or ours already.

    Returns:
        Whether it is ours now, and the holder it was taken over from (its lease had expired), if any.
        Two callers inserting the same new lease at once: one of them gets SQLAlchemy's ``IntegrityError``.
    """
    query = select(scheduler_leases).where(scheduler_leases.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        conn.execute(insert(scheduler_leases), {"name": name, "holder": holder, "expires_at": expires_at})
        return True, None
    if row.holder != holder and row.expires_at > now:
        return False, None
    conn.execute(
        update(scheduler_leases)
        .where(scheduler_leases.c.name == name)
        .values(holder=holder, expires_at=expires_at)
    )
    return True, (row.holder if row.holder != holder else None)


def renew_lease(conn: Connection, name: str, holder: str, expires_at: int) -> bool:
    """Push our lease's expiry on; False if it is no longer ours."""
    result = conn.execute(
        update(scheduler_leases)
        .where(scheduler_leases.c.name == name, scheduler_leases.c.holder == holder)
        .values(expires_at=expires_at)
    )
    return bool(result.rowcount)


def release_lease(conn: Connection, name: str, holder: str) -> None:
    """Give our lease up (someone else's is left alone)."""
    conn.execute(
        delete(scheduler_leases).where(scheduler_leases.c.name == name, scheduler_leases.c.holder == holder)
    )


def lease_holder(conn: Connection, name: str) -> tuple[str, int] | None:
    """Who holds lease ``name`` and until when (Unix ms), if anyone."""
    row = conn.execute(select(scheduler_leases).where(scheduler_leases.c.name == name)).first()
    return (row.holder, int(row.expires_at)) if row is not None else None


# -- monitors (read only: the monitoring domain owns them) ---------------------------------------------


def monitor_projects(conn: Connection) -> list[str]:
    """The projects that have an enabled monitor."""
    query = select(monitors.c.project).where(monitors.c.enabled == 1).distinct().order_by(monitors.c.project)
    return [str(p) for p in conn.execute(query).scalars()]


def monitor_last_run(conn: Connection, monitor_id: str) -> int | None:
    """When a monitor last ran (Unix ms), read afresh inside a claim."""
    found = conn.execute(select(monitors.c.last_run_at).where(monitors.c.id == monitor_id)).scalar()
    return int(found) if found is not None else None
