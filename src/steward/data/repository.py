"""SQL of the data domain, through the engine and tables of ``steward.store``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from steward.core.time import from_ms
from steward.data.models import DataFile, Dataset, DatasetVersion, QuarantinedBatch, QuarantineStatus
from steward.store.tables import dataset_versions, datasets, lineage_edges, quarantined_batches


def find_dataset(conn: Connection, project: str, name: str) -> Row[Any] | None:
    """The project's dataset row called ``name``, or None."""
    return conn.execute(
        select(datasets).where(datasets.c.project == project, datasets.c.name == name)
    ).first()


def lock_dataset(conn: Connection, dataset_id: str) -> None:
    """Serialise writers of one dataset (a row lock on PostgreSQL; SQLite writers are serial already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(datasets.c.id).where(datasets.c.id == dataset_id).with_for_update())


def insert_dataset(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a dataset row."""
    conn.execute(insert(datasets), dict(values))


def set_expectations(conn: Connection, dataset_id: str, expectations: str | None) -> None:
    """Replace a dataset's expectations (JSON text, or None for none)."""
    conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(expectations=expectations))


def set_privacy(conn: Connection, dataset_id: str, policy: str | None) -> None:
    """Replace a dataset's privacy policy (JSON text, or None for none)."""
    conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(privacy=policy))


def set_pii(conn: Connection, version_id: str, findings: str) -> None:
    """Record the PII findings (JSON text) of a version's scan."""
    conn.execute(update(dataset_versions).where(dataset_versions.c.id == version_id).values(pii=findings))


def held_batch_with_content(conn: Connection, dataset_id: str, digest: str) -> Row[Any] | None:
    """A HELD quarantined batch of a dataset whose first file has that digest, or None."""
    query = select(quarantined_batches.c.id, quarantined_batches.c.files).where(
        quarantined_batches.c.dataset_id == dataset_id,
        quarantined_batches.c.status == QuarantineStatus.HELD.value,
    )
    for row in conn.execute(query):
        files = json.loads(row.files)
        if files and files[0]["digest"] == digest:
            return row  # type: ignore[return-value]
    return None


def to_dataset(row: Row[Any], latest: int | None = None, count: int = 0) -> Dataset:
    """Build a ``Dataset`` from its row."""
    return Dataset(
        id=row.id,
        name=row.name,
        description=row.description,
        region=row.region,
        expectations=json.loads(row.expectations) if row.expectations else None,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        latest_version=latest,
        version_count=count,
        allowed_regions=tuple(json.loads(row.allowed_regions)) if row.allowed_regions else None,
        privacy=json.loads(row.privacy) if row.privacy else None,
    )


def version_stats(conn: Connection) -> dict[str, tuple[int, int]]:
    """``{dataset_id: (highest number, count)}``."""
    query = select(dataset_versions.c.dataset_id, func.max(dataset_versions.c.number), func.count()).group_by(
        dataset_versions.c.dataset_id
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(query)}


def list_dataset_rows(conn: Connection, project: str) -> list[Row[Any]]:
    """Every dataset row of ``project``, by name."""
    return list(conn.execute(select(datasets).where(datasets.c.project == project).order_by(datasets.c.name)))


def version_by_digest(conn: Connection, dataset_id: str, digest: str) -> Row[Any] | None:
    """The version of a dataset with that content, or None."""
    query = select(dataset_versions).where(
        dataset_versions.c.dataset_id == dataset_id, dataset_versions.c.content_digest == digest
    )
    return conn.execute(query).first()


def version_by_number(conn: Connection, dataset_id: str, number: int | None) -> Row[Any] | None:
    """A version by number, or the highest one when ``number`` is None."""
    query = select(dataset_versions).where(dataset_versions.c.dataset_id == dataset_id)
    if number is None:
        query = query.order_by(dataset_versions.c.number.desc()).limit(1)
    else:
        query = query.where(dataset_versions.c.number == number)
    return conn.execute(query).first()


def version_by_id(conn: Connection, project: str, version_id: str) -> Row[Any] | None:
    """A version row of ``project`` with its dataset's name, by id."""
    query = (
        select(dataset_versions, datasets.c.name.label("dataset_name"))
        .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
        .where(dataset_versions.c.id == version_id, datasets.c.project == project)
    )
    return conn.execute(query).first()


def datasets_of_versions(conn: Connection, project: str, version_ids: list[str]) -> list[Row[Any]]:
    """The dataset rows (name, region, allowed_regions) of the project's versions with these ids."""
    query = (
        select(datasets.c.name, datasets.c.region, datasets.c.allowed_regions)
        .join(dataset_versions, dataset_versions.c.dataset_id == datasets.c.id)
        .where(dataset_versions.c.id.in_(version_ids), datasets.c.project == project)
        .distinct()
    )
    return list(conn.execute(query))


def version_ancestry(conn: Connection, project: str, version_id: str) -> list[Row[Any]]:
    """A version and the versions it derives from, parent by parent (with dataset names), newest first."""
    chain: list[Row[Any]] = []
    seen: set[str] = set()
    current: str | None = version_id
    while current is not None and current not in seen:
        seen.add(current)
        row = version_by_id(conn, project, current)
        if row is None:
            break
        chain.append(row)
        current = row.parent_id
    return chain


