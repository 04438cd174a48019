"""The team online store: a Redis server (``redis://host:port/db``, ``rediss://`` for TLS).

Each view of a project is one hash, ``<prefix><project>:<view>``, whose fields are the entity keys
and whose values are ``b"<event time in µs>:" + encoded values``: a read of any number of entities is
one ``HMGET``, and deleting a view is one ``UNLINK``. Writes go through a Lua script that compares
event times on the server (newer or equal wins, atomically), a thousand records a call, pipelined.

Needs ``redis`` (``pip install 'steward-ml[redis]'``), imported only when the store is opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any, NoReturn

from steward.core.urls import masked_url
from steward.data.connectors.base import missing_extra
from steward.errors import InvalidInput, ServiceUnavailable
from steward.features.models import OnlineRecord

DEFAULT_PREFIX = "steward:online:"
_CHUNK = 1000
"""Records per script call: long enough to amortise the call, short enough not to stall the server."""
_CALLS_PER_ROUND_TRIP = 20
_READ_CHUNK = 10_000

# ARGV holds (event time, entity key, stored value) triples; a value starts with its event time.
_WRITE_SCRIPT = """
local stored = 0
for i = 1, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i + 1])
  if (not old) or tonumber(string.match(old, '^(-?%d+):')) <= tonumber(ARGV[i]) then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2])
    stored = stored + 1
  end
end
return stored
"""


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise missing_extra("redis", "redis", exc) from exc
    return redis


def _records(raws: Sequence[bytes | None]) -> list[tuple[int, bytes] | None]:
    """``(event time, encoded values)`` of each stored value (``b"<µs>:<values>"``), None kept."""
    found: list[tuple[int, bytes] | None] = []
    for raw in raws:
        if raw is None:
            found.append(None)
        else:
            ts, _, value = raw.partition(b":")
            found.append((int(ts), value))
    return found


class RedisOnlineStore:
    """The online store on a Redis server, safe to share between threads (a connection pool).

    Args:
        url: ``redis://[user:password@]host:port/db`` or ``rediss://…``.
        prefix: What every key this store makes starts with (tests give each their own).
        **options: Passed to ``redis.Redis.from_url`` (e.g. ``socket_timeout``).

    Raises:
        InvalidInput: If redis-py is not installed (the message says how to install it) or the URL is
            malformed.
    """

    name = "redis"

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, **options: Any) -> None:
        redis = _redis()
        self.url = masked_url(url)
        self.prefix = prefix
        self._error: type[Exception] = redis.RedisError
        settings: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}
        settings.update(options)
        try:
            self._client = redis.Redis.from_url(url, **settings)
        except ValueError as exc:
            raise InvalidInput(
                f"the online store URL {self.url} is malformed: {exc}", {"field": "online_store"}
            ) from None
        self._write = self._client.register_script(_WRITE_SCRIPT)

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.url!r})"

    def _fail(self, exc: Exception) -> NoReturn:
        raise ServiceUnavailable(
            f"the online store {self.url} failed: {exc}", {"url": self.url, "store": self.name}
        ) from exc

    def _hash(self, project: str, view: str) -> str:
        # Names never hold ':' (NAME_PATTERN), but a store must not let one tenant reach another's keys.
        if ":" in project or ":" in view:
            raise InvalidInput(
                f"a project or view name cannot hold ':' ({project!r}, {view!r})", {"field": "view"}
            )
        return f"{self.prefix}{project}:{view}"

    def write(self, project: str, view: str, records: Iterable[OnlineRecord]) -> int:
        """Store each record unless its entity has one with a later event time.

        Atomic per chunk of records (the comparison and the write happen in one server-side script).

        Returns:
            How many records were stored.

        Raises:
            ServiceUnavailable: If the server cannot be reached or refuses the write.
        """
        key = self._hash(project, view)
        stored = 0
        it = iter(records)
        try:
            while True:
                with self._client.pipeline(transaction=False) as pipe:
                    calls = 0
                    for _ in range(_CALLS_PER_ROUND_TRIP):
                        chunk = list(islice(it, _CHUNK))
                        if not chunk:
                            break
                        args: list[Any] = []
                        for entity, ts, value in chunk:
                            args += (ts, entity, b"%d:%b" % (ts, value))
                        self._write(keys=[key], args=args, client=pipe)
                        calls += 1
                    if not calls:
                        break
                    stored += sum(int(n) for n in pipe.execute())
                    if calls < _CALLS_PER_ROUND_TRIP:
                        break
        except self._error as exc:
            self._fail(exc)
        return stored

    def read(self, project: str, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        """Return ``(event time, encoded values)`` per key, in order, None for an unknown entity.

        One round trip (``HGET``/``HMGET``) for up to 10,000 keys.

        Raises:
            ServiceUnavailable: If the server cannot be reached.
        """
        key = self._hash(project, view)
        try:
            if len(keys) == 1:
                raws = [self._client.hget(key, keys[0])]
            elif len(keys) <= _READ_CHUNK:
                raws = self._client.hmget(key, keys) if keys else []
            else:
                with self._client.pipeline(transaction=False) as pipe:
                    for start in range(0, len(keys), _READ_CHUNK):
                        pipe.hmget(key, keys[start : start + _READ_CHUNK])
                    raws = [raw for part in pipe.execute() for raw in part]
        except self._error as exc:
            self._fail(exc)
        return _records(raws)

    def read_views(
        self, project: str, views: Sequence[str], keys: Sequence[str]
    ) -> list[list[tuple[int, bytes] | None]]:
        """Return, per view, ``(event time, encoded values)`` per key, in order (None: unknown entity).

        One round trip for every view (their ``HMGET``s pipelined) when there are at most 10,000 keys.

        Raises:
            ServiceUnavailable: If the server cannot be reached.
        """
        if len(views) == 1 or len(keys) > _READ_CHUNK or not keys:
            return [self.read(project, view, keys) for view in views]
        hashes = [self._hash(project, view) for view in views]
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in hashes:
                    pipe.hmget(key, keys)
                answers = pipe.execute()
        except self._error as exc:
            self._fail(exc)
        return [_records(raws) for raws in answers]

    def delete(self, project: str, view: str) -> int:
        """Remove every entity of a view (one ``UNLINK``); return how many there were.

        Raises:
            ServiceUnavailable: If the server cannot be reached.
        """
        key = self._hash(project, view)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hlen(key)
                pipe.unlink(key)
                count, _ = pipe.execute()
        except self._error as exc:
            self._fail(exc)
        return int(count)

    def close(self) -> None:
        """Close the connection pool; a later call opens new connections."""
        self._client.close()
