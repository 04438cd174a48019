"""The audit chain: entries append in order, and any edit, deletion, reordering or insertion is found."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from steward.governance import audit
from steward.governance.audit import AuditEntry, verify_chain
from steward.store.metadata import MetadataStore
from steward.store.tables import audit_log


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path}/a.db"
    )
    db = MetadataStore(url)
    db.ensure_migrated()
    yield db
    db.dispose()


def write(store: MetadataStore, n: int) -> list[AuditEntry]:
    out = []
    for i in range(n):
        with store.transaction() as conn:
            entry = audit.append(
                conn,
                actor="ana",
                action="dataset.publish",
                resource_kind="dataset_version",
                resource_id=f"v{i}",
                details={"rows": i, "note": "ünïcode"},
            )
            out.append(entry)
    return out


def read(store: MetadataStore) -> list[AuditEntry]:
    with store.read() as conn:
        return audit.entries(conn)


def test_entries_chain_in_order_and_verify(store: MetadataStore) -> None:
    written = write(store, 5)
    stored = read(store)
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert stored == written
    assert stored[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(stored))
    assert verify_chain(stored) is None


def test_an_entry_rolled_back_with_its_change_leaves_no_trace(store: MetadataStore) -> None:
    write(store, 1)

    def failing_change() -> None:
        with store.transaction() as conn:
            audit.append(conn, actor="ana", action="dataset.create", resource_kind="dataset", resource_id="x")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    assert [e.seq for e in read(store)] == [1]


def test_an_edited_entry_is_named(store: MetadataStore) -> None:
    write(store, 4)
    with store.transaction() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    assert verify_chain(read(store)) == 3


def test_a_deleted_entry_is_named_by_the_one_after_it(store: MetadataStore) -> None:
    write(store, 4)
    with store.transaction() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    assert verify_chain(read(store)) == 3


def test_reordered_and_inserted_entries_are_found(store: MetadataStore) -> None:
    entries = write(store, 4)
    assert verify_chain([entries[0], entries[2], entries[1], entries[3]]) == 3
    forged = replace(entries[1], resource_id="forged")
    assert verify_chain([entries[0], forged, *entries[1:]]) == 2
    assert verify_chain(entries[:-1]) is None  # a truncated tail needs the signed checkpoints to show


def test_refuses_an_unknown_outcome(store: MetadataStore) -> None:
    with pytest.raises(ValueError, match="outcome"), store.transaction() as conn:
        audit.append(conn, actor="a", action="x.y", resource_kind="k", resource_id="r", outcome="maybe")
