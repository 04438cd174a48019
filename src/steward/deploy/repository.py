"""SQL of the deploy domain, through the engine and tables of ``steward.store``.

Tenancy: endpoints are found by project and name; every other query also filters by project, so a row
of one project never answers a query of another even by id.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from steward.core.time import from_ms
from steward.deploy.models import (
    Endpoint,
    Rollout,
    RolloutEvent,
    RolloutState,
)
from steward.deploy.options import Strategy, options_from_json
from steward.serving.models import Arm
from steward.store.tables import endpoint_arms, endpoints, rollout_events, rollouts


def find_endpoint(conn: Connection, project: str, name: str, *, lock: bool = False) -> Row[Any] | None:
    """The project's endpoint row called ``name`` (locked for update on PostgreSQL with ``lock``)."""
    query = select(endpoints).where(endpoints.c.project == project, endpoints.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def endpoint_rows(conn: Connection, project: str, names: Sequence[str] | None = None) -> list[Row[Any]]:
    """The project's endpoint rows (only ``names``, if given), by name."""
    query = select(endpoints).where(endpoints.c.project == project)
    if names is not None:
        query = query.where(endpoints.c.name.in_(list(names)))
    return list(conn.execute(query.order_by(endpoints.c.name)))


def arms_of(conn: Connection, project: str, ids: Iterable[str]) -> dict[str, tuple[Arm, ...]]:
    """The arms of each endpoint id, in plan order."""
    listed = list(ids)
    found: dict[str, list[Arm]] = defaultdict(list)
    if not listed:
        return {}
    query = (
        select(endpoint_arms)
        .where(endpoint_arms.c.project == project, endpoint_arms.c.endpoint_id.in_(listed))
        .order_by(endpoint_arms.c.endpoint_id, endpoint_arms.c.position)
    )
    for row in conn.execute(query):
        found[row.endpoint_id].append(Arm(row.version, row.role, float(row.weight)))
    return {k: tuple(v) for k, v in found.items()}


def to_endpoint(row: Row[Any], arms: tuple[Arm, ...]) -> Endpoint:
    """An ``Endpoint`` from its row and arms."""
    return Endpoint(
        id=row.id,
        name=row.name,
        project=row.project,
        model=row.model,
        description=row.description,
        gate_alias=row.gate_alias,
        sticky_key=row.sticky_key,
        revision=int(row.revision),
        arms=arms,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        updated_at=from_ms(row.updated_at),
        active_rollout=row.active_rollout,
        feature_service=row.feature_service,
    )


def insert_endpoint(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert an endpoint row."""
    conn.execute(insert(endpoints), dict(values))


def write_plan(
    conn: Connection, project: str, endpoint_id: str, arms: Sequence[Arm], at: int, **columns: Any
) -> int:
    """Replace an endpoint's arms with ``arms``, bump its revision and set ``columns``; return the new
    revision."""
    conn.execute(
        delete(endpoint_arms).where(
            endpoint_arms.c.endpoint_id == endpoint_id, endpoint_arms.c.project == project
        )
    )
    conn.execute(
        insert(endpoint_arms),
        [
            {
                "endpoint_id": endpoint_id,
                "version": a.version,
                "project": project,
                "role": a.role,
                "weight": a.weight,
                "position": i,
            }
            for i, a in enumerate(arms)
        ],
    )
    query = (
        update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.project == project)
        .values(revision=endpoints.c.revision + 1, updated_at=at, **columns)
        .returning(endpoints.c.revision)
    )
    return int(conn.execute(query).scalar_one())


def delete_endpoint(conn: Connection, project: str, endpoint_id: str) -> None:
    """Delete an endpoint with its arms, rollouts and their events."""
    ids = select(rollouts.c.id).where(rollouts.c.endpoint_id == endpoint_id, rollouts.c.project == project)
    conn.execute(
        delete(rollout_events).where(
            rollout_events.c.project == project, rollout_events.c.rollout_id.in_(ids)
        )
    )
    conn.execute(delete(rollouts).where(rollouts.c.endpoint_id == endpoint_id, rollouts.c.project == project))
    conn.execute(
        delete(endpoint_arms).where(
            endpoint_arms.c.endpoint_id == endpoint_id, endpoint_arms.c.project == project
        )
    )
    conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.project == project))


# -- rollouts -----------------------------------------------------------------------------------------


def insert_rollout(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a rollout row."""
    conn.execute(insert(rollouts), dict(values))


def update_rollout(conn: Connection, project: str, rollout_id: str, **values: Any) -> None:
    """Set columns of a rollout."""
    conn.execute(
        update(rollouts).where(rollouts.c.id == rollout_id, rollouts.c.project == project).values(**values)
    )


def note_analysis(conn: Connection, project: str, rollout_id: str, step: int, analysis: str) -> None:
    """Record an analysis that changed nothing on a rollout, if it is still under way at ``step``."""
    conn.execute(
        update(rollouts)
        .where(
            rollouts.c.id == rollout_id,
            rollouts.c.project == project,
            rollouts.c.step == step,
            rollouts.c.state.in_([RolloutState.PENDING.value, RolloutState.RUNNING.value]),
        )
        .values(analysis=analysis)
    )


def rollout_row(
    conn: Connection, project: str, endpoint_id: str, rollout_id: str | None = None
) -> Row[Any] | None:
    """One rollout of an endpoint: ``rollout_id``, or its latest."""
    query = select(rollouts).where(rollouts.c.project == project, rollouts.c.endpoint_id == endpoint_id)
    if rollout_id is not None:
        return conn.execute(query.where(rollouts.c.id == rollout_id)).first()
    return conn.execute(query.order_by(rollouts.c.created_at.desc(), rollouts.c.id.desc()).limit(1)).first()


def rollout_rows(conn: Connection, project: str, endpoint_id: str) -> list[Row[Any]]:
    """Every rollout of an endpoint, newest first."""
    query = (
        select(rollouts)
        .where(rollouts.c.project == project, rollouts.c.endpoint_id == endpoint_id)
        .order_by(rollouts.c.created_at.desc(), rollouts.c.id.desc())
    )
    return list(conn.execute(query))


def events_of(conn: Connection, project: str, rollout_id: str) -> tuple[RolloutEvent, ...]:
    """A rollout's events, oldest first."""
    query = (
        select(rollout_events)
        .where(rollout_events.c.project == project, rollout_events.c.rollout_id == rollout_id)
        .order_by(rollout_events.c.seq)
    )
    return tuple(
        RolloutEvent(r.seq, from_ms(r.at), r.kind, r.step, r.actor, r.message, json.loads(r.details))
        for r in conn.execute(query)
    )


def append_event(
    conn: Connection,
    project: str,
    rollout_id: str,
    *,
    at: int,
    kind: str,
    step: int,
    actor: str,
    message: str,
    details: Mapping[str, Any],
) -> None:
    """Append an event to a rollout (numbered one past its last)."""
    last = conn.execute(
        select(func.max(rollout_events.c.seq)).where(
            rollout_events.c.project == project, rollout_events.c.rollout_id == rollout_id
        )
    ).scalar()
    conn.execute(
        insert(rollout_events),
        {
            "rollout_id": rollout_id,
            "seq": int(last or 0) + 1,
            "project": project,
            "at": at,
            "kind": kind,
            "step": step,
            "actor": actor,
            "message": message,
            "details": json.dumps(details, sort_keys=True),
        },
    )


def to_rollout(row: Row[Any], endpoint: str, events: tuple[RolloutEvent, ...] = ()) -> Rollout:
    """A ``Rollout`` from its row."""
    return Rollout(
        id=row.id,
        endpoint=endpoint,
        strategy=Strategy(row.strategy),
        version=row.version,
        baseline=row.baseline,
        state=RolloutState(row.state),
        step=int(row.step),
        options=options_from_json(json.loads(row.options)),
        step_started_at=from_ms(row.step_started_at),
        analysis=json.loads(row.analysis) if row.analysis else None,
        message=row.message,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        ended_at=from_ms(row.ended_at),
        events=events,
    )
