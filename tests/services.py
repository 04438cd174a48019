"""How tests meet real services: skip with the reason, or fail when CI demands the service."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("STEWARD_REQUIRE_SERVICES") == "1"


def service_unavailable(name: str, reason: str) -> None:
    """Skip the test because ``name`` is unavailable; fail it under ``STEWARD_REQUIRE_SERVICES=1``."""
    message = f"{name} unavailable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (STEWARD_REQUIRE_SERVICES=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
