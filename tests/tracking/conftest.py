"""The ``tracking`` fixture: one contract suite runs on SQLite, PostgreSQL and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.config import load_settings
from steward.store.platform import Platform
from steward.tracking.models import TrackingBackend
from steward.tracking.service import TrackingService


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "remote",
    ]
)
def tracking(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrackingBackend]:
    """A tracking backend: embedded on SQLite, embedded on PostgreSQL, or the HTTP client."""
    if request.param == "remote":
        from steward.client.http import HttpClient
        from steward.client.tracking import RemoteTrackingService

        url = request.getfixturevalue("steward_server")
        http = HttpClient(url)
        yield RemoteTrackingService(http)
        http.close()
        return
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    yield TrackingService(platform)
    platform.close()
