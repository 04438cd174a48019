"""SQL of the feature store, through the engine and tables of ``steward.store``.

Tenancy: every query filters by project, so one project's definitions never answer another's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from steward.core.ids import new_id
from steward.core.time import from_ms, now_ms, to_ms
from steward.features.models import MaterializationRun, StoredDefinition
from steward.store.tables import feature_definitions as defs
from steward.store.tables import feature_materializations as mats
from steward.store.tables import lineage_edges


def to_definition(row: Row[Any]) -> StoredDefinition:
    """A stored definition from its row."""
    return StoredDefinition(
        kind=row.kind,
        name=row.name,
        version=int(row.version),
        spec=json.loads(row.spec),
        digest=row.digest,
        derived=json.loads(row.derived),
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
    )


def latest(conn: Connection, project: str, kind: str, name: str) -> StoredDefinition | None:
    """The latest version of one definition, or None."""
    query = (
        select(defs)
        .where(defs.c.project == project, defs.c.kind == kind, defs.c.name == name)
        .order_by(defs.c.version.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return to_definition(row) if row is not None else None


def version(conn: Connection, project: str, kind: str, name: str, number: int) -> StoredDefinition | None:
    """Version ``number`` of one definition, or None."""
    query = select(defs).where(
        defs.c.project == project, defs.c.kind == kind, defs.c.name == name, defs.c.version == number
    )
    row = conn.execute(query).first()
    return to_definition(row) if row is not None else None


def history(conn: Connection, project: str, kind: str, name: str) -> list[StoredDefinition]:
    """Every version of one definition, oldest first."""
    query = (
        select(defs)
        .where(defs.c.project == project, defs.c.kind == kind, defs.c.name == name)
        .order_by(defs.c.version)
    )
    return [to_definition(r) for r in conn.execute(query)]


def latest_all(conn: Connection, project: str, kind: str | None = None) -> list[StoredDefinition]:
    """The latest version of every definition of the project (of one kind), by kind and name."""
    newest = (
        select(defs.c.kind, defs.c.name, func.max(defs.c.version).label("version"))
        .where(defs.c.project == project)
        .group_by(defs.c.kind, defs.c.name)
    )
    if kind is not None:
        newest = newest.where(defs.c.kind == kind)
    sub = newest.subquery()
    query = (
        select(defs)
        .join(
            sub, (defs.c.kind == sub.c.kind) & (defs.c.name == sub.c.name) & (defs.c.version == sub.c.version)
        )
        .where(defs.c.project == project)
        .order_by(defs.c.kind, defs.c.name)
    )
    return [to_definition(r) for r in conn.execute(query)]


def insert_definition(
    conn: Connection,
    project: str,
    kind: str,
    name: str,
    number: int,
    spec: Mapping[str, Any],
    digest: str,
    derived: Mapping[str, Any],
    at: int,
    actor: str,
) -> None:
    """Store one new version of a definition."""
    conn.execute(
        insert(defs).values(
            id=new_id(),
            project=project,
            kind=kind,
            name=name,
            version=number,
            spec=json.dumps(spec, sort_keys=True),
            digest=digest,
            derived=json.dumps(derived, sort_keys=True),
            created_at=at,
            created_by=actor,
        )
    )


def insert_materialization(conn: Connection, project: str, run: MaterializationRun) -> None:
    """Record one materialisation run."""
    conn.execute(
        insert(mats).values(
            id=new_id(),
            project=project,
            view=run.view,
            store=run.store,
            window_start=to_ms(run.start),
            window_end=to_ms(run.end),
            rows=run.rows,
            entities=run.entities,
            finished_at=to_ms(run.finished_at),
            finished_by=run.finished_by,
        )
    )


def last_window_end(conn: Connection, project: str, view: str, store: str) -> datetime | None:
    """Where the view's last materialisation into ``store`` ended, or None if it never ran."""
    query = select(func.max(mats.c.window_end)).where(
        mats.c.project == project, mats.c.view == view, mats.c.store == store
    )
    value = conn.execute(query).scalar()
    return from_ms(int(value)) if value is not None else None


def materializations(conn: Connection, project: str, view: str | None = None) -> list[MaterializationRun]:
    """Past runs, newest first."""
    query = select(mats).where(mats.c.project == project)
    if view is not None:
        query = query.where(mats.c.view == view)
    rows = conn.execute(query.order_by(mats.c.finished_at.desc(), mats.c.window_end.desc()))
    return [
        MaterializationRun(
            view=r.view,
            start=from_ms(r.window_start),
            end=from_ms(r.window_end),
            rows=int(r.rows),
            entities=int(r.entities),
            store=r.store,
            finished_at=from_ms(r.finished_at),
            finished_by=r.finished_by,
        )
        for r in rows
    ]


def insert_lineage(conn: Connection, sources: Sequence[str], training_set: str) -> None:
    """Record that a training set's dataset version was built from these source dataset versions."""
    at = now_ms()
    for source in dict.fromkeys(sources):
        conn.execute(
            insert(lineage_edges).values(
                source_kind="dataset_version",
                source_id=source,
                target_kind="dataset_version",
                target_id=training_set,
                relation="features_from",
                role="",
                created_at=at,
            )
        )
