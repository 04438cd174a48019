"""Signed checkpoints and ``audit.verify``: every kind of tampering is found and the first bad entry named.

The tampering is done the way an intruder with database access would: with SQL on the tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from steward.config import load_settings
from steward.governance import audit, audit_copy, signing
from steward.governance.audit import Checkpointer, Reason, VerifyReport
from steward.store.metadata import MetadataStore

EVERY = 5


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path}/a.db"
    )
    db = MetadataStore(url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def signer() -> signing.Ed25519Signer:
    return signing.generate()


def write(
    store: MetadataStore, n: int, signer: signing.Signer, every: int = EVERY, per_transaction: int = 1
) -> None:
    checkpointer = Checkpointer(signer, every)
    for start in range(0, n, per_transaction):
        with store.transaction() as conn:
            for i in range(start, min(start + per_transaction, n)):
                audit.append(
                    conn,
                    actor=["ana", "bo"][i % 2],
                    action="dataset.publish",
                    resource_kind="dataset_version",
                    resource_id=f"v{i}",
                    details={"rows": i, "note": 'ünïcode "quoted" \\ back\nslash'},
                    request_id=f"req-{i}" if i % 3 else None,
                    checkpoint=checkpointer,
                )


def sql(store: MetadataStore, *statements: str, **params: Any) -> None:
    with store.transaction() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def check(store: MetadataStore, public_key: Any, **options: Any) -> VerifyReport:
    with store.read() as conn:
        return audit.verify(conn, public_key, **options)


def assert_bad(report: VerifyReport, seq: int, reason: Reason) -> None:
    assert not report.ok
    assert report.first_bad is not None
    assert (report.first_bad.seq, report.first_bad.reason) == (seq, reason), report.first_bad
    assert str(seq) in report.first_bad.message


def test_a_valid_chain_of_thousands_verifies_across_chunks(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 3000, signer, every=250, per_transaction=500)

    report = check(store, signer.public_key, every=250, chunk=700)

    assert report.ok and report.first_bad is None
    assert (report.entries, report.last_seq, report.checkpoints) == (3000, 3000, 12)
    assert report.last_checkpoint is not None and report.last_checkpoint.seq == 3000
    assert report.unsigned_tail == 0
    assert report.key_id == signer.key_id
    assert report.rate > 0
    with store.read() as conn:
        assert audit.verify_chain(audit.entries(conn)) is None


def test_checkpoints_are_written_every_n_entries_and_signed(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)

    with store.read() as conn:
        rows = conn.execute(text("SELECT seq, hash, key_id, signature FROM audit_checkpoints ORDER BY seq"))
        checkpoints = rows.all()
        hashes = {e.seq: e.hash for e in audit.entries(conn)}
    assert [cp.seq for cp in checkpoints] == [5, 10]
    for cp in checkpoints:
        assert cp.hash == hashes[cp.seq]
        assert cp.key_id == signer.key_id
        message = f"steward-audit-checkpoint\n{cp.seq}\n{cp.hash}".encode()
        assert signing.verify(message, bytes.fromhex(cp.signature), signer.public_key)
    report = check(store, signer.public_key)
    assert report.ok and report.checkpoints == 2 and report.unsigned_tail == 2


def test_an_empty_trail_verifies(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    report = check(store, signer.public_key)
    assert report.ok and report.entries == 0 and report.last_seq is None


def test_an_edited_entry_is_named(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 12, signer)
    sql(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
    assert_bad(check(store, signer.public_key), 7, Reason.HASH_MISMATCH)


def test_edited_details_are_named(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 4, signer)
    sql(store, "UPDATE audit_log SET details = '{\"rows\": 0}' WHERE seq = 2")
    assert_bad(check(store, signer.public_key), 2, Reason.HASH_MISMATCH)


def test_a_deleted_entry_is_named_by_the_one_after_it(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)
    sql(store, "DELETE FROM audit_log WHERE seq = 4")
    report = check(store, signer.public_key)
    assert_bad(report, 5, Reason.SEQ_GAP)
    assert "entry 4 is missing" in report.first_bad.message  # type: ignore[union-attr]
    assert report.entries == 3


def test_deleted_first_entries_are_found(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 6, signer)
    sql(store, "DELETE FROM audit_log WHERE seq <= 2")
    assert_bad(check(store, signer.public_key), 3, Reason.SEQ_GAP)


def test_reordered_entries_are_named(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 12, signer)
    sql(
        store,
        "UPDATE audit_log SET seq = -3 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = -3",
    )
    assert_bad(check(store, signer.public_key), 3, Reason.PREV_HASH_MISMATCH)


def test_an_inserted_entry_is_named_by_the_one_it_displaced(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)
    with store.read() as conn:
        third = audit.entries(conn)[2]
    # Make room at seq 4 and put in a well-formed entry that chains onto entry 3.
    sql(
        store,
        "UPDATE audit_log SET seq = -seq WHERE seq >= 4",
        "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0",
    )
    forged: dict[str, Any] = {
        "seq": 4, "id": "f" * 32, "at": third.at, "actor": "mallory", "action": "model.promote",
        "resource_kind": "model_version", "resource_id": "churn/9.9.9", "outcome": "ok", "details": "{}",
        "request_id": None, "before_digest": None, "after_digest": None, "prev_hash": third.hash,
    }  # fmt: skip
    forged["hash"] = audit.entry_hash(forged)
    columns = ", ".join(forged)
    sql(store, f"INSERT INTO audit_log ({columns}) VALUES ({', '.join(':' + c for c in forged)})", **forged)

    assert_bad(check(store, signer.public_key), 5, Reason.PREV_HASH_MISMATCH)


def test_an_entry_appended_past_a_gap_is_named(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 3, signer)
    sql(
        store,
        "INSERT INTO audit_log SELECT seq + 10, 'forged', at, actor, action, resource_kind, resource_id, "
        "outcome, details, request_id, before_digest, after_digest, prev_hash, hash, project "
        "FROM audit_log WHERE seq = 3",
    )
    assert_bad(check(store, signer.public_key), 13, Reason.SEQ_GAP)


def test_a_rewritten_stretch_with_recomputed_hashes_fails_at_the_next_checkpoint(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)
    with store.read() as conn:
        rows = [e.to_json() | {"details": e.details_text} for e in audit.entries(conn)]
    # The intruder edits entry 2 and recomputes every hash after it: the chain itself is whole again.
    rows[1]["actor"] = "mallory"
    for i in range(1, len(rows)):
        rows[i]["prev_hash"] = rows[i - 1]["hash"]
        rows[i]["hash"] = audit.entry_hash(rows[i])
        update = "UPDATE audit_log SET actor = :actor, prev_hash = :prev_hash, hash = :hash WHERE seq = :seq"
        sql(store, update, **rows[i])
    with store.read() as conn:
        assert audit.verify_chain(audit.entries(conn)) is None

    assert_bad(check(store, signer.public_key), 5, Reason.CHECKPOINT_MISMATCH)


def test_a_forged_checkpoint_signature_is_named(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 12, signer)
    with store.read() as conn:
        hash10 = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 10")).scalar_one()
    forged = signing.generate().sign(audit.checkpoint_message(10, hash10)).hex()
    sql(store, "UPDATE audit_checkpoints SET signature = :sig WHERE seq = 10", sig=forged)

    report = check(store, signer.public_key)

    assert_bad(report, 10, Reason.CHECKPOINT_SIGNATURE)
    assert report.checkpoints == 1 and report.entries == 9


def test_a_garbled_signature_is_invalid_not_an_error(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 5, signer)
    sql(store, "UPDATE audit_checkpoints SET signature = 'not hex' WHERE seq = 5")
    assert_bad(check(store, signer.public_key), 5, Reason.CHECKPOINT_SIGNATURE)


def test_a_checkpoint_of_another_key_is_named(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 5, signer)
    other = signing.generate()
    assert_bad(check(store, other.public_key), 5, Reason.CHECKPOINT_KEY)
    assert_bad(check(store, None), 5, Reason.CHECKPOINT_UNVERIFIABLE)


def test_a_tail_cut_back_past_a_checkpoint_is_found(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)
    sql(store, "DELETE FROM audit_log WHERE seq > 7")
    assert_bad(check(store, signer.public_key), 10, Reason.CHECKPOINT_ORPHAN)


def test_a_tail_cut_after_the_last_checkpoint_shows_only_in_the_counts(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)
    sql(store, "DELETE FROM audit_log WHERE seq > 10")
    report = check(store, signer.public_key)
    assert report.ok  # what verify cannot see: the hash chain has no secret
    assert report.last_checkpoint is not None and report.last_checkpoint.seq == 10
    assert report.unsigned_tail == 0 and report.last_seq == 10


def test_a_deleted_checkpoint_fails_strict_verification_only(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    write(store, 12, signer)
    sql(store, "DELETE FROM audit_checkpoints WHERE seq = 5")
    lenient = check(store, signer.public_key)
    assert lenient.ok and lenient.checkpoints == 1
    assert_bad(check(store, signer.public_key, every=EVERY), 5, Reason.CHECKPOINT_MISSING)


def test_the_database_renders_entries_as_python_does(
    store: MetadataStore, signer: signing.Ed25519Signer
) -> None:
    awkward = ['quote " and \\ backslash', "tab\tnew\nline\r\x01\x1f\x7f", "ünï 😀 \u2028", "</script>"]
    checkpointer = Checkpointer(signer, EVERY)
    with store.transaction() as conn:
        for value in awkward:
            audit.append(
                conn, actor=value, action="x.y", resource_kind="k", resource_id=value, details={"v": value},
                request_id=value, before_digest=None, after_digest=value, checkpoint=checkpointer,
            )  # fmt: skip
        audit.append(conn, actor="plain", action="x.y", resource_kind="k", resource_id="r")
    with store.read() as conn:
        expected = [e.canonical() for e in audit.entries(conn)]
        if store.dialect == "postgresql":  # verify streams COPY lines and renders them here
            lines = _copy_lines(conn)
            quick = [audit_copy.quick_text(line, line.split(b"\t")) for line in lines]
            assert quick[-1] is not None  # the plain entry takes the quick path
            assert [q.decode() for q in quick if q is not None] == [
                e for e, q in zip(expected, quick, strict=True) if q is not None
            ]
            digests = [d for _seq, _prev, _stored, d in audit_copy.digests(lines)]
            assert digests == [hashlib.sha256(e.encode()).hexdigest() for e in expected]
            return
        rendered = conn.execute(
            text(f"SELECT {audit._SQLITE_CANONICAL} FROM audit_log ORDER BY seq")
        ).scalars()
        assert rendered.all() == expected  # else verify still works, but re-renders every entry in Python


@pytest.mark.postgres
def test_postgres_batches_of_sound_entries_pass_the_fast_check_and_others_go_to_the_walk(
    postgres_url: str, tmp_path: Path, signer: signing.Ed25519Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MetadataStore(postgres_url)
    try:
        write(store, 12, signer)
        with store.read() as conn:
            lines = _copy_lines(conn)
        genesis = audit.GENESIS.encode()
        assert audit_copy.chained(lines, genesis, 1)
        assert audit_copy.chained(lines[4:], audit_copy.stored_hash(lines[3]).encode(), 5)
        assert not audit_copy.chained(lines, genesis, 2)  # not the entry expected next
        assert not audit_copy.chained(lines[1:], genesis, 2)  # does not follow the hash given
        assert not audit_copy.chained([lines[0], lines[2], lines[1]], genesis, 1)  # reordered
        edited = lines[5].replace(b"\tok\t", b"\tfailed\t")
        assert not audit_copy.chained([*lines[:5], edited, *lines[6:]], genesis, 1)

        # A batch the fast check refuses is judged by the walk, which names the entry.
        calls: list[int] = []
        real = audit_copy.chained
        monkeypatch.setattr(audit_copy, "chained", lambda *a: calls.append(1) or real(*a))
        assert check(store, signer.public_key).ok and calls
        sql(store, "UPDATE audit_log SET outcome = 'failed' WHERE seq = 6")
        assert_bad(check(store, signer.public_key), 6, Reason.HASH_MISMATCH)
        sql(store, "UPDATE audit_checkpoints SET hash = :h WHERE seq = 10", h="0" * 64)
        sql(store, "UPDATE audit_log SET outcome = 'ok' WHERE seq = 6")
        assert_bad(check(store, signer.public_key), 10, Reason.CHECKPOINT_MISMATCH)
    finally:
        store.dispose()


def _copy_lines(conn: Connection) -> list[bytes]:
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    data = b""
    with (
        dbapi.cursor() as cursor,
        cursor.copy(
            f"COPY (SELECT {', '.join(audit_copy.COLUMNS)} FROM audit_log ORDER BY seq) TO STDOUT"
        ) as copy,
    ):
        for block in copy:
            data += bytes(block)
    return data.split(b"\n")[:-1]


def test_verify_re_renders_in_python_before_calling_an_entry_bad(
    store: MetadataStore, signer: signing.Ed25519Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(store, 7, signer)
    monkeypatch.setattr(audit, "_SQLITE_CANONICAL", "'not the canonical form'")
    monkeypatch.setattr(audit_copy, "_QUICK", b"[%b,%b,%b,%b,%b,%b,%b,%b,%b,%b,%b,%b,%b]")
    assert check(store, signer.public_key).ok
    sql(store, "UPDATE audit_log SET outcome = 'failed' WHERE seq = 6")
    assert_bad(check(store, signer.public_key), 6, Reason.HASH_MISMATCH)


def test_exported_records_re_verify(store: MetadataStore, signer: signing.Ed25519Signer) -> None:
    write(store, 12, signer)
    with store.read() as conn:
        records = list(audit.export(conn, chunk=4))
    assert [r["seq"] for r in records] == list(range(1, 13))
    assert [r["seq"] for r in records if "checkpoint" in r] == [5, 10]

    report = audit.verify_records(records, signer.public_key, every=EVERY)
    assert report.ok and report.entries == 12 and report.checkpoints == 2

    assert_bad(audit.verify_records([*records[:3], records[1]], signer.public_key), 2, Reason.SEQ_GAP)
    records[7]["details_json"] = '{"rows": 999}'
    assert_bad(audit.verify_records(records, signer.public_key), 8, Reason.HASH_MISMATCH)


def test_the_key_is_made_only_when_the_first_checkpoint_is_due(store: MetadataStore, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", audit_checkpoint_every=3)
    checkpointer = audit.checkpointer_for(settings)
    key_file = signing.key_path(settings)
    for i in range(3):
        assert not key_file.exists()
        with store.transaction() as conn:
            audit.append(
                conn, actor="a", action="x.y", resource_kind="k", resource_id=str(i), checkpoint=checkpointer
            )
    assert key_file.exists()
    report = check(store, signing.platform_public_key(settings), every=3)
    assert report.ok and report.checkpoints == 1
