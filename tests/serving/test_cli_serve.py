"""``steward serve``: clear errors for what cannot be served; several workers behind one port whose
``/metrics`` and window statistics sum every worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.cli import serve as serve_cli
from steward.cli.serve import main
from steward.deploy.controller import DEFAULT_INTERVAL_S, Controller
from steward.errors import InvalidInput
from steward.serving.server import ServeOptions
from steward.serving.stats import DEFAULT_WINDOW_SECONDS, read_windows
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


def test_serve_lists_its_options(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no option's name is cut short
    main(["--help"])
    out = capsys.readouterr().out
    for option in ("--config", "--endpoint", "--workers", "--max-batch-size", "--max-wait-ms",
                   "--max-request-bytes", "--auth", "--log-sample-rate", "--window-seconds",
                   "--controller-interval"):  # fmt: skip
        assert option in out


@pytest.fixture
def started(models: Models, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Run ``main`` up to the server: what it would serve with and the controller it starts are kept."""
    monkeypatch.setenv("STEWARD_HOME", str(models.home))
    seen: dict[str, Any] = {}
    monkeypatch.setattr("steward.serving.server.check_source", lambda options, settings: ["churn"])
    monkeypatch.setattr(
        "steward.serving.server.run", lambda options, settings: seen.setdefault("options", options)
    )

    def start(controller: Controller) -> Controller:  # no thread: only its settings are looked at
        seen["controller"] = controller
        return controller

    monkeypatch.setattr(Controller, "start", start)
    yield seen
    if "controller" in seen:
        seen["controller"].service.platform.close()


def test_the_defaults_are_the_servers_and_the_controllers(started: dict[str, Any]) -> None:
    assert serve_cli.WINDOW_SECONDS == DEFAULT_WINDOW_SECONDS  # the help shows the server's default
    assert serve_cli.CONTROLLER_INTERVAL_S == DEFAULT_INTERVAL_S
    main(["--endpoint", "churn"])
    options: ServeOptions = started["options"]
    assert options.window_seconds == DEFAULT_WINDOW_SECONDS
    assert started["controller"].interval == DEFAULT_INTERVAL_S


def test_window_seconds_and_controller_interval_reach_the_server_and_the_controller(
    started: dict[str, Any],
) -> None:
    main(["--endpoint", "churn", "--window-seconds", "30", "--controller-interval", "0.5"])
    assert started["options"].window_seconds == 30
    assert started["controller"].interval == 0.5
    assert ServeOptions.from_json(started["options"].to_json()).window_seconds == 30  # what workers read


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window-seconds", "0"], "Invalid value for '--window-seconds': must be a positive whole number"),
        (["--window-seconds", "-5"], "Invalid value for '--window-seconds'"),
        (["--window-seconds", "2.5"], "Invalid value for '--window-seconds'"),
        (
            ["--controller-interval", "0"],
            "Invalid value for '--controller-interval': must be a positive number",
        ),
        (["--controller-interval", "-1"], "Invalid value for '--controller-interval'"),
        (["--controller-interval", "nan"], "Invalid value for '--controller-interval'"),
        (["--controller-interval", "soon"], "Invalid value for '--controller-interval'"),
    ],
)
def test_bad_window_seconds_or_controller_interval_is_a_usage_error_naming_it(
    started: dict[str, Any], args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--endpoint", "churn", *args])
    assert exited.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert started == {}  # nothing was started


def test_controller_interval_without_endpoint_is_refused(
    started: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bc@production", "--controller-interval", "1"])
    assert exited.value.code == 1
    assert "--controller-interval goes with --endpoint" in " ".join(capsys.readouterr().err.split())
    assert started == {}


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_serve_options_refuse_a_window_that_is_not_a_positive_whole_number(bad: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        ServeOptions(references=("bc",), window_seconds=bad)
    assert refused.value.details == {"field": "window_seconds"}
    assert "--window-seconds" in refused.value.message
