"""SQL of the registry domain, through the engine and tables of ``steward.store``."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, update

from steward.core.time import from_ms
from steward.registry.models import AliasEvent, ModelVersion, RegisteredModel, VersionStatus
from steward.store.tables import (
    alias_events,
    lineage_edges,
    model_aliases,
    model_cards,
    model_formats,
    model_versions,
    registered_models,
)

# Tenancy: models are found by project and name; everything else hangs off a model id found that way.
_MODEL_BY_NAME = select(registered_models).where(
    registered_models.c.project == bindparam("project"), registered_models.c.name == bindparam("name")
)
_VERSION_BY_NUMBER = select(model_versions).where(
    model_versions.c.model_id == bindparam("model_id"), model_versions.c.version == bindparam("version")
)
_ALIAS_TARGET = (
    select(model_versions)
    .join(model_aliases, model_aliases.c.version_id == model_versions.c.id)
    .where(model_aliases.c.model_id == bindparam("model_id"), model_aliases.c.alias == bindparam("alias"))
)
_ALIASES_OF_VERSIONS = (
    select(model_aliases.c.version_id, model_aliases.c.alias)
    .where(model_aliases.c.version_id.in_(bindparam("ids", expanding=True)))
    .order_by(model_aliases.c.alias)
)
_FORMATS_OF_VERSIONS = select(
    model_formats.c.version_id, model_formats.c.name, model_formats.c.manifest
).where(model_formats.c.version_id.in_(bindparam("ids", expanding=True)))


def find_model(conn: Connection, project: str, name: str) -> Row[Any] | None:
    """Return the project's registered model row called ``name``, or None."""
    return conn.execute(_MODEL_BY_NAME, {"project": project, "name": name}).first()


def lock_model(conn: Connection, model_id: str) -> None:
    """Serialise writers of one model (a row lock on PostgreSQL; SQLite writers are serial already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(registered_models.c.id).where(registered_models.c.id == model_id).with_for_update()
        )


def insert_model(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a registered model row."""
    conn.execute(insert(registered_models), dict(values))


def list_model_rows(conn: Connection, project: str) -> list[Row[Any]]:
    """Every registered model row of ``project``, by name."""
    query = select(registered_models).where(registered_models.c.project == project)
    return list(conn.execute(query.order_by(registered_models.c.name)))


def version_numbers(conn: Connection, model_id: str) -> list[tuple[str, str | None]]:
    """(version, input schema JSON) of every version of a model."""
    query = select(model_versions.c.version, model_versions.c.input_schema).where(
        model_versions.c.model_id == model_id
    )
    return [(r.version, r.input_schema) for r in conn.execute(query)]


def versions_by_model(conn: Connection, model_ids: Iterable[str]) -> dict[str, list[str]]:
    """Version numbers of each of ``model_ids``."""
    ids = list(model_ids)
    found: dict[str, list[str]] = defaultdict(list)
    if ids:
        query = select(model_versions.c.model_id, model_versions.c.version).where(
            model_versions.c.model_id.in_(ids)
        )
        for row in conn.execute(query):
            found[row.model_id].append(row.version)
    return found


def aliases_by_model(conn: Connection, model_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """``{model_id: {alias: version}}`` for ``model_ids``."""
    ids = list(model_ids)
    found: dict[str, dict[str, str]] = defaultdict(dict)
    if ids:
        query = (
            select(model_aliases.c.model_id, model_aliases.c.alias, model_versions.c.version)
            .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
            .where(model_aliases.c.model_id.in_(ids))
            .order_by(model_aliases.c.alias)
        )
        for row in conn.execute(query):
            found[row.model_id][row.alias] = row.version
    return found


def insert_version(
    conn: Connection, values: Mapping[str, Any], edges: Iterable[Mapping[str, Any]] = ()
) -> None:
    """Insert a version row and its lineage edges."""
    conn.execute(insert(model_versions), dict(values))
    rows = [dict(e) for e in edges]
    if rows:
        conn.execute(insert(lineage_edges), rows)


def version_row(conn: Connection, model_id: str, version: str) -> Row[Any] | None:
    """The row of one version, or None."""
    return conn.execute(_VERSION_BY_NUMBER, {"model_id": model_id, "version": version}).first()


def version_rows(conn: Connection, model_id: str) -> list[Row[Any]]:
    """Every version row of a model (unordered)."""
    return list(conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)))


def alias_target(conn: Connection, model_id: str, alias: str) -> Row[Any] | None:
    """The version row an alias points at, or None."""
    return conn.execute(_ALIAS_TARGET, {"model_id": model_id, "alias": alias}).first()


