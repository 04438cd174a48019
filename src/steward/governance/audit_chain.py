"""The audit chain's storage: entries, their hashes, signed checkpoints, appends and reads.

``steward.governance.audit`` is the public face (it re-exports these names and adds verification);
this module holds what writing and reading the chain needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select, text

from steward.config import Settings
from steward.core.ids import new_id
from steward.core.time import now_ms, to_ms
from steward.governance import signing
from steward.store.tables import audit_checkpoints, audit_log

if TYPE_CHECKING:
    from steward.store.platform import Platform

    pass

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""
OUTCOMES = frozenset({"ok", "denied", "failed"})
CHECKPOINT_PREFIX = "steward-audit-checkpoint"
"""The first line of every signed checkpoint message."""
VERIFY_CHUNK = 5000
"""Entries fetched per query while verifying or exporting."""
MAX_LIMIT = 10_000
"""The most entries one ``AuditService.log`` call returns."""
_PG_AUDIT_LOCK = 0x57E3A0D17  # advisory lock key serialising appends on PostgreSQL
_canonical_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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
        details_text: ``details`` as stored (JSON text): what the hash covers.
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
    details_text: str = field(default="", repr=False, compare=False)

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

    def canonical(self) -> str:
        """Return the canonical JSON text that ``hash`` is the SHA-256 of."""
        details = self.details_text or json.dumps(dict(self.details), sort_keys=True, default=str)
        return canonical(
            (self.seq, self.id, self.at, self.actor, self.action, self.resource_kind, self.resource_id,
             self.outcome, details, self.request_id, self.before_digest, self.after_digest, self.prev_hash)
        )  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint: key ``key_id`` signed ``checkpoint_message(seq, hash)``.

    Attributes:
        seq: The entry it vouches for.
        hash: That entry's hash.
        key_id: The signing key's id (``signing.key_id``).
        signature: The Ed25519 signature, hex.
        at: When it was made, Unix milliseconds.
    """

    seq: int
    hash: str
    key_id: str
    signature: str
    at: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"seq": self.seq, "hash": self.hash, "key_id": self.key_id, "signature": self.signature,
                "at": self.at}  # fmt: skip


def canonical(fields: Sequence[Any]) -> str:
    """Return the canonical JSON of an entry's fields, in ``entry_hash``'s order, ``details`` as text."""
    return _canonical_json(fields)


