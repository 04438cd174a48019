"""``steward serve``: clear errors for what cannot be served; several workers behind one port whose
``/metrics`` and window statistics sum every worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from steward.cli.serve import main
from steward.serving.stats import read_windows
from steward.store.platform import Platform
from tests.serving.conftest import Models, wait_for


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "steward.cli.serve", *args]


def _env(models: Models) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEWARD_", "PROMETHEUS_"))}
    return {**env, "STEWARD_HOME": str(models.home)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope@production"], "model 'nope' not found"),
        (["bc@nowhere"], "no alias 'nowhere'"),
        (["bc@@x"], "invalid model reference"),
        ([], "exactly one of them"),
        (["bc", "--config", "models.yaml"], "exactly one of them"),
        (["--endpoint", "nope"], "nope"),
    ],
)
def test_what_cannot_be_served_fails_at_once_with_one_line(
    models: Models,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STEWARD_HOME", str(models.home))
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_workers_serve_one_port_and_sum_their_metrics(models: Models, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    scratch = tmp_path / "tmp"  # the server's temporary directory: its metrics directory goes there
    scratch.mkdir()
    since = time.time_ns() // 1_000_000 - 60_000
    args = ["workers=bc@production", "--port", str(port), "--workers", "2", "--log-sample-rate", "0",
            "--log-level", "warning"]  # fmt: skip
    env = {**_env(models), "TMPDIR": str(scratch)}
    server = subprocess.Popen(_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def loaded_twice() -> bool:
            try:
                text = httpx.get(f"{url}/metrics", timeout=5).text
            except httpx.HTTPError:
                return False
            return 'steward_model_version_loaded{model="bc",version="1.0.0"} 2.0' in text

        wait_for(lambda: server.poll() is None and loaded_twice(), timeout=90, what="both workers")
        assert len(list(scratch.glob("steward-metrics-*"))) == 1
        for row in range(24):  # a new connection each: the kernel spreads them over the workers
            answer = httpx.post(f"{url}/predict/workers", json={"records": models.records([row])}, timeout=30)
            assert answer.status_code == 200, answer.text
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        line = 'steward_requests_total{code="200",endpoint="workers",role="stable",version="1.0.0"} 24.0'
        assert line in metrics
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr.decode()
    assert not list(scratch.glob("steward-metrics-*"))  # the metrics directory is removed
    platform = Platform.from_settings(models.settings)
    totals = read_windows(platform.metadata, "default", "workers", since)
    platform.close()
    assert totals["1.0.0"].requests == 24  # each worker wrote its own rows at shutdown


def test_serve_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    out = capsys.readouterr().out
    for option in ("--config", "--endpoint", "--workers", "--max-batch-size", "--max-wait-ms",
                   "--max-request-bytes", "--auth", "--log-sample-rate"):  # fmt: skip
        assert option in out
