"""The ``registry`` fixture: one contract suite runs on SQLite, PostgreSQL and over HTTP.

``registry_env`` holds the registry, a tracking backend on the same store (to make runs) and the folder
where the blobs live (the server's, in remote mode), so that a test can tamper with stored bytes.
``upload`` stores a small file and returns its ``ModelFile``, so versions need no flavor.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from steward.config import load_settings
from steward.registry.models import ModelFile, RegistryBackend
from steward.store.platform import Platform
from steward.tracking.models import TrackingBackend

Upload = Callable[..., ModelFile]


@dataclass
class RegistryEnv:
    """A registry backend and what its tests need beside it.

    Attributes:
        kind: ``sqlite``, ``postgres`` or ``remote``.
        registry: The backend under test.
        tracking: A tracking backend on the same store, to make the runs versions come from.
        blob_root: The folder holding ``blobs/<aa>/<digest>`` (the server's in remote mode).
    """

    kind: str
    registry: RegistryBackend
    tracking: TrackingBackend
    blob_root: Path

    def blob_path(self, digest: str) -> Path:
        """Where the blob store keeps ``digest`` on disk."""
        return self.blob_root / "blobs" / digest[:2] / digest


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "remote",
    ]
)
def registry_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryEnv]:
    """The registry embedded on SQLite, embedded on PostgreSQL, or the HTTP client, with its tracking."""
    if request.param == "remote":
        from steward.client.http import HttpClient
        from steward.client.registry import RemoteRegistryService
        from steward.client.tracking import RemoteTrackingService

        url = request.getfixturevalue("steward_server")
        # ``steward_server`` keeps its home (and so its blobs) in tmp_path/"server-home".
        with HttpClient(url) as http:
            yield RegistryEnv(
                "remote",
                RemoteRegistryService(http),
                RemoteTrackingService(http),
                tmp_path / "server-home" / "artifacts",
            )
        return
    from steward.registry.service import RegistryService
    from steward.tracking.service import TrackingService

    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    home = tmp_path / "home"
    platform = Platform.from_settings(load_settings(home=home, db=db))
    tracking = TrackingService(platform)
    yield RegistryEnv(request.param, RegistryService(platform, tracking), tracking, home / "artifacts")
    platform.close()


@pytest.fixture
def registry(registry_env: RegistryEnv) -> RegistryBackend:
    """The registry backend under test."""
    return registry_env.registry


@pytest.fixture
def tracking_for_registry(registry_env: RegistryEnv) -> TrackingBackend:
    """A tracking backend on the registry's store."""
    return registry_env.tracking


@pytest.fixture
def upload(registry: RegistryBackend, tmp_path: Path) -> Upload:
    """``upload(data=b"weights", path="model.bin", model="churn")`` stores a file and returns it."""
    counter = itertools.count()
    folder = tmp_path / "uploads"
    folder.mkdir()

    def _upload(data: bytes = b"weights", path: str = "model.bin", model: str = "churn") -> ModelFile:
        local = folder / f"file-{next(counter)}"
        local.write_bytes(data)
        return registry.upload_file(model, local, path)

    return _upload
