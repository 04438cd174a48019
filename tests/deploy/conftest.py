"""Fixtures of the deploy tests: an embedded platform with a registered model, and real window rows.

``deploy_env`` gives a fresh SQLite home with model ``churn`` at versions 1.0.0, 1.1.0 and 1.2.0 and the
deploy service on it; ``window`` writes a ``serving_windows`` row the way a serving worker does (the
input rollout analysis reads); ``trail`` reads the endpoint audit entries back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from steward.config import load_settings
from steward.core.time import now_ms
from steward.deploy.service import DeployService
from steward.governance import audit
from steward.registry.models import VersionSpec
from steward.registry.service import RegistryService
from steward.serving.models import WindowStats
from steward.store.platform import Platform
from steward.store.tables import serving_windows

VERSIONS = ("1.0.0", "1.1.0", "1.2.0")


@dataclass
class DeployEnv:
    """An embedded registry and deploy service on one SQLite home."""

    folder: Path
    platform: Platform
    registry: RegistryService
    deploy: DeployService
    counter: Iterator[int] = field(default_factory=itertools.count)

    def register(self, model: str = "churn", metrics: dict[str, float] | None = None) -> str:
        """Register a version of ``model`` over one small file; return its number."""
        local = self.folder / f"file-{next(self.counter)}"
        local.write_bytes(b"weights")
        upload = self.registry.upload_file(model, local, "model.bin")
        spec = VersionSpec(flavor="sklearn", files=[upload], metrics=metrics or {})
        return self.registry.create_version(model, spec).version

    def window(
        self,
        endpoint: str,
        version: str,
        *,
        requests: int,
        errors: int = 0,
        latency_ms: float = 2.0,
        start_ms: int | None = None,
        role: str = "stable",
        worker: str = "worker-1",
        compared: int = 0,
        agreed: int = 0,
        project: str = "default",
    ) -> None:
        """Write one worker's window row: ``requests`` answered in ``latency_ms`` each, ``errors`` of them
        failed, starting now (or at ``start_ms``)."""
        stats = WindowStats()
        for i in range(requests):
            stats.observe(latency_ms, error=i < errors)
        at = now_ms() if start_ms is None else start_ms
        with self.platform.metadata.transaction() as conn:
            conn.execute(
                insert(serving_windows),
                {
                    "project": project,
                    "endpoint": endpoint,
                    "version": version,
                    "window_start": at,
                    "worker": worker,
                    "role": role,
                    "requests": stats.requests,
                    "errors": stats.errors,
                    "latency_sum_ms": stats.latency_sum_ms,
                    "latency_buckets": stats.buckets_json(),
                    "shadow_compared": compared,
                    "shadow_agreed": agreed,
                    "updated_at": at,
                },
            )

    def trail(self) -> list[audit.AuditEntry]:
        """The audit entries about endpoints, oldest first."""
        with self.platform.metadata.read() as conn:
            return list(audit.entries(conn, resource_kind="endpoint"))


def open_deploy_env(folder: Path, home: Path | None = None, **settings: Any) -> DeployEnv:
    """A fresh home (``folder/"home"`` unless given) with ``churn`` 1.0.0, 1.1.0 and 1.2.0 registered."""
    platform = Platform.from_settings(load_settings(home=home or folder / "home", **settings))
    registry = RegistryService(platform)
    env = DeployEnv(folder, platform, registry, DeployService(platform, registry))
    for _ in VERSIONS:
        env.register()
    return env


@pytest.fixture
def deploy_env(tmp_path: Path) -> Iterator[DeployEnv]:
    """A fresh embedded deploy environment (see ``open_deploy_env``)."""
    env = open_deploy_env(tmp_path)
    yield env
    env.platform.close()