def entry_hash(values: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of an entry's fields and its ``prev_hash``, in a canonical JSON form.

    The form is the compact JSON array (``ensure_ascii=False``) of ``seq, id, at, actor, action,
    resource_kind, resource_id, outcome, details, request_id, before_digest, after_digest, prev_hash``,
    where ``details`` is the stored JSON *text* (a string in the array), encoded as UTF-8.
    """
    fields = [values[name] for name in _HASHED]
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


_HASHED = ("seq", "id", "at", "actor", "action", "resource_kind", "resource_id", "outcome", "details",
           "request_id", "before_digest", "after_digest", "prev_hash")  # fmt: skip


def checkpoint_message(seq: int, entry_hash: str) -> bytes:
    """Return the bytes a checkpoint signs: ``steward-audit-checkpoint\\n{seq}\\n{hash}``."""
    return f"{CHECKPOINT_PREFIX}\n{seq}\n{entry_hash}".encode()


class Checkpointer:
    """Signs a checkpoint of every ``every``-th entry (``seq`` a multiple of ``every``).

    Args:
        signer: The signer, or a callable returning it (called only when a checkpoint is due, so the key
            is loaded, or first created, only then).
        every: The interval, in entries.
    """

    def __init__(self, signer: signing.Signer | Callable[[], signing.Signer], every: int) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self._signer = signer
        self.every = every

    @property
    def signer(self) -> signing.Signer:
        """The signer."""
        return self._signer if isinstance(self._signer, signing.Signer) else self._signer()

    def due(self, seq: int) -> bool:
        """Whether the entry ``seq`` completes an interval."""
        return seq % self.every == 0

    def sign(self, seq: int, entry_hash: str) -> Checkpoint:
        """Return the checkpoint of entry ``seq`` whose hash is ``entry_hash``."""
        signer = self.signer
        signature = signer.sign(checkpoint_message(seq, entry_hash)).hex()
        return Checkpoint(seq, entry_hash, signer.key_id, signature, now_ms())


def checkpointer_for(settings: Settings) -> Checkpointer:
    """Return the checkpointer of these settings: the platform key, every ``audit_checkpoint_every``."""
    return Checkpointer(lambda: signing.platform_signer(settings), settings.audit_checkpoint_every)


def record(
    platform: Platform,
    conn: Connection,
    action: str,
    resource_kind: str,
    resource_id: str,
    **fields: Any,
) -> AuditEntry:
    """Append an entry by the platform's acting identity, in its project and request, with its
    checkpoints: what every service's "audit this change" needs, inside the caller's transaction.

    Args:
        platform: Who acts, in which project and request; its settings sign the checkpoints.
        conn: A connection inside a write transaction.
        action: ``<domain>.<verb>``.
        resource_kind: The kind of resource.
        resource_id: Its id or name.
        **fields: ``outcome``, ``details``, ``before_digest``, ``after_digest`` as for ``append``.
    """
    return append(
        conn,
        actor=platform.actor,
        action=action,
        resource_kind=resource_kind,
        resource_id=resource_id,
        checkpoint=checkpointer_for(platform.settings),
        project=platform.project,
        request_id=platform.request_id,
        **fields,
    )


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
    checkpoint: Checkpointer | None = None,
    project: str | None = None,
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
        checkpoint: Signs a checkpoint, in this transaction, when this entry completes its interval.
        project: The project of the resource: kept in ``details`` (so the hash covers it) and in the
            indexed ``project`` column that scopes reads.

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
        "details": json.dumps(
            {**(details or {}), "project": project} if project else dict(details or {}),
            sort_keys=True,
            default=str,
        ),
        "request_id": request_id,
        "before_digest": before_digest,
        "after_digest": after_digest,
        "prev_hash": last.hash if last is not None else GENESIS,
    }
    values["hash"] = entry_hash(values)
    conn.execute(insert(audit_log), {**values, "project": project})
    if checkpoint is not None and checkpoint.due(values["seq"]):
        signed = checkpoint.sign(values["seq"], values["hash"])
        conn.execute(insert(audit_checkpoints), signed.to_json())
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
        details_text=v["details"],
    )


def _to_checkpoint(row: Row[Any]) -> Checkpoint:
    return Checkpoint(int(row.seq), row.hash, row.key_id, row.signature, int(row.at))


def entries(
    conn: Connection,
    *,
    resource_kind: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    project: str | None = None,
    with_unscoped: bool = False,
) -> list[AuditEntry]:
    """Entries in ``seq`` order, optionally only those matching every filter given.

    Args:
        conn: A connection.
        resource_kind: Only about this kind of resource.
        resource_id: Only about this resource.
        action: Only of this action.
        actor: Only by this actor.
        since: Only at or after this time.
        until: Only at or before this time.
        before: Only with a ``seq`` below this (to page back through the trail).
        limit: At most this many (the newest ones when ``newest_first``).
        newest_first: Highest ``seq`` first.
        project: Only about this project's resources.
        with_unscoped: With ``project``, also the platform-wide entries that belong to no project
            (principals, tokens, refused anonymous requests, entries older than projects).
    """
    c = audit_log.c
    query = select(audit_log).order_by(c.seq.desc() if newest_first else c.seq)
    for column, value in ((c.resource_kind, resource_kind), (c.resource_id, resource_id),
                          (c.action, action), (c.actor, actor)):  # fmt: skip
        if value is not None:
            query = query.where(column == value)
    if project is not None:
        query = query.where(
            (c.project == project) | c.project.is_(None) if with_unscoped else c.project == project
        )
    if since is not None:
        query = query.where(c.at >= to_ms(since))
    if until is not None:
        query = query.where(c.at <= to_ms(until))
    if before is not None:
        query = query.where(c.seq < before)
    if limit is not None:
        query = query.limit(limit)
    return [_to_entry(row) for row in conn.execute(query)]


def export(conn: Connection, *, after: int = 0, chunk: int = VERIFY_CHUNK) -> Iterator[dict[str, Any]]:
    """Stream every entry after ``seq`` ``after`` as a JSON-ready record, in order, ``chunk`` at a time.

    A record is ``AuditEntry.to_json()`` plus ``details_json`` (the stored text the hash covers) and, for
    an entry with a signed checkpoint, ``checkpoint`` (``Checkpoint.to_json()``): all that
    ``verify_records`` (or a SIEM) needs to re-verify the chain.
    """
    while True:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(chunk)
        ).all()
        if not rows:
            return
        cps = _checkpoints_between(conn, after, rows[-1].seq)
        for row in rows:
            entry = _to_entry(row)
            record = {**entry.to_json(), "details_json": entry.details_text}
            if entry.seq in cps:
                record["checkpoint"] = cps[entry.seq].to_json()
            yield record
        after = rows[-1].seq


def _checkpoints_between(conn: Connection, after: int, last: int) -> dict[int, Checkpoint]:
    query = select(audit_checkpoints).where(audit_checkpoints.c.seq > after, audit_checkpoints.c.seq <= last)
    return {cp.seq: cp for cp in map(_to_checkpoint, conn.execute(query))}
