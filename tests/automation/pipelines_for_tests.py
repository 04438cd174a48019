"""Pipelines that the automation tests' triggers and alerts start (imported by path, as users' are), and
the environment those tests share: a configured home whose SDK connection and ``Platform`` are one store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import steward
from steward import pipeline, step
from steward.automation.scheduler import Scheduler
from steward.automation.service import AutomationService
from steward.config import load_settings
from steward.governance import audit, rbac
from steward.pipelines.models import PipelineRunInfo
from steward.pipelines.service import PipelineService
from steward.store.platform import Platform
from steward.tracking.service import TrackingService

T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
"""A fixed 'now' the tests move by hand (no sleeping)."""

release_slow = threading.Event()
"""What ``slow`` waits for: set it to let the slow pipeline finish."""
slow_started = threading.Event()


@step
def emit(message: str) -> str:
    """Return the message (the step the tests count)."""
    return message


@pipeline
def hello(message: str = "hello") -> Any:
    """One step."""
    return emit(message)


@step
def explode(message: str) -> str:
    """Fail."""
    raise RuntimeError(f"boom: {message}")


@pipeline
def failing(message: str = "x") -> Any:
    """A pipeline whose only step fails."""
    return explode(message)


@step
def wait_for_release(message: str) -> str:
    """Block until the test sets ``release_slow`` (a slow action under way)."""
    slow_started.set()
    if not release_slow.wait(60):
        raise TimeoutError("the test never released the slow step")
    return message


@pipeline
def slow(message: str = "slow") -> Any:
    """A pipeline that runs until the test lets it finish."""
    return wait_for_release(message)


@step(environment=["scikit-learn"])
def fit_and_register(model_name: str, rows: int) -> str:
    """Fit a tiny classifier and register it as a new version; return the version number."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.arange(rows, dtype=float).reshape(-1, 1)
    y = (x[:, 0] > rows / 2).astype(int)
    fitted = LogisticRegression().fit(x, y)
    return steward.register_model(model_name, fitted, metrics={"accuracy": 0.9}).version


@pipeline
def retrain(model_name: str = "churn", rows: int = 40) -> Any:
    """Train and register: what a retraining action starts."""
    return fit_and_register(model_name, rows)


not_a_pipeline = 42


# -- the shared environment --------------------------------------------------------------------------


GRANTED = ("automation:read", "automation:write", "monitoring:read", "monitoring:write")
"""Permissions the local admin acts with here; ``rbac.py`` gains them with the automation and monitoring
layers."""


def grant_automation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give ``admin`` (the local user) the automation and monitoring permissions until ``rbac.py`` lists
    them (then this does nothing)."""
    missing = frozenset(p for p in GRANTED if p not in rbac.ROLES["admin"])
    if missing:
        monkeypatch.setitem(rbac.ROLES, "admin", rbac.ROLES["admin"] | missing)
        for name in missing:
            monkeypatch.setitem(rbac.PERMISSIONS, name, "granted by the automation tests")


@dataclass
class Env:
    """A home configured for the SDK and a platform on the same store."""

    home: Path
    db: str | None
    platform: Platform

    @property
    def automation(self) -> AutomationService:
        """The service under test."""
        return AutomationService(self.platform)

    def scheduler(self, holder: str, **options: Any) -> Scheduler:
        """A scheduler on this store that runs no monitors unless told to."""
        options.setdefault("monitoring", None)
        return Scheduler(self.platform, holder=holder, clock=lambda: T0, **options)

    def runs(self, name: str) -> list[PipelineRunInfo]:
        """The recorded runs of pipeline ``name``, newest first."""
        return PipelineService(self.platform, TrackingService(self.platform)).list_runs(name, limit=100)

    def ingest(self, dataset: str, value: int) -> int:
        """Publish a new version of ``dataset`` (content that differs per ``value``); return its number."""
        from steward.data.service import DataService

        table = pa.table({"x": [value, value + 1], "y": [0, 1]})
        published = DataService(self.platform).ingest(table, dataset).version
        assert published is not None
        return published.number

    def trail(self, action: str | None = None) -> list[audit.AuditEntry]:
        """Audit entries (of one action, if named), oldest first."""
        with self.platform.metadata.read() as conn:
            return list(audit.entries(conn, action=action))


def open_env(tmp_path: Path, db: str | None = None) -> Env:
    """Configure the SDK on a fresh home (metadata on ``db`` if given) and open a platform on it."""
    home = tmp_path / "steward-home"
    steward.configure(home=home, db=db)
    return Env(home, db, Platform.from_settings(load_settings(home=home, db=db)))


def env_for(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str = "sqlite"
) -> Iterator[Env]:
    """The body of the tests' ``env`` fixtures: ``kind`` is ``sqlite`` or ``postgres``."""
    from tests.conftest import reset_sdk

    grant_automation(monkeypatch)
    for name in ("STEWARD_URI", "STEWARD_DB", "STEWARD_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "steward-home"))
    monkeypatch.chdir(tmp_path)
    db = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    if db is not None:
        monkeypatch.setenv("STEWARD_DB", db)
    env = open_env(tmp_path, db)
    try:
        yield env
    finally:
        env.platform.close()
        reset_sdk()


def tick_in_process(home: str, db: str | None, now: str, holder: str, barrier: Any, results: Any) -> None:
    """A scheduler in its own process: wait for the others at ``barrier``, make one pass at ``now``, put
    the number of firings it made on ``results``."""
    steward.configure(home=home, db=db)
    platform = Platform.from_settings(load_settings(home=home, db=db))
    try:
        scheduler = Scheduler(platform, holder=holder, monitoring=None)
        barrier.wait(60)
        results.put(len(scheduler.tick(datetime.fromisoformat(now))))
    finally:
        platform.close()
