"""Policies kept in the metadata database, versioned: every change a new version, every change audited.

``apply`` parses a document and stores it as the next version of its ``name`` when its content differs
from the version in force (comments and formatting are not content: see ``Policy.digest``); the same
content again is ``unchanged`` and writes nothing. The newest version of each name is in force unless
it was retired; ``retire`` retires every version of a name, so an older one never comes back into force
by surprise (applying the name again starts a new version). Everything is scoped to the acting project
(``Platform.project``).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import from_ms, now_ms
from steward.errors import Conflict, IntegrityError, InvalidInput, NotFound
from steward.governance import audit
from steward.governance.context import current_identity
from steward.governance.policy import Policy, parse_policy
from steward.store.tables import policies

if TYPE_CHECKING:
    from steward.store.platform import Platform

_ATTEMPTS = 5


@dataclass(frozen=True)
class StoredPolicy:
    """One stored version of a policy.

    Attributes:
        name: The policy's name.
        version: Its version number (1, 2, …).
        policy: The parsed document.
        document: The YAML text as it was applied.
        digest: The digest of its content (``Policy.digest``).
        created_at: When this version was applied.
        created_by: Who applied it.
        retired_at: When it was retired, if it was.
        in_force: Whether it is the version that gates promotions now (the newest, not retired).
    """

    name: str
    version: int
    policy: Policy
    document: str
    digest: str
    created_at: datetime
    created_by: str
    retired_at: datetime | None
    in_force: bool

    def to_json(self, document: bool = True) -> dict[str, Any]:
        """Return a JSON-ready dict (with the document's text unless ``document`` is False)."""
        found = {
            "name": self.name,
            "version": self.version,
            "description": self.policy.description,
            "aliases": list(self.policy.aliases),
            "models": list(self.policy.models),
            "rules": [r.text for r in self.policy.rules],
            "required_approvals": self.policy.required_approvals,
            "digest": self.digest,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "in_force": self.in_force,
        }
        return {**found, "document": self.document} if document else found


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did: ``status`` is ``created`` (a new name), ``updated`` (a new version of it) or
    ``unchanged`` (its content is the version in force)."""

    policy: StoredPolicy
    status: str

    def to_json(self) -> dict[str, Any]:
        """Return ``{"status", "policy"}``."""
        return {"status": self.status, "policy": self.policy.to_json()}


@functools.lru_cache(maxsize=256)
def _parsed(document: str) -> Policy:
    return parse_policy(document)


def _policy_of(row: Row[Any]) -> Policy:
    try:
        return _parsed(row.document)
    except InvalidInput as exc:
        raise IntegrityError(
            f"stored policy {row.name!r} version {row.version} no longer parses ({exc.message}): apply a "
            "corrected version",
            {"policy": row.name, "version": row.version},
        ) from None


def _stored(row: Row[Any], newest: int) -> StoredPolicy:
    return StoredPolicy(
        name=row.name,
        version=int(row.version),
        policy=_policy_of(row),
        document=row.document,
        digest=row.digest,
        created_at=from_ms(row.created_at),
        created_by=row.created_by,
        retired_at=from_ms(row.retired_at),
        in_force=row.version == newest and row.retired_at is None,
    )


class PolicyStore:
    """Versioned policies of the acting project.

    Args:
        platform: The platform whose metadata store holds them.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def _rows(self, conn: Connection, name: str | None = None) -> builtins.list[Row[Any]]:
        query = select(policies).where(policies.c.project == self.platform.project)
        if name is not None:
            query = query.where(policies.c.name == name)
        return list(conn.execute(query.order_by(policies.c.name, policies.c.version)))

    def _audit(self, conn: Connection, action: str, name: str, **fields: Any) -> None:
        audit.append(
            conn, actor=self.platform.actor, action=action, resource_kind="policy", resource_id=name,
            request_id=self.platform.request_id, checkpoint=audit.checkpointer_for(self.platform.settings),
            project=self.platform.project, **fields,
        )  # fmt: skip

    def apply(self, document: str) -> Applied:
        """Store ``document`` as the next version of its policy, unless its content is in force already.

        Raises:
            InvalidInput: For a bad document (naming the rule and its line); nothing is stored.
            Forbidden: The acting identity lacks ``policies:write``.
            Conflict: Too many concurrent writers of the same policy.
        """
        policy = parse_policy(document)
        current_identity().require("policies:write", self.platform.project)
        for _attempt in range(_ATTEMPTS):
            try:
                with self.platform.metadata.transaction() as conn:
                    rows = self._rows(conn, policy.name)
                    latest = rows[-1] if rows else None
                    if latest is not None and latest.retired_at is None and latest.digest == policy.digest:
                        return Applied(_stored(latest, latest.version), "unchanged")
                    version = latest.version + 1 if latest is not None else 1
                    conn.execute(insert(policies), {
                        "id": new_id(), "project": self.platform.project, "name": policy.name,
                        "version": version, "document": document, "digest": policy.digest,
                        "created_at": now_ms(), "created_by": self.platform.actor,
                    })  # fmt: skip
                    status = "updated" if latest is not None else "created"
                    self._audit(
                        conn, "policy.apply", policy.name, after_digest=policy.digest,
                        before_digest=latest.digest if latest is not None else None,
                        details={"version": version, "status": status, "aliases": list(policy.aliases),
                                 "models": list(policy.models), "rules": len(policy.rules)},
                    )  # fmt: skip
            except SQLIntegrityError:
                continue  # another writer took the version number: read again
            return Applied(self.get(policy.name, version), status)
        raise Conflict(
            f"could not apply policy {policy.name!r}: too many concurrent writers", {"field": "name"}
        )

    def list(self, include_retired: bool = False) -> builtins.list[StoredPolicy]:
        """The newest version of each policy, by name: only those in force unless ``include_retired``."""
        with self.platform.metadata.read() as conn:
            rows = self._rows(conn)
        newest: dict[str, Row[Any]] = {}
        for row in rows:
            newest[row.name] = row
        found = [_stored(row, row.version) for row in newest.values()]
        return [p for p in found if include_retired or p.in_force]

    def in_force(self) -> builtins.list[StoredPolicy]:
        """The policies gating promotions now, by name."""
        return self.list()

    def protecting(self, model: str, alias: str) -> builtins.list[StoredPolicy]:
        """The policies in force that gate ``model`` taking ``alias`` (none: the alias is not protected)."""
        return [p for p in self.in_force() if p.policy.applies_to(model, alias)]

    def _versions(self, name: str) -> Sequence[Row[Any]]:
        validate_name(name, "policy")
        with self.platform.metadata.read() as conn:
            rows = self._rows(conn, name)
        if not rows:
            raise NotFound(f"policy {name!r} not found", {"field": "policy"})
        return rows

    def get(self, name: str, version: int | None = None) -> StoredPolicy:
        """One version of a policy: the newest (in force, or retired) by default.

        Raises:
            NotFound: There is no such policy or version.
        """
        rows = self._versions(name)
        newest = rows[-1].version
        if version is None:
            return _stored(rows[-1], newest)
        for row in rows:
            if row.version == version:
                return _stored(row, newest)
        raise NotFound(
            f"policy {name!r} has no version {version} (it has 1 to {newest})", {"field": "version"}
        )

    def history(self, name: str) -> builtins.list[StoredPolicy]:
        """Every version of a policy, oldest first.

        Raises:
            NotFound: There is no such policy.
        """
        rows = self._versions(name)
        return [_stored(row, rows[-1].version) for row in rows]

    def retire(self, name: str, reason: str = "") -> StoredPolicy:
        """Take a policy out of force (every version of it), recording who and why.

        Raises:
            NotFound: There is no such policy.
            Conflict: It is retired already.
            Forbidden: The acting identity lacks ``policies:write``.
        """
        self._versions(name)
        current_identity().require("policies:write", self.platform.project)
        with self.platform.metadata.transaction() as conn:
            changed = conn.execute(
                update(policies)
                .where(
                    policies.c.project == self.platform.project,
                    policies.c.name == name,
                    policies.c.retired_at.is_(None),
                )
                .values(retired_at=now_ms())
            ).rowcount
            if changed:
                self._audit(conn, "policy.retire", name, details={"reason": reason})
        if not changed:
            raise Conflict(f"policy {name!r} is retired already", {"field": "policy"})
        return self.get(name)
