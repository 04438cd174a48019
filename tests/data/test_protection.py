"""PII in the service: scans tag versions, policies make protected versions with lineage, reads audited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

import steward
from steward.config import load_settings
from steward.data.privacy import PrivacyPolicy, Rule
from steward.data.service import DataService
from steward.errors import InvalidInput
from steward.governance import audit
from steward.store.platform import Platform
from steward.store.tables import lineage_edges

PEOPLE = pa.table(
    {
        "customer_id": ["C-1", "C-2", "C-3", "C-4"],
        "email": ["ana@example.org", "bo@example.com", "cy@example.net", "di@example.org"],
        "age": [23, 37, 41, 68],
        "city": ["Dubai", "Dubai", "Abu Dhabi", "Dubai"],
        "spend": [10.0, 20.0, 30.0, 40.0],
    }
)
POLICY = PrivacyPolicy(
    by_tag={"email": Rule("drop")},
    by_column={
        "customer_id": Rule("pseudonymize"),
        "age": Rule("generalize", {"to": "age_band", "width": 20}),
    },
)


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataService]:
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", privacy_secret="s" * 32))
    yield DataService(platform)
    platform.close()


def test_every_published_version_is_scanned_and_tagged(data: DataService) -> None:
    version = data.ingest(PEOPLE, "people").version
    assert version is not None
    assert version.pii_tags["email"] == ["email"]
    assert "spend" not in version.pii_tags
    rescanned, findings = data.scan("people", 1, min_share=0.9)
    assert {f.column for f in findings} >= {"email"}
    assert rescanned.pii == tuple(f.to_dict() for f in findings)


def test_protect_publishes_a_derived_version_pointing_to_the_raw_one(data: DataService) -> None:
    raw = data.ingest(PEOPLE, "people").version
    assert raw is not None
    safe = data.protect("people", raw.number, POLICY)
    assert (safe.number, safe.parent_id, safe.source["kind"]) == (2, raw.id, "privacy")
    table = data.read_table(safe)
    assert "email" not in table.column_names
    ids = table.column("customer_id").to_pylist()
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids) and len(set(ids)) == 4
    assert table.column("age").to_pylist() == ["20-39", "20-39", "40-59", "60-79"]
    assert table.column("spend").to_pylist() == PEOPLE.column("spend").to_pylist()
    with data.platform.metadata.read() as conn:
        edges = conn.execute(select(lineage_edges).where(lineage_edges.c.target_id == safe.id)).all()
    assert [(e.source_id, e.relation) for e in edges] == [(raw.id, "protected_from")]
    again = data.protect("people", raw.number, POLICY)  # same input, same key: the same version
    assert again.id == safe.id


def test_pseudonyms_are_stable_and_joinable_across_datasets(data: DataService) -> None:
    data.ingest(PEOPLE, "people")
    orders = pa.table({"customer_id": ["C-3", "C-1"], "total": [5.0, 7.0]})
    data.ingest(orders, "orders")
    a = data.read_table(data.protect("people", 1, POLICY))
    b = data.read_table(
        data.protect("orders", 1, PrivacyPolicy(by_column={"customer_id": Rule("pseudonymize")}))
    )
    left = dict(
        zip(PEOPLE.column("customer_id").to_pylist(), a.column("customer_id").to_pylist(), strict=True)
    )
    assert b.column("customer_id").to_pylist() == [left["C-3"], left["C-1"]]


def test_a_policy_given_at_ingestion_protects_every_batch(data: DataService) -> None:
    result = data.ingest(PEOPLE, "people", privacy=POLICY)
    assert len(result.raw) == 1 and result.version is not None
    assert result.version.parent_id == result.raw[0].id
    assert "email" not in [c["name"] for c in result.version.arrow_schema]
    assert data.get_dataset("people").privacy == POLICY.to_dict()
    later = data.ingest(PEOPLE.slice(0, 2), "people")  # the stored policy applies from now on
    assert later.version is not None and later.version.parent_id == later.raw[0].id


def test_protect_without_any_policy_is_refused(data: DataService) -> None:
    data.ingest(PEOPLE, "people")
    with pytest.raises(InvalidInput, match="no privacy policy"):
        data.protect("people")
    with pytest.raises(InvalidInput):
        data.protect("people", policy={"by_tag": {"not-a-tag": {"action": "drop"}}})


def test_k_anonymity_of_a_version(data: DataService) -> None:
    data.ingest(PEOPLE, "people")
    report = data.k_anonymity("people", ["city"])
    assert (report.k, report.groups, report.smallest_group) == (1, 2, {"city": "Abu Dhabi"})
    safe = data.protect("people", 1, POLICY)
    banded = data.k_anonymity("people", ["age"], safe.number)
    assert banded.k == 1 and banded.groups == 3


def test_reading_personal_data_is_audited_and_other_columns_are_not(data: DataService) -> None:
    version = data.ingest(PEOPLE, "people").version
    assert version is not None
    data.read_table(version, ["spend"])
    data.read_table(version, ["email", "spend"])
    with data.platform.metadata.read() as conn:
        reads = audit.entries(conn, action="dataset_version.read_pii")
        trail = audit.entries(conn)
    assert [(e.resource_id, e.details["columns"]) for e in reads] == [(version.id, ["email"])]
    assert [e.action for e in trail][:2] == ["dataset.create", "dataset.publish"]
    assert audit.verify_chain(trail) is None


def test_diff_between_versions_and_datasets(data: DataService) -> None:
    data.ingest(PEOPLE, "people")
    data.protect("people", 1, POLICY)
    changes = data.diff("people", 1, 2)
    kinds = {c.name: c.change for c in changes.columns}
    assert kinds["email"] == "removed" and kinds["age"] == "type" and kinds["spend"] == "same"
    assert changes.schema_changed


def test_sdk_diff_datasets_takes_refs(steward_home: Path) -> None:
    steward.ingest(PEOPLE, "people")
    shifted = PEOPLE.set_column(4, "spend", pa.array([1000.0, 2000.0, 3000.0, 4000.0]))
    steward.ingest(shifted, "people")
    changes = steward.diff_datasets("people@1", "people@2")
    [spend] = [c for c in changes.columns if c.name == "spend"]
    assert spend.change == "shift" and not changes.schema_changed
    with pytest.raises(InvalidInput, match="name@number"):
        steward.diff_datasets("people", "people@2")
