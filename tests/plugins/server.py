"""A real Steward API server for tests: uvicorn in a background thread on a free 127.0.0.1 port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from steward.api.app import create_app
from steward.config import load_settings

START_TIMEOUT = 10.0


@contextmanager
def running_server(app: Any, health: str = "/api/v1/health", **options: Any) -> Iterator[str]:
    """Serve ``app`` (the API's FastAPI app, or any ASGI app) with uvicorn in a thread until the block
    ends; yield its base URL.

    The listening socket is bound here (port 0), so there is no race for the port; the server counts as up
    once ``health`` answers. ``options`` go to ``uvicorn.Config`` (``loop``, ``http`` …).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings: dict[str, Any] = {
        "log_config": None, "log_level": "warning", "ws": "none", "lifespan": "on",
        "timeout_graceful_shutdown": 2,
    }  # fmt: skip
    config = uvicorn.Config(app, **(settings | options))
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="steward-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"the test server at {url} did not start", pytrace=False)
            time.sleep(0.002)
        httpx.get(f"{url}{health}", timeout=START_TIMEOUT).raise_for_status()
        yield url
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()


@pytest.fixture
def steward_server(tmp_path: Path) -> Iterator[str]:
    """A Steward server on its own empty home (``tmp_path/"server-home"``); yields ``http://127.0.0.1:PORT``."""
    app = create_app(load_settings(home=tmp_path / "server-home"))
    with running_server(app) as url:
        yield url