def descendants(conn: Connection, project: str, version_id: str) -> list[Row[Any]]:
    """Every version of ``project`` derived (directly or not) from a version, with dataset names, in
    breadth order: its protected copies (``parent_id``) and the versions a lineage edge says were built
    from it (a training set of its features, ``features_from``)."""
    found: list[Row[Any]] = []
    frontier, seen = [version_id], {version_id}
    while frontier:
        built_from = select(lineage_edges.c.target_id).where(
            lineage_edges.c.source_kind == "dataset_version",
            lineage_edges.c.target_kind == "dataset_version",
            lineage_edges.c.source_id.in_(frontier),
        )
        query = (
            select(dataset_versions, datasets.c.name.label("dataset_name"))
            .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
            .where(
                dataset_versions.c.parent_id.in_(frontier) | dataset_versions.c.id.in_(built_from),
                datasets.c.project == project,
            )
            .order_by(dataset_versions.c.created_at)
        )
        rows = [r for r in conn.execute(query) if r.id not in seen]
        seen.update(r.id for r in rows)
        found.extend(rows)
        frontier = [r.id for r in rows]
    return found


def version_rows(conn: Connection, dataset_id: str) -> list[Row[Any]]:
    """Every version of a dataset, by number."""
    query = (
        select(dataset_versions)
        .where(dataset_versions.c.dataset_id == dataset_id)
        .order_by(dataset_versions.c.number)
    )
    return list(conn.execute(query))


def next_number(conn: Connection, dataset_id: str) -> int:
    """The number the next version of a dataset gets."""
    query = select(func.max(dataset_versions.c.number)).where(dataset_versions.c.dataset_id == dataset_id)
    return int(conn.execute(query).scalar() or 0) + 1


def insert_version(conn: Connection, values: Mapping[str, Any], edges: list[dict[str, Any]]) -> None:
    """Insert a version and the lineage edges into it."""
    conn.execute(insert(dataset_versions), dict(values))
    if edges:
        conn.execute(insert(lineage_edges), edges)


def to_version(row: Row[Any], dataset: str) -> DatasetVersion:
    """Build a ``DatasetVersion`` from its row."""
    return DatasetVersion(
        id=row.id,
        dataset=dataset,
        number=row.number,
        content_digest=row.content_digest,
        rows=row.rows,
        files=tuple(DataFile.from_json(f) for f in json.loads(row.files)),
        arrow_schema=tuple(json.loads(row.arrow_schema)),
        source=json.loads(row.source),
        profile=json.loads(row.profile),
        region=row.region,
        parent_id=row.parent_id,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        pii=tuple(json.loads(row.pii)) if row.pii is not None else None,
    )


def insert_quarantine(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a quarantined batch."""
    conn.execute(insert(quarantined_batches), dict(values))


def quarantine_rows(
    conn: Connection, project: str, dataset_id: str | None, status: QuarantineStatus | None
) -> list[Row[Any]]:
    """The project's quarantined batches with their dataset's name, oldest first, optionally filtered."""
    query = (
        select(quarantined_batches, datasets.c.name.label("dataset_name"))
        .join(datasets, datasets.c.id == quarantined_batches.c.dataset_id)
        .where(datasets.c.project == project)
    )
    if dataset_id is not None:
        query = query.where(quarantined_batches.c.dataset_id == dataset_id)
    if status is not None:
        query = query.where(quarantined_batches.c.status == status.value)
    return list(conn.execute(query.order_by(quarantined_batches.c.created_at, quarantined_batches.c.id)))


def quarantine_row(conn: Connection, project: str, batch_id: str) -> Row[Any] | None:
    """One quarantined batch of ``project`` with its dataset's name, or None."""
    query = (
        select(quarantined_batches, datasets.c.name.label("dataset_name"))
        .join(datasets, datasets.c.id == quarantined_batches.c.dataset_id)
        .where(quarantined_batches.c.id == batch_id, datasets.c.project == project)
    )
    return conn.execute(query).first()


def resolve_quarantine(
    conn: Connection, batch_id: str, status: QuarantineStatus, at: int, actor: str, resolution: str
) -> bool:
    """Mark a HELD batch released or dropped; False if it was no longer HELD."""
    result = conn.execute(
        update(quarantined_batches)
        .where(
            quarantined_batches.c.id == batch_id,
            quarantined_batches.c.status == QuarantineStatus.HELD.value,
        )
        .values(status=status.value, resolved_at=at, resolved_by=actor, resolution=resolution)
    )
    return result.rowcount == 1


def to_quarantined(row: Row[Any]) -> QuarantinedBatch:
    """Build a ``QuarantinedBatch`` from a row of ``quarantine_rows``."""
    return QuarantinedBatch(
        id=row.id,
        dataset=row.dataset_name,
        status=QuarantineStatus(row.status),
        rows=row.rows,
        files=tuple(DataFile.from_json(f) for f in json.loads(row.files)),
        source=json.loads(row.source),
        report=json.loads(row.report),
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        resolved_at=from_ms(row.resolved_at) if row.resolved_at is not None else None,
        resolved_by=row.resolved_by,
        resolution=row.resolution,
    )
