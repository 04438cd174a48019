"""SQL of identity and tenancy: projects, principals, memberships and API tokens."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Connection, Row, and_, bindparam, delete, insert, select, update

from steward.store.tables import api_tokens, memberships, principals, projects

BOOTSTRAP = "bootstrap"
"""``api_tokens.purpose`` of the one-time token that makes the first admin."""
API = "api"
"""``api_tokens.purpose`` of ordinary API tokens."""

_TOKEN_BY_HASH = (
    select(
        api_tokens.c.id,
        api_tokens.c.purpose,
        api_tokens.c.scopes,
        api_tokens.c.expires_at,
        api_tokens.c.revoked_at,
        api_tokens.c.last_used_at,
        principals.c.id.label("principal_id"),
        principals.c.name.label("principal"),
        principals.c.kind,
        principals.c.global_role,
        principals.c.disabled_at,
    )
    .select_from(api_tokens.outerjoin(principals, principals.c.id == api_tokens.c.principal_id))
    .where(api_tokens.c.token_hash == bindparam("token_hash"))
)
_ROLES_OF = (
    select(projects.c.name, memberships.c.role)
    .join(projects, projects.c.id == memberships.c.project_id)
    .where(memberships.c.principal_id == bindparam("principal_id"))
)
_TOKEN_COLUMNS = [c for c in api_tokens.c if c.name != "token_hash"]


# -- projects ---------------------------------------------------------------------------------------


def find_project(conn: Connection, name: str) -> Row[Any] | None:
    """Return the project row called ``name``, or None."""
    return conn.execute(select(projects).where(projects.c.name == name)).first()


def insert_project(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a project row."""
    conn.execute(insert(projects), dict(values))


def project_rows(conn: Connection, names: Iterable[str] | None = None) -> list[Row[Any]]:
    """Project rows by name: every one, or only those named."""
    query = select(projects).order_by(projects.c.name)
    if names is not None:
        query = query.where(projects.c.name.in_(list(names)))
    return list(conn.execute(query))


# -- principals -------------------------------------------------------------------------------------


def find_principal(conn: Connection, name: str) -> Row[Any] | None:
    """Return the principal row called ``name``, or None."""
    return conn.execute(select(principals).where(principals.c.name == name)).first()


def principal_names(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """The names of the principals with ``ids``."""
    found = list(set(ids))
    if not found:
        return {}
    query = select(principals.c.id, principals.c.name).where(principals.c.id.in_(found))
    return {row.id: row.name for row in conn.execute(query)}


def insert_principal(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a principal row."""
    conn.execute(insert(principals), dict(values))


def principal_rows(conn: Connection, kind: str | None = None) -> list[Row[Any]]:
    """Principal rows by name, optionally of one ``kind``."""
    query = select(principals).order_by(principals.c.name)
    if kind is not None:
        query = query.where(principals.c.kind == kind)
    return list(conn.execute(query))


def set_principal(conn: Connection, principal_id: str, **values: Any) -> None:
    """Update columns of one principal (``disabled_at``, ``global_role``)."""
    conn.execute(update(principals).where(principals.c.id == principal_id).values(**values))


def enabled_admins(conn: Connection, limit: int = 2) -> list[str]:
    """Ids of up to ``limit`` enabled principals holding the global ``admin`` role."""
    query = (
        select(principals.c.id)
        .where(and_(principals.c.global_role == "admin", principals.c.disabled_at.is_(None)))
        .limit(limit)
    )
    return [row.id for row in conn.execute(query)]


# -- memberships ------------------------------------------------------------------------------------


def roles_of(conn: Connection, principal_id: str) -> dict[str, frozenset[str]]:
    """The roles a principal holds, by project name."""
    found: dict[str, set[str]] = defaultdict(set)
    for row in conn.execute(_ROLES_OF, {"principal_id": principal_id}):
        found[row.name].add(row.role)
    return {name: frozenset(roles) for name, roles in found.items()}


def has_membership(conn: Connection, project_id: str, principal_id: str, role: str) -> bool:
    """Whether the principal holds ``role`` in the project."""
    m = memberships.c
    query = select(m.role).where(m.project_id == project_id, m.principal_id == principal_id, m.role == role)
    return conn.execute(query).first() is not None


def insert_membership(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert one membership row (one role of one principal in one project)."""
    conn.execute(insert(memberships), dict(values))


def delete_memberships(conn: Connection, project_id: str, principal_id: str, role: str | None) -> list[str]:
    """Delete a principal's ``role`` (or every role, for None) in a project; return the roles removed."""
    m = memberships.c
    where = [m.project_id == project_id, m.principal_id == principal_id]
    if role is not None:
        where.append(m.role == role)
    removed = sorted(row.role for row in conn.execute(select(m.role).where(*where)))
    if removed:
        conn.execute(delete(memberships).where(*where))
    return removed


def member_rows(conn: Connection, project_id: str) -> list[Row[Any]]:
    """(name, kind, disabled_at, role, added_at) of every membership of a project, by name and role."""
    m = memberships.c
    query = (
        select(principals.c.name, principals.c.kind, principals.c.disabled_at, m.role, m.added_at)
        .join(principals, principals.c.id == m.principal_id)
        .where(m.project_id == project_id)
        .order_by(principals.c.name, m.role)
    )
    return list(conn.execute(query))


# -- tokens -----------------------------------------------------------------------------------------


def insert_token(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert an API token row (its hash, never its secret)."""
    conn.execute(insert(api_tokens), dict(values))


def token_for_hash(conn: Connection, token_hash: str) -> Row[Any] | None:
    """The token with this hash, joined with its principal (None columns for a bootstrap token)."""
    return cast("Row[Any] | None", conn.execute(_TOKEN_BY_HASH, {"token_hash": token_hash}).first())


def token_row(conn: Connection, token_id: str) -> Row[Any] | None:
    """The token row with ``token_id`` (without its hash), or None."""
    return conn.execute(select(*_TOKEN_COLUMNS).where(api_tokens.c.id == token_id)).first()


def token_rows(conn: Connection, principal_id: str | None = None) -> list[Row[Any]]:
    """API token rows (without their hashes), oldest first: a principal's, or every principal's."""
    query = select(*_TOKEN_COLUMNS).where(api_tokens.c.purpose == API).order_by(api_tokens.c.created_at)
    if principal_id is not None:
        query = query.where(api_tokens.c.principal_id == principal_id)
    return list(conn.execute(query))


def revoke_token(conn: Connection, token_id: str, at: int) -> bool:
    """Mark a token revoked at ``at`` unless it already is; return whether this call revoked it."""
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount)


def touch_token(conn: Connection, token_id: str, at: int, older_than: int) -> None:
    """Set a token's ``last_used_at`` to ``at`` if it is unset or before ``older_than``."""
    t = api_tokens.c
    conn.execute(
        update(api_tokens)
        .where(t.id == token_id, (t.last_used_at.is_(None)) | (t.last_used_at < older_than))
        .values(last_used_at=at)
    )


def delete_bootstrap_tokens(conn: Connection) -> int:
    """Delete every bootstrap token; return how many there were."""
    result = conn.execute(delete(api_tokens).where(api_tokens.c.purpose == BOOTSTRAP))
    return int(result.rowcount or 0)


def delete_token(conn: Connection, token_id: str) -> bool:
    """Delete one token row; return whether it was there (so one of two racing callers wins)."""
    return bool(conn.execute(delete(api_tokens).where(api_tokens.c.id == token_id)).rowcount)
