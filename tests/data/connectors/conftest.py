"""Redis for the stream connector's tests: the local server, and a key prefix of the test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.services import port_open, service_unavailable

REDIS_HOST = os.environ.get("STEWARD_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("STEWARD_TEST_REDIS_PORT", "6379"))


@dataclass(frozen=True)
class RedisKeys:
    """Where a test's keys live on the Redis server.

    Attributes:
        url: ``redis://host:port/0``.
        prefix: A prefix unique to the test; every key it makes starts with it (or, for checkpoints,
            with ``steward:ckpt:<prefix>``), and all are deleted after the test.
    """

    url: str
    prefix: str


@pytest.fixture
def redis_keys() -> Iterator[RedisKeys]:
    """The local Redis server and a fresh key prefix, whose keys are deleted after the test."""
    if not port_open(REDIS_HOST, REDIS_PORT):
        service_unavailable("redis", f"nothing listens on {REDIS_HOST}:{REDIS_PORT}")
    try:
        import redis
    except ImportError:
        service_unavailable("redis", "redis is not installed (pip install 'steward-ml[redis]')")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    prefix = f"steward-test:{uuid.uuid4().hex}:"
    with redis.Redis.from_url(url) as client:
        try:
            client.ping()
        except redis.RedisError as exc:
            service_unavailable("redis", f"{url} does not answer: {exc}")
        try:
            yield RedisKeys(url, prefix)
        finally:
            for pattern in (f"{prefix}*", f"steward:ckpt:{prefix}*"):
                keys = list(client.scan_iter(match=pattern, count=1000))
                if keys:
                    client.delete(*keys)
