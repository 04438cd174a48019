"""Personal data in stored versions: scans that tag a version, policies that protect it, k-anonymity.

The operations of ``DataService.scan``, ``protect`` and ``k_anonymity``, kept apart from the service so
that each module holds one concept; the service's methods call these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from steward.data import pii
from steward.data import repository as repo
from steward.data.inputs import as_policy
from steward.data.keys import privacy_secret
from steward.data.models import DatasetVersion
from steward.data.privacy import KAnonymityReport, PrivacyPolicy, apply_policy
from steward.data.privacy import k_anonymity as measure
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.data.service import DataService


def scan(
    service: DataService,
    name: str,
    number: int | None = None,
    *,
    sample_rows: int = 10_000,
    min_share: float = 0.5,
) -> tuple[DatasetVersion, list[pii.ColumnFinding]]:
    """Scan a version for personal data and record the findings (its PII tags) on it.

    Returns:
        The version, updated, and the findings.
    """
    version = service.get_version(name, number)
    findings = pii.scan(service.read_table(version), sample_rows=sample_rows, min_share=min_share)
    with service.metadata.transaction() as conn:
        repo.set_pii(conn, version.id, json.dumps([f.to_dict() for f in findings]))
        tags = {f.column: list(f.tags) for f in findings}
        service.record(conn, "dataset_version.scan", "dataset_version", version.id, details={"tags": tags})
    return service.get_version_by_id(version.id), findings


def protect(
    service: DataService,
    name: str,
    number: int | None = None,
    policy: PrivacyPolicy | Mapping[str, Any] | None = None,
    *,
    target: str | None = None,
) -> DatasetVersion:
    """Apply a privacy policy to a version: a new version, whose lineage points to the raw one.

    The policy acts on the version's PII findings (scanned now if it never was). Pseudonyms are
    HMAC-SHA-256 under this installation's key (``Settings.privacy_secret``).

    Args:
        name: The dataset.
        number: Its version (the highest by default).
        policy: The policy (the dataset's own by default).
        target: The dataset to publish the protected copy in (``name`` by default).

    Raises:
        InvalidInput: No policy was given and the dataset has none.
    """
    found = as_policy(policy)
    if found is None:
        own = service.get_dataset(name).privacy
        if not own:
            raise InvalidInput(f"dataset {name!r} has no privacy policy: give one", {"field": "privacy"})
        found = PrivacyPolicy.from_dict(own)
    version = service.get_version(name, number)
    if version.pii is None:
        version, _ = service.scan(name, version.number)
    return protect_table(service, version, service.read_table(version), found, target or name)[0]


def protect_table(
    service: DataService, raw: DatasetVersion, table: pa.Table, policy: PrivacyPolicy, target: str
) -> tuple[DatasetVersion, bool]:
    secret = privacy_secret(service.platform.settings)
    protected = apply_policy(table, raw.pii_tags, policy, secret)
    meta = (protected.schema.metadata or {}).get(b"steward.privacy")
    actions = json.loads(meta) if meta else {}
    source = {"kind": "privacy", "from": raw.ref, "from_id": raw.id, "actions": actions}
    source["policy"] = policy.to_dict()
    return service.publish(target, protected, source, parent_id=raw.id, relation="protected_from")


def k_anonymity(
    service: DataService, name: str, quasi_identifiers: Sequence[str], number: int | None = None
) -> KAnonymityReport:
    """How identifiable a version's rows are through ``quasi_identifiers`` (the smallest group's size)."""
    version = service.get_version(name, number)
    return measure(service.read_table(version, quasi_identifiers), quasi_identifiers)
