"""The audit trail: append-only, hash-chained entries written in the same transaction as the change.

Each entry carries the SHA-256 of the one before it (``prev_hash``) and its own (``hash``, over every
field and ``prev_hash``, see ``entry_hash``), so an edited, deleted, reordered or inserted entry breaks the
chain at a point ``verify`` names. Every ``audit_checkpoint_every`` entries, the entry that completes the
interval is also signed: a checkpoint row (``audit_checkpoints``) holds its ``seq``, its hash, the
signing key's id and the Ed25519 signature of ``steward-audit-checkpoint\\n{seq}\\n{hash}``, written in the
entry's transaction (pass ``checkpoint=checkpointer_for(settings)`` to ``append``). Without the key,
nobody can rewrite the chain up to a checkpoint, even recomputing every hash. Appends are serialised (an
advisory lock on PostgreSQL; SQLite writers are serial already), so the chain has no forks. A refusal
(``outcome="denied"``) is an entry too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, exists, func, select

from steward.core.time import to_ms
from steward.errors import InvalidInput
from steward.governance import audit_copy, signing
from steward.governance.audit_chain import (
    _HASHED,
    CHECKPOINT_PREFIX,
    GENESIS,
    MAX_LIMIT,
    OUTCOMES,
    VERIFY_CHUNK,
    AuditEntry,
    Checkpoint,
    Checkpointer,
    _checkpoints_between,
    append,
    canonical,
    checkpoint_message,
    checkpointer_for,
    entries,
    entry_hash,
    export,
    record,
)
from steward.store.tables import audit_checkpoints, audit_log

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from steward.store.platform import Platform

__all__ = [
    "CHECKPOINT_PREFIX",
    "GENESIS",
    "MAX_LIMIT",
    "OUTCOMES",
    "VERIFY_CHUNK",
    "AuditEntry",
    "AuditService",
    "BadEntry",
    "Checkpoint",
    "Checkpointer",
    "Reason",
    "VerifyReport",
    "append",
    "canonical",
    "checkpoint_message",
    "checkpointer_for",
    "entries",
    "entry_hash",
    "export",
    "record",
    "verify",
    "verify_chain",
    "verify_records",
]

# -- verification ---------------------------------------------------------------------------------------


class Reason(StrEnum):
    """Why an entry is bad."""

    SEQ_GAP = "seq_gap"  # entries before it are missing (deleted), or it was renumbered
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # it does not follow the entry before (reordered, inserted)
    HASH_MISMATCH = "hash_mismatch"  # its fields do not match its hash (edited)
    CHECKPOINT_MISSING = "checkpoint_missing"  # no checkpoint where one was due (strict verification)
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # the checkpoint vouches for another hash (rewritten)
    CHECKPOINT_KEY = "checkpoint_key"  # signed by a key other than the one given
    CHECKPOINT_SIGNATURE = "checkpoint_signature"  # the signature is not valid (forged, edited)
    CHECKPOINT_UNVERIFIABLE = "checkpoint_unverifiable"  # no public key to check a checkpoint with
    CHECKPOINT_ORPHAN = "checkpoint_orphan"  # a checkpoint names an entry that is gone (truncated)


@dataclass(frozen=True)
class BadEntry:
    """The first entry that fails verification.

    Attributes:
        seq: Its ``seq``.
        reason: Which check it fails.
        message: A sentence for a person.
    """

    seq: int
    reason: Reason
    message: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"seq": self.seq, "reason": str(self.reason), "message": self.message}


@dataclass(frozen=True)
class VerifyReport:
    """The result of verifying the trail.

    Attributes:
        ok: Whether every entry and checkpoint checked out.
        entries: Entries verified (up to the first bad one).
        checkpoints: Valid signed checkpoints met.
        last_seq: The last entry verified, if any.
        last_checkpoint: The last valid checkpoint: record it elsewhere to detect a later truncation.
        first_bad: The first bad entry, or None.
        seconds: How long it took.
        key_id: The id of the public key the checkpoints were checked with.
    """

    ok: bool
    entries: int
    checkpoints: int
    last_seq: int | None
    last_checkpoint: Checkpoint | None
    first_bad: BadEntry | None
    seconds: float
    key_id: str | None

    @property
    def rate(self) -> float:
        """Entries verified per second."""
        return self.entries / self.seconds if self.seconds > 0 else 0.0

    @property
    def unsigned_tail(self) -> int:
        """Entries after the last checkpoint: protected by the hash chain only."""
        return (self.last_seq or 0) - (self.last_checkpoint.seq if self.last_checkpoint else 0)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "ok": self.ok, "entries": self.entries, "checkpoints": self.checkpoints,
            "last_seq": self.last_seq, "unsigned_tail": self.unsigned_tail,
            "last_checkpoint": self.last_checkpoint.to_json() if self.last_checkpoint else None,
            "first_bad": self.first_bad.to_json() if self.first_bad else None,
            "seconds": self.seconds, "rate": self.rate, "key_id": self.key_id,
        }  # fmt: skip


_Row = tuple[int, str, str, str]  # seq, prev_hash, stored hash, SHA-256 of the canonical text


class _Walk:
    """The chain check, fed chunks of ``(seq, prev_hash, hash, digest)`` in ``seq`` order, where
    ``digest`` is the SHA-256 the caller computed of the entry's canonical text."""

    def __init__(self, public_key: Ed25519PublicKey | None, every: int | None) -> None:
        self.public_key = public_key
        self.key_id = signing.key_id(public_key) if public_key is not None else None
        self.every = every
        self.previous, self.expected = GENESIS, 1
        self.checkpoints = 0
        self.last_checkpoint: Checkpoint | None = None
        self.bad: BadEntry | None = None

    def feed(
        self, rows: Sequence[_Row], cps: Mapping[int, Checkpoint], recheck: Callable[[int], str] | None = None
    ) -> bool:
        """Check one chunk; return False at the first bad entry (then in ``bad``)."""
        if not rows:
            return True
        marks = set(cps)
        if self.every:
            first = -(-rows[0][0] // self.every) * self.every
            marks.update(range(first, rows[-1][0] + 1, self.every))
        previous, expected = self.previous, self.expected
        # The tight loop: one combined test per entry; the slow path says what failed.
        for seq, prev_hash, stored, digest in rows:
            if seq != expected or prev_hash != previous or digest != stored:
                self.bad = self._diagnose(seq, prev_hash, stored, previous, expected, recheck)
                if self.bad is not None:
                    break
            if seq in marks:
                self.bad = self._checkpoint(seq, stored, cps.get(seq))
                if self.bad is not None:
                    break
            previous, expected = stored, seq + 1
        self.previous, self.expected = previous, expected
        return self.bad is None

    def advance(self, last: int, stored_of: Callable[[int], str], cps: Mapping[int, Checkpoint]) -> bool:
        """Move past entries ``expected`` to ``last``, which the caller found contiguous, chained and
        matching their hashes; check the checkpoints among them (``stored_of`` gives an entry's hash).
        Return False at the first bad checkpoint (then in ``bad``)."""
        first = self.expected
        marks = {seq for seq in cps if first <= seq <= last}
        if self.every:
            marks.update(range(-(-first // self.every) * self.every, last + 1, self.every))
        for seq in sorted(marks):
            self.bad = self._checkpoint(seq, stored_of(seq), cps.get(seq))
            if self.bad is not None:
                self.previous, self.expected = stored_of(seq - 1) if seq > first else self.previous, seq
                return False
        self.previous, self.expected = stored_of(last), last + 1
        return True

    @staticmethod
    def _diagnose(
        seq: int, prev_hash: str, stored: str, previous: str, expected: int,
        recheck: Callable[[int], str] | None,
    ) -> BadEntry | None:  # fmt: skip
        if seq < expected:  # only in records handed over: the database orders them
            message = f"entry {seq} comes after entry {expected - 1}: entries are out of order or repeated"
            return BadEntry(seq, Reason.SEQ_GAP, message)
        if seq != expected:
            missing = (
                f"entry {expected} is" if seq == expected + 1 else f"entries {expected} to {seq - 1} are"
            )
            message = f"entry {seq} comes after entry {expected - 1}: {missing} missing (deleted)"
            return BadEntry(seq, Reason.SEQ_GAP, message)
        if prev_hash != previous:
            message = (
                f"entry {seq} does not follow entry {seq - 1} (its prev_hash is not that entry's hash): "
                "entries were reordered, or one was inserted or replaced before it"
            )
            return BadEntry(seq, Reason.PREV_HASH_MISMATCH, message)
        if recheck is not None and recheck(seq) == stored:
            return None
        return BadEntry(seq, Reason.HASH_MISMATCH, f"entry {seq} does not match its hash: it was edited")

    def _checkpoint(self, seq: int, stored: str, cp: Checkpoint | None) -> BadEntry | None:
        if cp is None:
            message = f"entry {seq} has no signed checkpoint (one is due every {self.every})"
            return BadEntry(seq, Reason.CHECKPOINT_MISSING, message)
        if cp.hash != stored:
            message = (
                f"the signed checkpoint of entry {seq} vouches for another hash: the trail up to it was "
                "rewritten, or the checkpoint edited"
            )
            return BadEntry(seq, Reason.CHECKPOINT_MISMATCH, message)
        if self.public_key is None:
            message = f"no public key to check the signed checkpoint of entry {seq} with"
            return BadEntry(seq, Reason.CHECKPOINT_UNVERIFIABLE, message)
        if cp.key_id != self.key_id:
            message = f"the checkpoint of entry {seq} was signed by key {cp.key_id}, not by {self.key_id}"
            return BadEntry(seq, Reason.CHECKPOINT_KEY, message)
        try:
            signature = bytes.fromhex(cp.signature)
        except ValueError:
            signature = b""
        if not signing.verify(checkpoint_message(seq, stored), signature, self.public_key):
            message = f"the signature of the checkpoint of entry {seq} is not valid: forged or edited"
            return BadEntry(seq, Reason.CHECKPOINT_SIGNATURE, message)
        self.checkpoints += 1
        self.last_checkpoint = cp
        return None

    def report(self, started: float) -> VerifyReport:
        last = self.expected - 1
        return VerifyReport(
            ok=self.bad is None, entries=last, checkpoints=self.checkpoints, last_seq=last or None,
            last_checkpoint=self.last_checkpoint, first_bad=self.bad,
            seconds=time.perf_counter() - started, key_id=self.key_id,
        )  # fmt: skip


# SQLite renders each entry's canonical JSON itself: its json_array writes exactly what ``canonical``
# does, and only one short string per entry crosses into Python. PostgreSQL streams raw columns instead
# (``audit_copy``): rendering there costs more than everything else.
_SQLITE_CANONICAL = f"json_array({', '.join(_HASHED)})"
_PG_RANGE = 250_000  # entries per COPY stream; the checkpoints of one range are read before it


def verify(
    conn: Connection,
    public_key: Ed25519PublicKey | None,
    *,
    every: int | None = None,
    chunk: int = VERIFY_CHUNK,
) -> VerifyReport:
    """Walk the whole trail in ``seq`` order and name the first bad entry and why.

    Memory stays flat at any length: SQLite is read ``chunk`` entries per query, its own ``json_array``
    rendering each entry's canonical JSON (an entry whose hash does not match is rendered again here
    from its columns before it is called bad); PostgreSQL streams the raw columns through COPY and
    they are rendered here (``audit_copy``).

    What it detects: an edited entry (``hash_mismatch``); a deleted one (``seq_gap`` at the entry after
    it); entries reordered or one inserted in the middle (``prev_hash_mismatch``); a checkpoint that is
    forged, edited or signed by another key (``checkpoint_signature``, ``checkpoint_key``); a rewritten
    stretch whose hashes were all recomputed, at the next checkpoint (``checkpoint_mismatch``); a tail
    cut back past a checkpoint whose row was left (``checkpoint_orphan``); with ``every``, a missing
    checkpoint (``checkpoint_missing``).

    What it cannot detect: entries removed from, rewritten in or appended to the tail after the last
    checkpoint, since the hash chain alone has no secret; nor the whole tail cut back with its
    checkpoints. Those show only against a record kept elsewhere of how far the trail went (the
    report's ``last_checkpoint``, or the number of checkpoints: ``last_seq // every`` are due).

    Args:
        conn: A connection (SQLite or PostgreSQL).
        public_key: The key the checkpoints must be signed with; None fails at the first checkpoint.
        every: The checkpoint interval to hold the trail to: a missing checkpoint then fails too.
        chunk: Entries per query (SQLite).
    """
    started = time.perf_counter()
    walk = _Walk(public_key, every)
    # This statement begins the transaction, so every chunk reads the same snapshot on SQLite.
    last = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
    # Rows come as plain tuples from the driver's cursor: SQLAlchemy's Row costs a fifth of the rate.
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        if conn.dialect.name == "postgresql":
            _walk_postgres(conn, dbapi, walk, last)
        else:
            _walk_sqlite(conn, cursor, walk, chunk)
    finally:
        cursor.close()
    if walk.bad is None:
        walk.bad = _orphan(conn, walk.expected - 1)
    return walk.report(started)


def _walk_sqlite(conn: Connection, cursor: Any, walk: _Walk, chunk: int) -> None:
    sql = (
        f"SELECT seq, prev_hash, hash, {_SQLITE_CANONICAL} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
    )
    sha256 = hashlib.sha256

    def recheck(seq: int) -> str:
        # SQLite rendered the canonical text; rendering it here first rules out any difference.
        row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).one()
        return hashlib.sha256(canonical([row._mapping[name] for name in _HASHED]).encode()).hexdigest()

    after = 0
    while True:
        cursor.execute(sql, (after, chunk))
        rows = [(seq, prev, stored, sha256(text.encode()).hexdigest()) for seq, prev, stored, text in cursor]
        if not rows or not walk.feed(rows, _checkpoints_between(conn, after, rows[-1][0]), recheck):
            return
        after = rows[-1][0]


def _walk_postgres(conn: Connection, dbapi: Any, walk: _Walk, last: int) -> None:
    for after in range(0, last, _PG_RANGE):
        end = min(after + _PG_RANGE, last)
        checkpoints = _checkpoints_between(conn, after, end)
        for lines in audit_copy.stream(dbapi, after, end):
            first = walk.expected
            if audit_copy.chained(lines, walk.previous.encode(), first):

                def stored_of(seq: int, lines: list[bytes] = lines, first: int = first) -> str:
                    return audit_copy.stored_hash(lines[seq - first])

                if not walk.advance(first + len(lines) - 1, stored_of, checkpoints):
                    return
            elif not walk.feed(audit_copy.digests(lines), checkpoints):
                return


def _orphan(conn: Connection, last: int) -> BadEntry | None:
    cp = audit_checkpoints.c
    found = conn.execute(
        select(cp.seq)
        .where(and_(cp.seq > last, ~exists().where(audit_log.c.seq == cp.seq)))
        .order_by(cp.seq)
        .limit(1)
    ).scalar()
    if found is None:
        return None
    message = (
        f"a signed checkpoint names entry {found}, which is gone: the trail was cut back after entry {last}"
    )
    return BadEntry(int(found), Reason.CHECKPOINT_ORPHAN, message)


def verify_records(
    records: Iterable[Mapping[str, Any]],
    public_key: Ed25519PublicKey | None,
    *,
    every: int | None = None,
) -> VerifyReport:
    """Verify exported records (``export``'s, e.g. parsed from JSON lines), as ``verify`` does the table.

    Args:
        records: The records, in ``seq`` order.
        public_key: The key the checkpoints must be signed with.
        every: The checkpoint interval to hold them to.

    Raises:
        InvalidInput: A record lacks a field.
    """
    started = time.perf_counter()
    walk = _Walk(public_key, every)
    rows: list[_Row] = []
    cps: dict[int, Checkpoint] = {}
    for item in records:
        try:
            fields = [item[name] for name in _HASHED if name != "details"]
            details = item.get("details_json") or json.dumps(item["details"], sort_keys=True, default=str)
            fields.insert(_HASHED.index("details"), details)
            digest = hashlib.sha256(canonical(fields).encode()).hexdigest()
            rows.append((item["seq"], item["prev_hash"], item["hash"], digest))
            if item.get("checkpoint"):
                cps[item["seq"]] = Checkpoint(**item["checkpoint"])
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"not an exported audit record: {exc}", {"field": "records"}) from None
        if len(rows) >= VERIFY_CHUNK:
            if not walk.feed(rows, cps):
                return walk.report(started)
            rows, cps = [], {}
    walk.feed(rows, cps)
    return walk.report(started)


def verify_chain(rows: Iterable[AuditEntry]) -> int | None:
    """Return the ``seq`` of the first entry that breaks the chain, or None if the chain is whole.

    An entry breaks it when its hash does not match its fields, its ``prev_hash`` is not the hash of
    the entry before, or its ``seq`` is not one more than the one before (a deleted entry). Signed
    checkpoints are not checked: ``verify`` does that.
    """
    walk = _Walk(None, None)
    walk.feed(
        [(e.seq, e.prev_hash, e.hash, hashlib.sha256(e.canonical().encode()).hexdigest()) for e in rows], {}
    )
    return walk.bad.seq if walk.bad is not None else None


# -- the service ------------------------------------------------------------------------------------------


class AuditService:
    """Reading and verifying the trail of one platform: what the ``audit`` CLI and routes call.

    Args:
        platform: The platform whose metadata store holds the trail.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def log(
        self,
        *,
        actor: str | None = None,
        resource_kind: str | None = None,
        resource_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        limit: int = 100,
        project: str | None = None,
        with_unscoped: bool = False,
    ) -> list[AuditEntry]:
        """Return the newest entries matching every filter given, newest first.

        Args:
            actor: Only by this actor.
            resource_kind: Only about this kind of resource.
            resource_id: Only about this resource.
            action: Only of this action.
            since: Only at or after this time.
            until: Only at or before this time.
            before: Only with a ``seq`` below this (the last ``seq`` of a page, for the next one).
            limit: At most this many (1 to ``MAX_LIMIT``).
            project: Only about this project (what the API passes: a request sees its project's trail).
            with_unscoped: With ``project``, also the entries of no project (for global roles).

        Raises:
            InvalidInput: For a limit out of range, or ``since`` after ``until``.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", {"field": "limit"})
        if since is not None and until is not None and to_ms(since) > to_ms(until):
            raise InvalidInput("since is after until", {"field": "since"})
        with self.platform.metadata.read() as conn:
            return entries(
                conn, actor=actor, resource_kind=resource_kind, resource_id=resource_id, action=action,
                since=since, until=until, before=before, limit=limit, newest_first=True, project=project,
                with_unscoped=with_unscoped,
            )  # fmt: skip

    def export(self, *, after: int = 0) -> Iterator[dict[str, Any]]:
        """Stream every entry after ``seq`` ``after`` as a record (see ``export``), reading one snapshot."""
        with self.platform.metadata.read() as conn:
            yield from export(conn, after=after)

    def public_key(self) -> Ed25519PublicKey | None:
        """The platform's public key, or None if it has no key yet (nothing is created)."""
        return signing.platform_public_key(self.platform.settings)

    def verify(self, public_key: Ed25519PublicKey | None = None, *, strict: bool = False) -> VerifyReport:
        """Verify the whole trail (see ``verify``).

        Args:
            public_key: The key checkpoints must be signed with; the platform's own by default.
            strict: Also fail where a checkpoint is due (every ``audit_checkpoint_every``) but missing.
        """
        key = public_key if public_key is not None else self.public_key()
        every = self.platform.settings.audit_checkpoint_every if strict else None
        with self.platform.metadata.read() as conn:
            return verify(conn, key, every=every)
