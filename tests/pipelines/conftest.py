"""Pipelines fixtures: a configured home on SQLite or PostgreSQL, and the executors under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import steward
from tests.conftest import reset_sdk


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_home(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A Steward home configured for the SDK, its metadata on SQLite or on PostgreSQL."""
    home = tmp_path / "steward-home"
    monkeypatch.delenv("STEWARD_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    steward.configure(home=home, db=db)
    yield home
    reset_sdk()


@pytest.fixture(
    params=[
        "local",
        "processes",
        pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.xdist_group("ray")]),
    ]
)
def executor(request: pytest.FixtureRequest) -> str:
    """Each executor, so one suite checks that they behave the same (Ray on the shared 2-node cluster)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return str(request.param)
