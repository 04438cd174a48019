"""PostgreSQL for tests: each test gets its own schema in the ``test`` database of the local server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.services import port_open, service_unavailable

PG_HOST = os.environ.get("STEWARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STEWARD_TEST_PG_PORT", "5432"))
PG_BASE = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL whose ``search_path`` is a fresh schema, dropped after the test."""
    if not port_open(PG_HOST, PG_PORT):
        service_unavailable("postgres", f"nothing listens on {PG_HOST}:{PG_PORT}")
    try:
        import psycopg
    except ImportError:
        service_unavailable("postgres", "psycopg is not installed (pip install 'steward-ml[postgres]')")
    from steward.core.ids import new_id

    schema = f"t_{new_id()}"
    dsn = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
