"""The metadata database: migrations on first use, on SQLite and PostgreSQL, and clear failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from steward.errors import InvalidInput, ServiceUnavailable
from steward.store.metadata import MetadataStore, head_revision

TABLES = {"experiments", "runs", "params", "tags", "metric_chunks", "latest_metrics", "artifacts"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'meta.db'}"


def test_first_use_creates_the_schema_at_head(db_url: str) -> None:
    store = MetadataStore(db_url)
    assert store.current_revision() == head_revision()
    assert set(inspect(store.engine).get_table_names()) >= TABLES
    store.upgrade()  # applying again changes nothing
    assert store.current_revision() == head_revision()
    store.dispose()


def test_migrate_false_leaves_the_database_empty_until_upgrade(db_url: str) -> None:
    store = MetadataStore(db_url, migrate=False)
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == head_revision()
    store.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.dispose()


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = f"from steward.store.metadata import MetadataStore; MetadataStore({url!r})"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert MetadataStore(url).current_revision() == head_revision()


@pytest.mark.parametrize("url", ["not a url", "mysql+nosuchdriver://x/y", "oracle://x/y"])
def test_unusable_database_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        MetadataStore(url)
    assert info.value.details["field"] == "db"


def test_unreachable_postgres_is_service_unavailable_without_the_password() -> None:
    with pytest.raises(ServiceUnavailable) as info:
        MetadataStore("postgresql://steward:s3cret@127.0.0.1:1/none?connect_timeout=2")
    assert "s3cret" not in info.value.message
    assert "127.0.0.1:1" in info.value.message


@pytest.mark.parametrize("replay", [True, False], ids=["migration-chain", "fresh-create-all"])
def test_the_migrations_build_exactly_the_tables_of_tables_py(db_url: str, replay: bool) -> None:
    """Both ways to a new database — replaying every migration, and the fast path first use takes
    (``create_all`` then stamping head) — end at the schema of ``tables.py``, at the head revision."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from steward.store.metadata import head_revision
    from steward.store.tables import metadata

    if replay:
        store = MetadataStore(db_url, migrate=False)
        store.upgrade()
    else:
        store = MetadataStore(db_url)
    try:
        assert store.current_revision() == head_revision()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        store.dispose()
