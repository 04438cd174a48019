"""The audit trail: append-only, hash-chained entries written in the same transaction as the change.

Each entry carries the SHA-256 of the one before it (``prev_hash``) and its own (``hash``, over every
field and ``prev_hash``), so an edited, deleted, reordered or inserted entry breaks the chain at a
point ``verify_chain`` names. Appends are serialised (an advisory lock on PostgreSQL; SQLite writers are
serial already), so the chain has no forks. A refusal (``outcome="denied"``) is an entry too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, insert, select, text

from steward.core.ids import new_id
from steward.core.time import now_ms
from steward.store.tables import audit_log

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""
OUTCOMES = frozenset({"ok", "denied", "failed"})
_PG_AUDIT_LOCK = 0x57E3A0D17  # advisory lock key serialising appends on PostgreSQL


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the trail.

    Attributes:
        seq: Its position (1, 2, 3 …).
        at: Unix milliseconds.
        action: What was done, ``<domain>.<verb>`` (``dataset.publish``, ``dataset.read_pii`` …).
        resource_kind: What it was done to (``dataset``, ``dataset_version`` …).
        resource_id: Which one.
        outcome: ``ok``, ``denied`` or ``failed``.
        details: JSON-ready facts (never secrets).
        before_digest: Digest of the resource before the change, where there is one.
        after_digest: Digest of the resource after it.
    """

    seq: int
    id: str
    at: int
    actor: str
    action: str
    resource_kind: str
    resource_id: str
    outcome: str
    details: Mapping[str, Any]
    request_id: str | None
    before_digest: str | None
    after_digest: str | None
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "seq": self.seq,
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "resource_kind": self.resource_kind,
            "resource_id": self.resource_id,
            "outcome": self.outcome,
            "details": dict(self.details),
            "request_id": self.request_id,
            "before_digest": self.before_digest,
            "after_digest": self.after_digest,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(values: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of an entry's fields and its ``prev_hash``, in a canonical JSON form."""
    fields = [
        values["seq"],
        values["id"],
        values["at"],
        values["actor"],
        values["action"],
        values["resource_kind"],
        values["resource_id"],
        values["outcome"],
        values["details"],
        values["request_id"],
        values["before_digest"],
        values["after_digest"],
        values["prev_hash"],
    ]
    canonical = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    resource_kind: str,
    resource_id: str,
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    before_digest: str | None = None,
    after_digest: str | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (so it commits or rolls back with the change).

    Args:
        conn: A connection inside a write transaction.
        actor: Who acted.
        action: ``<domain>.<verb>``.
        resource_kind: The kind of resource.
        resource_id: Its id or name.
        outcome: ``ok``, ``denied`` or ``failed``.
        details: JSON-ready facts; never secrets.
        request_id: The API request it came from.
        before_digest: Digest of the resource before.
        after_digest: Digest of the resource after.

    Returns:
        The entry written.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})
    last = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    values: dict[str, Any] = {
        "seq": (last.seq if last is not None else 0) + 1,
        "id": new_id(),
        "at": now_ms(),
        "actor": actor,
        "action": action,
        "resource_kind": resource_kind,
        "resource_id": str(resource_id)[:256],
        "outcome": outcome,
        "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
        "request_id": request_id,
        "before_digest": before_digest,
        "after_digest": after_digest,
        "prev_hash": last.hash if last is not None else GENESIS,
    }
    values["hash"] = entry_hash(values)
    conn.execute(insert(audit_log), values)
    return _to_entry(values)


def _to_entry(values: Mapping[str, Any] | Row[Any]) -> AuditEntry:
    v = values._mapping if isinstance(values, Row) else values
    return AuditEntry(
        seq=int(v["seq"]),
        id=v["id"],
        at=int(v["at"]),
        actor=v["actor"],
        action=v["action"],
        resource_kind=v["resource_kind"],
        resource_id=v["resource_id"],
        outcome=v["outcome"],
        details=json.loads(v["details"]),
        request_id=v["request_id"],
        before_digest=v["before_digest"],
        after_digest=v["after_digest"],
        prev_hash=v["prev_hash"],
        hash=v["hash"],
    )


def entries(
    conn: Connection,
    *,
    resource_kind: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """Entries in order, optionally only those about one resource or of one action."""
    query = select(audit_log).order_by(audit_log.c.seq)
    if resource_kind is not None:
        query = query.where(audit_log.c.resource_kind == resource_kind)
    if resource_id is not None:
        query = query.where(audit_log.c.resource_id == resource_id)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    return [_to_entry(row) for row in conn.execute(query)]


def verify_chain(rows: Iterable[AuditEntry]) -> int | None:
    """Return the ``seq`` of the first entry that breaks the chain, or None if the chain is whole.

    An entry breaks it when its hash does not match its fields, its ``prev_hash`` is not the hash of
    the entry before, or its ``seq`` is not one more than the one before (a deleted entry).
    """
    previous, expected_seq = GENESIS, 1
    for entry in rows:
        stored = entry.to_json()
        stored["details"] = json.dumps(dict(entry.details), sort_keys=True, default=str)
        if entry.seq != expected_seq or entry.prev_hash != previous or entry_hash(stored) != entry.hash:
            return entry.seq
        previous, expected_seq = entry.hash, entry.seq + 1
    return None
