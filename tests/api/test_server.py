"""``serve``: the server process a user starts with ``steward server``, one worker or several."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from steward.api.server import settings_environment
from steward.config import load_settings
from tests.services import free_port

SERVE = """
import sys
from steward.api.server import serve
from steward.config import load_settings
serve(load_settings(home=sys.argv[1]), port=int(sys.argv[2]), workers=int(sys.argv[3]), log_level="warning")
"""


def test_worker_environment_rebuilds_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("STEWARD_HOME", "STEWARD_DB", "STEWARD_ARTIFACTS", "STEWARD_REGION", "STEWARD_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings(
        home=tmp_path / "h", region="uae", db=f"sqlite:///{tmp_path / 'x.db'}", token="t0k"
    )
    env = settings_environment(settings)
    assert "STEWARD_TOKEN" not in env  # a client credential, not the server's
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = load_settings()
    assert (rebuilt.home, rebuilt.db_url, rebuilt.artifacts_url, rebuilt.region) == (
        settings.home,
        settings.db_url,
        settings.artifacts_url,
        settings.region,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_and_stops_on_sigterm(tmp_path: Path, workers: int) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tmp_path / "home"), str(port), str(workers)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1].decode()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        assert health.json()["status"] == "ok"
        for _ in range(4):  # spread over the workers: each built its app on the same stores
            assert httpx.post(f"{url}/runs", json={"experiment": "e"}).status_code == 201
        assert len(httpx.post(f"{url}/runs/search", json={"experiments": ["e"]}).json()["runs"]) == 4
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (one worker) or exits 0.
    assert server.returncode in (0, -signal.SIGTERM), stderr.decode()
    assert b"Traceback" not in stderr
    assert (tmp_path / "home" / "steward.db").exists()
