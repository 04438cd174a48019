"""``DataService``: datasets, their content-addressed versions, validation on ingestion and quarantine.

An ingestion reads a source through a connector, checks the data against the dataset's expectations,
and either publishes it as a new immutable version (Parquet in the blob store, profiled) or keeps it
in quarantine with its report. Publishing the same content twice returns the existing version. A
batch is acknowledged to its source (``Batch.commit``) only after it is published or quarantined, so
a crash in between re-delivers it, and re-publishing it finds the same version.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import now_ms
from steward.data import pii, protection, quarantine
from steward.data import repository as repo
from steward.data.connectors import Batch, Connector, connector_for
from steward.data.inputs import (
    Outcome,
    TableSource,
    as_policy,
    as_schema,
    as_table,
    combined_source,
    concat_tables,
    lineage_source,
    schema_of,
    text_digest,
)
from steward.data.models import (
    DataFile,
    Dataset,
    DatasetVersion,
    IngestResult,
    QuarantinedBatch,
    QuarantineStatus,
)
from steward.data.privacy import KAnonymityReport, PrivacyPolicy
from steward.data.profile import DatasetProfile, ProfileDiff, diff_profiles, profile_table
from steward.data.residency import Residency, check_new_dataset, check_write, residency_of
from steward.data.validation import DatasetSchema, ValidationReport, validate
from steward.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    ResidencyViolation,
)
from steward.governance import audit
from steward.governance.context import current_identity, local_identity
from steward.store.platform import Platform

__all__ = ["STREAM_KINDS", "DataService", "as_policy", "as_schema", "as_table"]

STREAM_KINDS = frozenset({"redis_stream"})
"""Sources whose batches are published one version each (micro-batches), not concatenated."""
PARQUET_COMPRESSION = "zstd"
_MAX_ATTEMPTS = 8


class DataService:
    """Datasets and their versions, stored directly (embedded mode).

    Args:
        platform: The settings, metadata store and blob store to use.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.metadata = platform.metadata

    # -- datasets ----------------------------------------------------------------------------------

    def create_dataset(
        self,
        name: str,
        description: str = "",
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        region: str | None = None,
        *,
        allowed_regions: Sequence[str] | None = None,
        privacy: PrivacyPolicy | Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Create a dataset.

        Args:
            name: Its name.
            description: What it holds.
            expectations: Checks every ingestion must pass.
            region: Its home region (the artifact store's region by default).
            allowed_regions: The regions its data may be written to (its home region alone by default).
            privacy: The policy ``protect`` applies by default.

        Raises:
            InvalidInput: For a bad name, expectations, policy or region.
            AlreadyExists: If a dataset has that name.
            ResidencyViolation: The region is outside the installation's ``allowed_regions``.
        """
        validate_name(name, "dataset")
        schema = as_schema(expectations)
        policy = as_policy(privacy)
        home = region or self.platform.settings.store_region
        listed = check_new_dataset(name, home, allowed_regions, self.platform.settings)
        values = {
            "id": new_id(),
            "project": self.platform.project,
            "name": name,
            "description": description,
            "region": home,
            "expectations": json.dumps(schema.to_dict()) if schema is not None else None,
            "allowed_regions": json.dumps(listed) if listed is not None else None,
            "privacy": json.dumps(policy.to_dict()) if policy is not None else None,
            "created_at": now_ms(),
            "created_by": self.platform.actor,
        }
        try:
            with self.metadata.transaction() as conn:
                repo.insert_dataset(conn, values)
                self.record(conn, "dataset.create", "dataset", name, details={"region": values["region"]})
        except SQLIntegrityError:
            raise AlreadyExists(f"dataset {name!r} already exists", {"field": "dataset"}) from None
        return self.get_dataset(name)

    def residency(self, name: str) -> Residency:
        """The regions dataset ``name`` may reside in."""
        found = self.get_dataset(name)
        return residency_of(found.name, found.region, found.allowed_regions, self.platform.settings)

    def residency_of_version(self, version_id: str) -> Residency:
        """The regions the dataset of a version (by id) may reside in: what a model trained on it obeys."""
        return self.residency(self.get_version_by_id(version_id).dataset)

    def dataset_row(self, name: str) -> Any:
        """The stored row of dataset ``name`` (for the domain's own modules).

        Raises:
            NotFound: If there is none.
        """
        validate_name(name, "dataset")
        with self.metadata.read() as conn:
            row = repo.find_dataset(conn, self.platform.project, name)
        if row is None:
            raise NotFound(f"dataset {name!r} not found", {"field": "dataset"})
        return row

    def get_dataset(self, name: str) -> Dataset:
        """Return a dataset with its highest version number.

        Raises:
            NotFound: If there is none.
        """
        row = self.dataset_row(name)
        with self.metadata.read() as conn:
            latest, count = repo.version_stats(conn).get(row.id, (None, 0))
        return repo.to_dataset(row, latest, count)

    def list_datasets(self) -> list[Dataset]:
        """Return every dataset, by name."""
        with self.metadata.read() as conn:
            rows = repo.list_dataset_rows(conn, self.platform.project)
            stats = repo.version_stats(conn)
        return [repo.to_dataset(r, *stats.get(r.id, (None, 0))) for r in rows]

    def set_expectations(
        self, name: str, expectations: DatasetSchema | Mapping[str, Any] | str | Path | None
    ) -> Dataset:
        """Replace the expectations every later ingestion of ``name`` is checked against (None: none)."""
        row = self.dataset_row(name)
        schema = as_schema(expectations)
        with self.metadata.transaction() as conn:
            after = json.dumps(schema.to_dict()) if schema else None
            repo.set_expectations(conn, row.id, after)
            self.record(
                conn, "dataset.set_expectations", "dataset", name,
                before_digest=text_digest(row.expectations), after_digest=text_digest(after),
            )  # fmt: skip
        return self.get_dataset(name)

    def set_privacy(self, name: str, policy: PrivacyPolicy | Mapping[str, Any] | None) -> Dataset:
        """Replace the privacy policy ``protect`` applies to ``name`` by default (None: none)."""
        row = self.dataset_row(name)
        found = as_policy(policy)
        with self.metadata.transaction() as conn:
            after = json.dumps(found.to_dict()) if found else None
            repo.set_privacy(conn, row.id, after)
            self.record(
                conn, "dataset.set_privacy", "dataset", name,
                before_digest=text_digest(row.privacy), after_digest=text_digest(after),
            )  # fmt: skip
        return self.get_dataset(name)

    def record(self, conn: Connection, action: str, kind: str, resource: str, **fields: Any) -> None:
        """Append an audit entry by the acting identity inside ``conn``'s transaction."""
        audit.record(self.platform, conn, action, kind, resource, **fields)

    def _check_residency(self, name: str, rules: Residency | None = None) -> None:
        """Refuse (and audit the refusal of) a write of ``name``'s data into this store."""
        try:
            check_write(rules or self.residency(name), self.platform.settings.store_region, "a version")
        except ResidencyViolation as exc:
            with self.metadata.transaction() as conn:
                self.record(conn, "dataset.write", "dataset", name, outcome="denied", details=exc.details)
            raise

    # -- versions ----------------------------------------------------------------------------------

    def get_version(self, name: str, number: int | None = None) -> DatasetVersion:
        """Return version ``number`` of a dataset, or its highest.

        Raises:
            NotFound: If the dataset or version does not exist.
        """
        row = self.dataset_row(name)
        with self.metadata.read() as conn:
            found = repo.version_by_number(conn, row.id, number)
        if found is None:
            what = f"version {number}" if number is not None else "versions"
            raise NotFound(f"dataset {name!r} has no {what}", {"field": "version"})
        return repo.to_version(found, name)

    def get_version_by_id(self, version_id: str) -> DatasetVersion:
        """Return a version by its id (what lineage records)."""
        with self.metadata.read() as conn:
            row = repo.version_by_id(conn, self.platform.project, version_id)
        if row is None:
            raise NotFound(f"dataset version {version_id!r} not found", {"field": "version"})
        return repo.to_version(row, row.dataset_name)

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """Return every version of a dataset, oldest first."""
        row = self.dataset_row(name)
        with self.metadata.read() as conn:
            return [repo.to_version(r, name) for r in repo.version_rows(conn, row.id)]

    def read_table(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        """Read a version's data (every file checked against its digest) as one Arrow table.

        Reading columns that its last scan tagged as personal data is recorded in the audit trail.
        """
        if columns is not None:
            known = {c["name"] for c in version.arrow_schema}
            missing = [c for c in columns if c not in known]
            if missing:
                message = f"{version.ref} has no column {missing[0]!r}"
                raise InvalidInput(message, {"field": "columns", "column": missing[0]})
        self.authorise_read(version, columns)
        tables = []
        for f in version.files:
            data = self.platform.blobs.get_bytes(f.digest)
            tables.append(pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def authorise_read(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> None:
        """Check, and audit, a read of ``columns`` (all if None) of a version before any byte is read.

        Reading columns its last scan tagged as personal data needs ``data:read_pii`` in the project;
        the read, or its refusal, is an audit entry (``dataset_version.read_pii``).

        Raises:
            Forbidden: If the acting identity lacks ``data:read_pii`` for a tagged column.
        """
        wanted = set(columns) if columns else None
        personal = sorted(c for c in version.pii_tags if wanted is None or c in wanted)
        if not personal:
            return
        identity = current_identity(local_identity(self.platform.local_actor))
        details = {"ref": version.ref, "columns": personal}
        allowed = identity.can("data:read_pii", self.platform.project)
        with self.metadata.transaction() as conn:
            self.record(conn, "dataset_version.read_pii", "dataset_version", version.id, details=details,
                        outcome="ok" if allowed else "denied")  # fmt: skip
        if not allowed:
            identity.require("data:read_pii", self.platform.project)

    def iter_file(self, stored: DataFile) -> Iterator[bytes]:
        """Stream one stored file of a version, checked against its digest and recorded size.

        The first chunk is read now, so a missing file raises here, before anything is sent; the chunks
        then leave one step behind, so the last leaves only once the whole file checked out.

        Raises:
            NotFound: If the file is not stored (at once).
            IntegrityError: While streaming, before the last chunk, if the bytes do not match.
        """
        chunks = iter(self.platform.blobs.iter_chunks(stored.digest))
        first = next(chunks, b"")
        return _checked(stored, itertools.chain([first], chunks))

    def store_parquet(self, table: pa.Table) -> DataFile:
        """Write ``table`` as one zstd Parquet file into the blob store (content-addressed)."""
        fd, tmp = tempfile.mkstemp(prefix="steward-data-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)
            ref = self.platform.blobs.put_file(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return DataFile("part-0.parquet", ref.digest, ref.size, table.num_rows)

    def publish(
        self,
        name: str,
        table: pa.Table,
        source: Mapping[str, Any],
        parent_id: str | None = None,
        *,
        relation: str = "derived_from",
    ) -> tuple[DatasetVersion, bool]:
        """Publish ``table`` as a version of dataset ``name`` (created if new), unchecked.

        The version is profiled and scanned for PII. Its lineage edge comes from the source, or, with
        ``parent_id``, from that version (``relation`` names how it was derived).

        Returns:
            The version, and whether it already existed (the same content is the same version).

        Raises:
            ResidencyViolation: The artifact store is outside the dataset's allowed regions.
        """
        dataset = self._ensure_dataset(name)
        self._check_residency(name)
        stored = self.store_parquet(table)
        with self.metadata.read() as conn:
            existing = repo.version_by_digest(conn, dataset.id, stored.digest)
        if existing is not None:
            return repo.to_version(existing, name), True
        profile = profile_table(table).to_dict()
        findings = json.dumps([f.to_dict() for f in pii.scan(table)])
        for _attempt in range(_MAX_ATTEMPTS):
            version_id, now = new_id(), now_ms()
            edge = {
                "source_kind": "source" if parent_id is None else "dataset_version",
                "source_id": lineage_source(source) if parent_id is None else parent_id,
                "target_kind": "dataset_version",
                "target_id": version_id,
                "relation": "ingested_from" if parent_id is None else relation,
                "role": "",
                "created_at": now,
            }
            try:
                with self.metadata.transaction() as conn:
                    repo.lock_dataset(conn, dataset.id)
                    same = repo.version_by_digest(conn, dataset.id, stored.digest)
                    if same is not None:
                        return repo.to_version(same, name), True
                    values = {
                        "id": version_id,
                        "dataset_id": dataset.id,
                        "number": repo.next_number(conn, dataset.id),
                        "content_digest": stored.digest,
                        "rows": table.num_rows,
                        "files": json.dumps([stored.to_json()]),
                        "arrow_schema": json.dumps(schema_of(table)),
                        "source": json.dumps(dict(source), default=str),
                        "profile": json.dumps(profile),
                        "pii": findings,
                        "region": self.platform.settings.store_region,  # where its bytes are
                        "parent_id": parent_id,
                        "created_at": now,
                        "created_by": self.platform.actor,
                    }
                    repo.insert_version(conn, values, [edge])
                    self.record(
                        conn, "dataset.publish", "dataset_version", version_id,
                        after_digest=stored.digest,
                        details={
                            "ref": f"{name}@{values['number']}", "rows": table.num_rows,
                            "source": str(source.get("kind", "")), "parent_id": parent_id,
                        },
                    )  # fmt: skip
            except SQLIntegrityError:
                continue  # another writer took the number or published the same content: look again
            return self.get_version_by_id(version_id), False
        raise Conflict(f"could not publish a version of {name!r}: too many concurrent writers")

    def _ensure_dataset(self, name: str) -> Dataset:
        try:
            return self.get_dataset(name)
        except NotFound:
            try:
                return self.create_dataset(name)
            except AlreadyExists:
                return self.get_dataset(name)

    # -- ingestion ---------------------------------------------------------------------------------

    def ingest(
        self,
        source: str | Path | Mapping[str, Any] | Connector | pa.Table | Any,
        dataset: str,
        *,
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        privacy: PrivacyPolicy | Mapping[str, Any] | None = None,
        description: str = "",
        region: str | None = None,
        allowed_regions: Sequence[str] | None = None,
        **options: Any,
    ) -> IngestResult:
        """Read ``source`` and publish what passes the dataset's expectations; quarantine what fails.

        Files, queries and API pages of one call become one version; each micro-batch of a stream
        becomes its own. ``expectations`` and ``privacy``, if given, become the dataset's from now on.
        With a privacy policy, each published raw version is followed by its protected copy (the
        policy applied to its PII findings), whose lineage points to the raw one; ``result.version``
        is then the protected copy.

        Args:
            source: A path or URL (``.csv``, ``.parquet``, ``.jsonl``, ``s3://…``), ``{"sql": …, "url": …}``,
                ``{"http": …}``, ``{"redis_stream": …}``, a ``Connector``, or an Arrow table or DataFrame.
            dataset: The dataset's name (created on first ingestion).
            expectations: A ``DatasetSchema``, its dict, YAML text or a YAML file.
            privacy: A ``PrivacyPolicy`` or its dict.
            description: For a new dataset.
            region: For a new dataset: its home region.
            allowed_regions: For a new dataset: the regions it may reside in.
            **options: Passed to the connector.

        Raises:
            InvalidInput: For a malformed source (naming the file and line) or bad expectations.
            NotFound: For a missing file.
            ServiceUnavailable: For an unreachable database, API or stream.
            ResidencyViolation: The artifact store is outside the dataset's allowed regions.
        """
        validate_name(dataset, "dataset")
        schema = as_schema(expectations)
        policy = as_policy(privacy)
        try:
            existing: Dataset | None = self.get_dataset(dataset)
        except NotFound:
            existing = None
        if existing is not None:
            self._check_residency(dataset)
        else:  # refuse now what creating it would refuse, but create it only once there is data
            home = region or self.platform.settings.store_region
            listed = check_new_dataset(dataset, home, allowed_regions, self.platform.settings)
            rules = residency_of(dataset, home, listed, self.platform.settings)
            self._check_residency(dataset, rules)
        own_checks = existing.expectations if existing is not None else None
        checks = schema or (DatasetSchema.from_dict(own_checks) if own_checks else None)
        own_policy = existing.privacy if existing is not None else None
        protect = policy or (PrivacyPolicy.from_dict(own_policy) if own_policy else None)
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        if not isinstance(source, str | Mapping) and not hasattr(source, "batches"):
            table = as_table(source)
            connector: Connector = TableSource(table, options.pop("source_info", None))
            if options:
                raise InvalidInput(f"options {sorted(options)} do not apply to a table", {"field": "source"})
        else:
            connector = connector_for(source, **options)
        out = Outcome()
        prepared = False

        def prepare() -> None:  # the dataset and its rules are stored with its first batch
            nonlocal prepared
            if not prepared:
                found = existing or self._create_quietly(dataset, description, None, region, allowed_regions)
                if schema is not None and found.expectations != schema.to_dict():
                    self.set_expectations(dataset, schema)
                if policy is not None and found.privacy != policy.to_dict():
                    self.set_privacy(dataset, policy)
                prepared = True

        pending: list[Batch] = []
        for batch in connector.batches():
            if batch.source.get("kind") in STREAM_KINDS:
                prepare()
                self._handle(dataset, [batch], checks, protect, out)
            else:
                pending.append(batch)
        if pending:
            prepare()
            self._handle(dataset, pending, checks, protect, out)
        return IngestResult(
            tuple(out.versions), tuple(out.quarantined), tuple(out.reused), tuple(out.raw), tuple(out.reports)
        )

    def _create_quietly(
        self,
        name: str,
        description: str,
        schema: DatasetSchema | None,
        region: str | None,
        allowed_regions: Sequence[str] | None,
    ) -> Dataset:
        try:
            return self.create_dataset(name, description, schema, region, allowed_regions=allowed_regions)
        except AlreadyExists:
            return self.get_dataset(name)

    def _handle(
        self,
        dataset: str,
        batches: list[Batch],
        checks: DatasetSchema | None,
        protect: PrivacyPolicy | None,
        out: Outcome,
    ) -> None:
        table = batches[0].table if len(batches) == 1 else concat_tables([b.table for b in batches])
        source = combined_source([b.source for b in batches])
        report = validate(table, checks) if checks is not None else None
        if report is not None:
            out.reports.append(report.to_dict())
        if report is not None and not report.passed:
            out.quarantined.append(quarantine.hold(self, dataset, table, source, report.to_dict()))
        else:
            version, existed = self.publish(dataset, table, source)
            if protect is not None:
                out.raw.append(version)
                version, existed = protection.protect_table(self, version, table, protect, dataset)
            out.versions.append(version)
            out.reused.append(existed)
        for batch in batches:
            batch.commit()

    # -- checks and comparisons ------------------------------------------------------------------

    def validate_version(
        self,
        name: str,
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        number: int | None = None,
    ) -> ValidationReport:
        """Check a stored version against ``expectations`` (the dataset's own by default); publish nothing.

        Raises:
            InvalidInput: The dataset has no expectations and none were given.
        """
        schema = as_schema(expectations)
        if schema is None:
            own = self.get_dataset(name).expectations
            if not own:
                raise InvalidInput(
                    f"dataset {name!r} has no expectations: give some", {"field": "expectations"}
                )
            schema = DatasetSchema.from_dict(own)
        version = self.get_version(name, number)
        return validate(self.read_table(version), schema)

    def diff(self, name: str, old: int, new: int, *, other: str | None = None) -> ProfileDiff:
        """Compare version ``old`` of ``name`` with version ``new`` (of ``other``, if given).

        Returns:
            Schema changes and per-column shifts (PSI, mean shift, null-share change).
        """
        before = self.get_version(name, old)
        after = self.get_version(other or name, new)
        return diff_profiles(
            DatasetProfile.from_dict(before.profile), DatasetProfile.from_dict(after.profile)
        )

    # -- personal data (steward.data.protection) ----------------------------------------------------

    def scan(
        self, name: str, number: int | None = None, *, sample_rows: int = 10_000, min_share: float = 0.5
    ) -> tuple[DatasetVersion, list[pii.ColumnFinding]]:
        """Scan a version for personal data and record the findings (its PII tags) on it.

        Returns:
            The version, updated, and the findings.
        """
        return protection.scan(self, name, number, sample_rows=sample_rows, min_share=min_share)

    def protect(
        self,
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
        return protection.protect(self, name, number, policy, target=target)

    def k_anonymity(
        self, name: str, quasi_identifiers: Sequence[str], number: int | None = None
    ) -> KAnonymityReport:
        """How identifiable a version's rows are through ``quasi_identifiers`` (the smallest group's size)."""
        return protection.k_anonymity(self, name, quasi_identifiers, number)

    # -- quarantine (steward.data.quarantine) ------------------------------------------------------

    def list_quarantine(
        self, dataset: str | None = None, status: QuarantineStatus | str | None = QuarantineStatus.HELD
    ) -> list[QuarantinedBatch]:
        """Return quarantined batches (HELD ones by default; ``status=None`` for all), oldest first."""
        return quarantine.list_quarantine(self, dataset, status)

    def get_quarantined(self, batch_id: str) -> QuarantinedBatch:
        """Return one quarantined batch with its report.

        Raises:
            NotFound: If there is none with that id.
        """
        return quarantine.get_quarantined(self, batch_id)

    def release(self, batch_id: str, reason: str = "") -> DatasetVersion:
        """Publish a HELD batch as it is, despite its failed checks, recording who released it and why.

        Raises:
            Conflict: If it was already released or dropped.
        """
        return quarantine.release(self, batch_id, reason)

    def drop(self, batch_id: str, reason: str = "") -> QuarantinedBatch:
        """Mark a HELD batch dropped (its data is not published), recording who and why.

        Raises:
            Conflict: If it was already released or dropped.
        """
        return quarantine.drop(self, batch_id, reason)


def _checked(stored: DataFile, chunks: Iterator[bytes]) -> Iterator[bytes]:
    held, size = b"", 0
    for chunk in chunks:
        size += len(chunk)
        if size > stored.size:
            raise IntegrityError(f"blob {stored.digest} holds more than its recorded {stored.size} bytes")
        if held:
            yield held
        held = chunk
    if size != stored.size:
        raise IntegrityError(f"blob {stored.digest} holds {size} bytes, not the recorded {stored.size}")
    if held:
        yield held
