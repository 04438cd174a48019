"""Redis streams: read a consumer group in micro-batches, acknowledged only once they are published.

Delivery is at-least-once, and a batch that was committed is never delivered again:

* ``batches()`` first re-reads this consumer's pending entries (delivered before, never acknowledged:
  the process died before ``commit``), then new ones (``XREADGROUP … >``). One read is one ``Batch``.
* ``Batch.commit()`` acknowledges the batch's entries (``XACK``) and records the last committed id in
  the checkpoint (a hash at ``steward:ckpt:<stream>:<group>``, one field per consumer) in the same
  ``MULTI``/``EXEC``, so the two cannot disagree. If batches are committed out of order, the
  checkpoint advances only over the longest committed prefix.
* An entry whose id is at or below the consumer's checkpoint was committed already (e.g. the group was
  deleted and recreated from ``0``): it is acknowledged and skipped.

If the service crashes after publishing a batch and before ``commit``, the batch is delivered again,
identical (the service commits each batch before reading the next, so only one is outstanding). The
service deduplicates by content address: the same entries are the same dataset version. Each table
carries the entry ids in ``id_column``, so two batches with equal field values stay distinct.

``batches()`` stops after ``max_batches`` batches, or when a read finds nothing new within
``block_ms`` (immediately if ``block_ms`` is 0): each call drains what is there, which suits scheduled
ingestion and tests. A long-running consumer calls it in a loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import takewhile
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from steward.core.urls import masked_url
from steward.data.connectors.base import Batch, missing_extra
from steward.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    import redis


class RedisStreamConnector:
    """Read a Redis stream through a consumer group, one ``Batch`` per read.

    Args:
        url: ``redis://[:password@]host:port/db``.
        stream: The stream's key.
        group: The consumer group (created with ``MKSTREAM`` if missing).
        consumer: This reader's name in the group; a restarted reader must keep its name to get its
            pending entries back.
        batch_size: Entries per read at most.
        block_ms: How long a read waits for new entries before ``batches()`` stops (0: no wait).
        max_batches: Stop after this many batches (``None``: when the stream has nothing new).
        checkpoint_key: The hash holding each consumer's last committed id.
        start: Where a new group starts: ``"0"`` (the whole stream) or ``"$"`` (only new entries).
        id_column: The column holding each entry's id (``None``: no such column).
    """

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str = "steward",
        batch_size: int = 1000,
        block_ms: int = 1000,
        max_batches: int | None = None,
        checkpoint_key: str | None = None,
        start: str = "0",
        id_column: str | None = "_id",
    ) -> None:
        if batch_size < 1 or block_ms < 0 or (max_batches is not None and max_batches < 1):
            raise InvalidInput("batch_size ≥ 1, block_ms ≥ 0 and max_batches ≥ 1", {"field": "source"})
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.max_batches = max_batches
        self.checkpoint_key = checkpoint_key or f"steward:ckpt:{stream}:{group}"
        self.start = start
        self.id_column = id_column

    def batches(self) -> Iterator[Batch]:
        """Yield this consumer's pending entries, then new ones, one batch per read.

        Raises:
            ServiceUnavailable: Redis cannot be reached (the message masks the password).
            InvalidInput: ``redis`` is not installed, the URL is bad, or the key is not a stream.
        """
        module = _redis()
        try:
            client = module.Redis.from_url(self.url)
        except ValueError as exc:
            raise InvalidInput(f"not a Redis URL: {exc}", {"field": "url"}) from exc
        session = _Session(self, client)
        try:
            yield from self._read_all(session)
        except module.ResponseError as exc:
            raise InvalidInput(
                f"Redis refused a command on {self.stream!r}: {exc}", {"field": "source"}
            ) from exc
        except module.RedisError as exc:
            raise ServiceUnavailable(
                f"cannot read {masked_url(self.url)}: {exc}", {"url": masked_url(self.url)}
            ) from exc
        finally:
            session.closed = True
            client.close()

    def _read_all(self, session: _Session) -> Iterator[Batch]:
        client = session.client
        try:
            client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except _redis().ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        checkpoint = _parse_id(client.hget(self.checkpoint_key, self.consumer))
        cursor: str | None = "0"  # re-read pending entries (after this id) before new ones (">")
        count = 0
        while self.max_batches is None or count < self.max_batches:
            block = None if cursor is not None or not self.block_ms else self.block_ms
            reply = client.xreadgroup(
                self.group, self.consumer, {self.stream: cursor or ">"}, count=self.batch_size, block=block
            )
            entries = _entries(reply)
            if not entries:
                if cursor is None:
                    return
                cursor = None
                continue
            if cursor is not None:
                cursor = _text(entries[-1][0])
            done = [e[0] for e in entries if e[1] is None or _at_or_below(e[0], checkpoint)]
            if done:  # committed before (or deleted from the stream): acknowledge and skip
                client.xack(self.stream, self.group, *done)
            fresh = [e for e in entries if e[1] is not None and not _at_or_below(e[0], checkpoint)]
            if fresh:
                ids = [_text(e[0]) for e in fresh]
                table = _to_table(fresh, self.id_column)
                source = {"kind": "redis_stream", "stream": self.stream, "group": self.group}
                source |= {"first_id": ids[0], "last_id": ids[-1]}
                yield Batch(table, source, session.tracker(ids))
                count += 1


@dataclass
class _Outstanding:
    ids: list[str]
    committed: bool = False


@dataclass
class _Session:
    """One ``batches()`` call: its client and the batches yielded but not yet committed, in order."""

    connector: RedisStreamConnector
    client: redis.Redis
    closed: bool = False
    outstanding: list[_Outstanding] = field(default_factory=list)

    def tracker(self, ids: list[str]) -> Callable[[], None]:
        item = _Outstanding(ids)
        self.outstanding.append(item)
        return lambda: self.commit(item)

    def commit(self, item: _Outstanding) -> None:
        if item.committed:
            return
        c = self.connector
        # Committed batches leave the front of the list, so only the first may move the checkpoint, over
        # itself and the committed batches after it: never past an unacknowledged entry.
        advance = None
        if self.outstanding[0] is item:
            run = [item, *takewhile(lambda later: later.committed, self.outstanding[1:])]
            advance = run[-1].ids[-1]
        try:
            if self.closed:
                with _redis().Redis.from_url(c.url) as client:
                    _ack(client, c, item.ids, advance)
            else:
                _ack(self.client, c, item.ids, advance)
        except _redis().RedisError as exc:
            raise ServiceUnavailable(
                f"cannot acknowledge entries {item.ids[0]}..{item.ids[-1]} of {c.stream!r} "
                f"on {masked_url(c.url)}: {exc}",
                {"url": masked_url(c.url)},
            ) from exc
        item.committed = True
        while self.outstanding and self.outstanding[0].committed:
            self.outstanding.pop(0)


def _ack(client: redis.Redis, c: RedisStreamConnector, ids: list[str], advance: str | None) -> None:
    with client.pipeline(transaction=True) as pipe:
        pipe.xack(c.stream, c.group, *ids)
        if advance is not None:
            pipe.hset(c.checkpoint_key, c.consumer, advance)
        pipe.execute()


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise missing_extra("redis", "redis", exc) from exc
    return redis


def _text(value: bytes | str) -> str:
    """Text of an id or field name; bytes that are not UTF-8 keep their escapes (``\\xff``)."""
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else value


def _parse_id(value: bytes | str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _at_or_below(entry_id: bytes, checkpoint: tuple[int, int] | None) -> bool:
    parsed = _parse_id(entry_id)
    return checkpoint is not None and parsed is not None and parsed <= checkpoint


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
    """The entries of an ``XREADGROUP`` reply for one stream.

    RESP2 replies ``[[stream, entries]]``; redis-py's RESP3 parser ``{stream: [entries]}``, the entries
    wrapped in one more list.
    """
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = [v[0] if v and isinstance(v[0], list) else v for v in reply.values()]
    else:
        streams = [item[1] for item in reply]
    return [(entry_id, fields or None) for entries in streams for entry_id, fields in entries]


def _decode(raw: bytes | str) -> tuple[Any, Any]:
    """A field's value as (JSON value if it parses, else text; its text); bytes if it is not UTF-8."""
    try:
        text = raw if isinstance(raw, str) else raw.decode()  # str: a client with decode_responses
    except UnicodeDecodeError:
        return raw, raw
    try:
        return json.loads(text), text
    except ValueError:
        return text, text


def _to_table(entries: list[tuple[bytes, dict[bytes, bytes] | None]], id_column: str | None) -> pa.Table:
    """One column per field (null where an entry lacks it); a field whose values mix types stays text."""
    rows = [{_text(k): _decode(v) for k, v in (fields or {}).items()} for _, fields in entries]
    names = list(dict.fromkeys(name for row in rows for name in row))
    if id_column is not None and id_column in names:
        raise InvalidInput(
            f"the stream has a field named {id_column!r}: pass another id_column", {"field": "id_column"}
        )
    columns: dict[str, Any] = {}
    if id_column is not None:
        columns[id_column] = pa.array([_text(entry_id) for entry_id, _ in entries], type=pa.string())
    for name in names:
        cells = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array([c[0] if c else None for c in cells])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            texts = [c[1] if c else None for c in cells]
            columns[name] = pa.array(
                [t if isinstance(t, str | None) else t.decode(errors="replace") for t in texts]
            )
    return pa.table(columns)
