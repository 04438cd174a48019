"""Reading the audit trail out of PostgreSQL for ``verify``: a COPY stream, hashed here.

Rendering each entry's canonical JSON in PostgreSQL costs it ~8 µs a row, more than the rest of the
check together, and a query per chunk leaves the server idle while Python hashes. So the columns
stream raw through ``COPY … TO STDOUT`` (the server reads ahead on its own core) and the canonical
text is assembled here, straight from COPY's bytes:

- In COPY's text format a backslash is written ``\\\\`` and a NULL is ``\\N``; quotes are left alone.
  A field with no quote and no backslash is therefore its own JSON string body, and ``details`` (JSON
  text, which never holds a raw control character) becomes a JSON string by escaping its quotes,
  since its backslashes arrive already doubled.
- Any other entry (a quote or backslash in a plain column), and any entry whose quick rendering does
  not match its stored hash, is decoded field by field and rendered by ``audit_chain.canonical``, the
  one definition of the form, before it is judged. The quick path can only ever agree with it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from typing import Any, Final

from steward.errors import IntegrityError
from steward.governance.audit_chain import canonical

COLUMNS: Final = (
    "seq", "id", "at", "actor", "action", "resource_kind", "resource_id", "outcome",
    "request_id", "before_digest", "after_digest", "prev_hash", "hash", "details",
)  # fmt: skip
"""COPY's column order: the hashed fields with ``details`` moved last (so it is cut off by one
``rfind``), and the stored ``hash`` before it."""

_QUICK: Final = b'[%b,"%b",%b,"%b","%b","%b","%b","%b","%b",%b,%b,%b,"%b"]'
_NULL: Final = b"\\N"
_UNESCAPE: Final = re.compile(rb"\\(.)")
_ESCAPES: Final = {b"\\": b"\\", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}

Digests = list[tuple[int, str, str, str]]
"""Rows as ``_Walk.feed`` takes them: ``(seq, prev_hash, stored hash, hash of the canonical text)``."""


def _quoted(value: bytes) -> bytes:
    return b"null" if value == _NULL else b'"' + value + b'"'


def _field(value: bytes) -> str | None:
    if value == _NULL:
        return None
    return _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), value).decode()


def exact_digest(line: bytes) -> str:
    """The SHA-256 of one COPY line's canonical text, each field decoded and rendered by ``canonical``."""
    values: list[Any] = [_field(value) for value in line.split(b"\t")]
    seq, id_, at, actor, action, kind, rid, outcome, request, before, after, prev, _stored, details = values
    fields = (
        int(seq),
        id_,
        int(at),
        actor,
        action,
        kind,
        rid,
        outcome,
        details,
        request,
        before,
        after,
        prev,
    )
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


def quick_text(line: bytes, fields: list[bytes]) -> bytes | None:
    """The canonical text of one COPY line assembled from its bytes, or None if the line needs decoding
    (a quote or a backslash, other than a NULL, in a column other than ``details``).

    Args:
        line: The line.
        fields: ``line.split(b"\\t")``.
    """
    seq, id_, at, actor, action, kind, rid, outcome, request, before, after, prev, _stored, details = fields
    cut = len(line) - len(details) - 1
    if line.find(b'"', 0, cut) >= 0 or line.count(b"\\", 0, cut) != line.count(_NULL, 0, cut):
        return None
    return _QUICK % (
        seq, id_, at, actor, action, kind, rid, outcome, details.replace(b'"', b'\\"'),
        _quoted(request), _quoted(before), _quoted(after), prev,
    )  # fmt: skip


def digests(lines: list[bytes]) -> Digests:
    """Turn complete COPY lines into ``_Walk.feed`` rows.

    ``quick_text``, inlined: this loop is most of ``verify``'s time on PostgreSQL.
    """
    sha256, quick, null = hashlib.sha256, _QUICK, _NULL
    rows: Digests = []
    append = rows.append
    for line in lines:
        seq, id_, at, actor, action, kind, rid, outcome, request, before, after, prev, stored, details = (
            line.split(b"\t")
        )
        cut = len(line) - len(details) - 1
        stored_text = stored.decode()
        digest = ""
        if line.find(b'"', 0, cut) < 0 and line.count(b"\\", 0, cut) == line.count(null, 0, cut):
            text = quick % (
                seq, id_, at, actor, action, kind, rid, outcome, details.replace(b'"', b'\\"'),
                b"null" if request == null else b'"' + request + b'"',
                b"null" if before == null else b'"' + before + b'"',
                b"null" if after == null else b'"' + after + b'"',
                prev,
            )  # fmt: skip
            digest = sha256(text).hexdigest()
        if digest != stored_text:
            digest = exact_digest(line)
        append((int(seq), prev.decode(), stored_text, digest))
    return rows