def aliases_by_version(conn: Connection, version_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``{version_id: (alias, …)}``."""
    ids = list(version_ids)
    found: dict[str, list[str]] = defaultdict(list)
    if ids:
        for row in conn.execute(_ALIASES_OF_VERSIONS, {"ids": ids}):
            found[row.version_id].append(row.alias)
    return {k: tuple(v) for k, v in found.items()}


def formats_by_version(conn: Connection, version_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{version_id: {format name: manifest}}`` of the further formats of each version."""
    ids = list(version_ids)
    found: dict[str, dict[str, Any]] = defaultdict(dict)
    if ids:
        for row in conn.execute(_FORMATS_OF_VERSIONS, {"ids": ids}):
            found[row.version_id][row.name] = json.loads(row.manifest)
    return found


def format_row(conn: Connection, version_id: str, name: str) -> Row[Any] | None:
    """The row of one further format of a version, or None."""
    query = select(model_formats).where(
        model_formats.c.version_id == version_id, model_formats.c.name == name
    )
    return conn.execute(query).first()


def insert_format(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a further format of a version."""
    conn.execute(insert(model_formats), dict(values))


def to_version(
    row: Row[Any],
    model: str,
    aliases: tuple[str, ...] = (),
    formats: Mapping[str, Mapping[str, Any]] | None = None,
) -> ModelVersion:
    """Build a ``ModelVersion`` from its row."""
    return ModelVersion(
        id=row.id,
        model=model,
        version=row.version,
        status=VersionStatus(row.status),
        flavor=row.flavor,
        run_id=row.run_id,
        description=row.description,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        archived_at=from_ms(row.archived_at) if row.archived_at is not None else None,
        manifest_digest=row.manifest_digest,
        manifest=json.loads(row.manifest),
        aliases=aliases,
        formats=dict(formats or {}),
        archived_reason=row.archived_reason,
    )


def to_model(row: Row[Any], latest: str | None, count: int, aliases: Mapping[str, str]) -> RegisteredModel:
    """Build a ``RegisteredModel`` from its row."""
    return RegisteredModel(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        latest_version=latest,
        version_count=count,
        aliases=dict(aliases),
    )


def set_version_status(
    conn: Connection, version_id: str, status: VersionStatus, at: int | None, reason: str = ""
) -> None:
    """Archive (with the time and reason) or restore a version."""
    conn.execute(
        update(model_versions)
        .where(model_versions.c.id == version_id)
        .values(status=status.value, archived_at=at, archived_reason=reason)
    )


def upsert_alias(conn: Connection, values: Mapping[str, Any]) -> None:
    """Point an alias at a version, inserting or moving it."""
    moved = conn.execute(
        update(model_aliases)
        .where(model_aliases.c.model_id == values["model_id"], model_aliases.c.alias == values["alias"])
        .values(
            version_id=values["version_id"], updated_at=values["updated_at"], updated_by=values["updated_by"]
        )
    )
    if moved.rowcount == 0:
        conn.execute(insert(model_aliases), dict(values))


def delete_alias(conn: Connection, model_id: str, alias: str) -> None:
    """Remove an alias."""
    conn.execute(
        delete(model_aliases).where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)
    )


def insert_alias_event(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record one move of an alias."""
    conn.execute(insert(alias_events), dict(values))


def alias_events_of(conn: Connection, model_id: str, model: str, alias: str | None) -> list[AliasEvent]:
    """Every recorded alias move of a model (or of one alias), oldest first."""
    query = select(alias_events).where(alias_events.c.model_id == model_id)
    if alias is not None:
        query = query.where(alias_events.c.alias == alias)
    return [
        AliasEvent(
            model=model,
            alias=r.alias,
            from_version=r.from_version,
            to_version=r.to_version,
            actor=r.actor,
            at=from_ms(r.at),
            reason=r.reason,
        )
        for r in conn.execute(query.order_by(alias_events.c.id))
    ]


def models_trained_on(conn: Connection, project: str, dataset_version_id: str) -> list[Row[Any]]:
    """The project's versions with a ``trained_on`` edge from the dataset version, with their model's
    name."""
    query = (
        select(model_versions, registered_models.c.name.label("model_name"), lineage_edges.c.role)
        .join(lineage_edges, lineage_edges.c.target_id == model_versions.c.id)
        .join(registered_models, registered_models.c.id == model_versions.c.model_id)
        .where(
            lineage_edges.c.source_kind == "dataset_version",
            lineage_edges.c.source_id == dataset_version_id,
            lineage_edges.c.target_kind == "model_version",
            lineage_edges.c.relation == "trained_on",
            registered_models.c.project == project,
        )
        .order_by(registered_models.c.name, model_versions.c.created_at)
    )
    return list(conn.execute(query))


def card_row(conn: Connection, version_id: str) -> Row[Any] | None:
    """The stored card of a version, or None."""
    return conn.execute(select(model_cards).where(model_cards.c.version_id == version_id)).first()


def upsert_card(conn: Connection, values: Mapping[str, Any]) -> None:
    """Store (or replace) a version's card."""
    changed = conn.execute(
        update(model_cards).where(model_cards.c.version_id == values["version_id"]).values(**values)
    )
    if changed.rowcount == 0:
        conn.execute(insert(model_cards), dict(values))


def count_versions(conn: Connection, model_id: str) -> int:
    """How many versions a model has."""
    query = select(func.count()).select_from(model_versions).where(model_versions.c.model_id == model_id)
    return int(conn.execute(query).scalar_one())
