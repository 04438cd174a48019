"""Shared fixtures: an isolated Steward home per test, and the real services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import steward
from steward import _connect
from steward.tracking import fluent

pytest_plugins = [
    "tests.plugins.s3",
    "tests.plugins.postgres",
    "tests.plugins.server",
    "tests.plugins.ray_cluster",
]


@pytest.fixture
def steward_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty Steward home for this test: env ``STEWARD_HOME`` set and the SDK configured on it."""
    home = tmp_path / "steward-home"
    monkeypatch.setenv("STEWARD_HOME", str(home))
    monkeypatch.delenv("STEWARD_URI", raising=False)
    monkeypatch.delenv("STEWARD_DB", raising=False)
    monkeypatch.delenv("STEWARD_ARTIFACTS", raising=False)
    monkeypatch.chdir(tmp_path)
    steward.configure(home=home)
    yield home
    reset_sdk()


def reset_sdk() -> None:
    """Forget the SDK's active runs and default connection (tests that configure it themselves)."""
    for run in list(fluent._stack):
        run.buffer.close()
    fluent._stack.clear()
    with _connect._default_lock:
        old, _connect._default = _connect._default, None
    if old is not None:
        old.close()