@functools.lru_cache(maxsize=4)
def _templates(quick: bytes) -> tuple[bytes, ...]:
    """``quick`` with its three nullable slots (``request_id``, ``before_digest``, ``after_digest``, the
    10th to 12th ``%b``) written out for each combination of NULLs, indexed by ``4 * (request is NULL) +
    2 * (before is NULL) + (after is NULL)``: a NULL's slot is ``null%.0b`` (the field formatted away),
    any other ``"%b"``, so a line is rendered without a concatenation or a test per field."""
    head, *slots = quick.split(b"%b")
    found = []
    for mask in range(8):
        nulls = ((mask >> 2) & 1, (mask >> 1) & 1, mask & 1)
        parts = [head]
        for i, rest in enumerate(slots):
            slot = b"%b"
            if 9 <= i <= 11:
                slot = b"null%.0b" if nulls[i - 9] else b'"%b"'
            parts.append(slot + rest)
        found.append(b"".join(parts))
    return tuple(found)


def chained(lines: list[bytes], previous: bytes, expected: int) -> bool:
    """Whether complete COPY lines are sound entries: ``expected``, ``expected + 1``, … each following
    the one before (the first following the hash ``previous``) and matching its stored hash.

    The fast check of a whole batch, in bytes, with no per-entry result: the quick rendering only
    (``quick_text``, inlined), and the entry numbers from the first and the last line alone (COPY reads
    them ordered by ``seq``, the table's integer primary key, so n lines from ``a`` to ``a + n - 1`` hold
    every number between). False means only "look closer": ``digests`` and the chain walk then judge
    the batch and name what is wrong, rendering anything the quick form cannot by ``canonical``.
    """
    if not lines:
        return True
    first, last = lines[0].split(b"\t", 1)[0], lines[-1].split(b"\t", 1)[0]
    if int(first) != expected or int(last) != expected + len(lines) - 1:
        return False
    sha256, null = hashlib.sha256, _NULL
    templates = _templates(_QUICK)
    for line in lines:
        seq, id_, at, actor, action, kind, rid, outcome, request, before, after, prev, stored, details = (
            line.split(b"\t")
        )
        if prev != previous:
            return False
        cut = len(line) - len(details) - 1
        no_request, no_before, no_after = request == null, before == null, after == null
        # Only the nullable columns may be NULL (\N): any other backslash, or a quote, needs decoding.
        if line.find(b'"', 0, cut) >= 0 or line.count(b"\\", 0, cut) != no_request + no_before + no_after:
            return False
        text = templates[no_request * 4 + no_before * 2 + no_after] % (
            seq, id_, at, actor, action, kind, rid, outcome, details.replace(b'"', b'\\"'),
            request, before, after, prev,
        )  # fmt: skip
        if sha256(text).hexdigest().encode() != stored:
            return False
        previous = stored
    return True


def stored_hash(line: bytes) -> str:
    """The stored ``hash`` of one COPY line."""
    return line.split(b"\t", 13)[12].decode()


def stream(connection: Any, after: int, last: int, batch: int = 5_000) -> Iterator[list[bytes]]:
    """Yield the entries with ``after < seq <= last`` as COPY lines, in ``seq`` order, ``batch`` at a time.

    COPY sends one message per row, and psycopg's ``Copy`` iterator costs more per message than the
    rest of the check, so the rows are read with libpq's own ``get_copy_data`` through ``psycopg.pq``.

    Args:
        connection: A psycopg 3 connection inside a transaction; it runs nothing else until the stream
            ends (an early stop drains the rest of the range first, leaving it ready for more).
        after: The last ``seq`` already checked.
        last: The last ``seq`` to read.
        batch: Entries per chunk yielded.

    Raises:
        IntegrityError: If the database refuses the COPY.
    """
    from psycopg import pq

    sql = (
        f"COPY (SELECT {', '.join(COLUMNS)} FROM audit_log WHERE seq > {int(after)} AND seq <= {int(last)} "
        "ORDER BY seq) TO STDOUT"
    )
    pgconn = connection.pgconn
    result = pgconn.exec_(sql.encode())
    if result.status != pq.ExecStatus.COPY_OUT:
        message = (result.error_message or b"").decode(errors="replace").strip()
        raise IntegrityError(f"the audit trail could not be read: {message}")
    read = pgconn.get_copy_data
    lines: list[bytes] = []
    done = False
    try:
        while True:
            size, data = read(0)
            if size == -1:
                done = True
                break
            lines.append(data[:-1].tobytes())  # each message is one row and its newline
            if len(lines) >= batch:
                yield lines
                lines = []
        if lines:
            yield lines
    finally:
        while not done:
            done = read(0)[0] == -1
        while pgconn.get_result() is not None:
            pass
