"""The data domain's types: datasets, their immutable versions, and quarantined batches; and the
``DataBackend`` protocol that the embedded service and the HTTP client both implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: pyarrow and the checks' modules are imported when first used
    import pyarrow as pa

    from steward.data.pii import ColumnFinding
    from steward.data.privacy import KAnonymityReport, PrivacyPolicy
    from steward.data.profile import ProfileDiff
    from steward.data.residency import Residency
    from steward.data.validation import DatasetSchema, ValidationReport


class QuarantineStatus(StrEnum):
    """A quarantined batch is HELD until someone RELEASEs it (published as is) or DROPs it."""

    HELD = "HELD"
    RELEASED = "RELEASED"
    DROPPED = "DROPPED"


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a dataset version (or of a quarantined batch) in the blob store."""

    path: str
    digest: str
    size: int
    rows: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"path": self.path, "digest": self.digest, "size": self.size, "rows": self.rows}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataFile:
        """Build from the dict ``to_json`` returns."""
        return cls(str(data["path"]), str(data["digest"]), int(data["size"]), int(data["rows"]))


@dataclass(frozen=True)
class Dataset:
    """A named dataset: its region, the expectations every ingestion is checked against, its versions."""

    id: str
    name: str
    description: str
    region: str
    expectations: Mapping[str, Any] | None
    created_at: datetime
    created_by: str
    latest_version: int | None = None
    version_count: int = 0
    allowed_regions: tuple[str, ...] | None = None
    privacy: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "region": self.region,
            "expectations": dict(self.expectations) if self.expectations is not None else None,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "allowed_regions": list(self.allowed_regions) if self.allowed_regions is not None else None,
            "privacy": dict(self.privacy) if self.privacy is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dataset:
        """Build from the dict ``to_json`` returns."""
        allowed = data.get("allowed_regions")
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            description=str(data["description"]),
            region=str(data["region"]),
            expectations=_optional_dict(data.get("expectations")),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=str(data["created_by"]),
            latest_version=data.get("latest_version"),
            version_count=int(data.get("version_count", 0)),
            allowed_regions=tuple(str(r) for r in allowed) if allowed is not None else None,
            privacy=_optional_dict(data.get("privacy")),
        )


@dataclass(frozen=True)
class DatasetVersion:
    """An immutable, content-addressed version of a dataset.

    Attributes:
        number: 1, 2, 3 … in order of publication; ``ref`` (``name@number``) names it.
        content_digest: SHA-256 of its Parquet content: the same data is the same version.
        files: Its Parquet files in the blob store.
        arrow_schema: ``[{"name", "type", "nullable"}]``.
        source: Where it came from (file URL, query, stream offsets, or the version it derives from).
        profile: Per-column statistics (``steward.data.profile.DatasetProfile.to_dict()``).
        parent_id: The version this one was derived from (an anonymised copy of a raw version …).
        pii: The PII findings of its last scan (``steward.data.pii.ColumnFinding.to_dict()`` each);
            None if it was never scanned.
    """

    id: str
    dataset: str
    number: int
    content_digest: str
    rows: int
    files: tuple[DataFile, ...]
    arrow_schema: tuple[Mapping[str, Any], ...]
    source: Mapping[str, Any]
    profile: Mapping[str, Any]
    region: str
    parent_id: str | None
    created_at: datetime
    created_by: str
    pii: tuple[Mapping[str, Any], ...] | None = None

    @property
    def ref(self) -> str:
        """``name@number``, e.g. ``transactions@3``."""
        return f"{self.dataset}@{self.number}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "number": self.number,
            "ref": self.ref,
            "content_digest": self.content_digest,
            "rows": self.rows,
            "files": [f.to_json() for f in self.files],
            "arrow_schema": [dict(c) for c in self.arrow_schema],
            "source": dict(self.source),
            "profile": dict(self.profile),
            "region": self.region,
            "parent_id": self.parent_id,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "pii": [dict(f) for f in self.pii] if self.pii is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetVersion:
        """Build from the dict ``to_json`` returns (``ref`` is derived, so it is not read)."""
        pii = data.get("pii")
        return cls(
            id=str(data["id"]),
            dataset=str(data["dataset"]),
            number=int(data["number"]),
            content_digest=str(data["content_digest"]),
            rows=int(data["rows"]),
            files=tuple(DataFile.from_json(f) for f in data["files"]),
            arrow_schema=tuple(dict(c) for c in data["arrow_schema"]),
            source=dict(data["source"]),
            profile=dict(data["profile"]),
            region=str(data["region"]),
            parent_id=data.get("parent_id"),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=str(data["created_by"]),
            pii=tuple(dict(f) for f in pii) if pii is not None else None,
        )

    @property
    def pii_tags(self) -> dict[str, list[str]]:
        """``{column: [tags]}`` from the last scan (empty if never scanned or nothing found)."""
        return {str(f["column"]): [str(t) for t in f["tags"]] for f in self.pii or ()}


@dataclass(frozen=True)
class QuarantinedBatch:
    """A batch that failed validation, kept whole with its report; nothing is silently dropped."""

    id: str
    dataset: str
    status: QuarantineStatus
    rows: int
    files: tuple[DataFile, ...]
    source: Mapping[str, Any]
    report: Mapping[str, Any]
    created_at: datetime
    created_by: str
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "status": self.status.value,
            "rows": self.rows,
            "files": [f.to_json() for f in self.files],
            "source": dict(self.source),
            "report": dict(self.report),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuarantinedBatch:
        """Build from the dict ``to_json`` returns."""
        resolved = data.get("resolved_at")
        return cls(
            id=str(data["id"]),
            dataset=str(data["dataset"]),
            status=QuarantineStatus(data["status"]),
            rows=int(data["rows"]),
            files=tuple(DataFile.from_json(f) for f in data["files"]),
            source=dict(data["source"]),
            report=dict(data["report"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=str(data["created_by"]),
            resolved_at=datetime.fromisoformat(resolved) if resolved else None,
            resolved_by=data.get("resolved_by"),
            resolution=data.get("resolution"),
        )


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` call produced: published versions and quarantined batches.

    Attributes:
        versions: The versions published (with a privacy policy, the protected copies).
        quarantined: The batches that failed their checks.
        reused: Per version, whether it existed already (the same content is the same version).
        raw: With a privacy policy, the raw versions the protected copies came from.
        reports: The validation report of each checked batch, published or quarantined, in the order
            read (``ValidationReport.to_dict()`` each); empty when the dataset has no expectations.
    """

    versions: tuple[DatasetVersion, ...] = ()
    quarantined: tuple[QuarantinedBatch, ...] = ()
    reused: tuple[bool, ...] = field(default=())
    raw: tuple[DatasetVersion, ...] = field(default=())
    reports: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def version(self) -> DatasetVersion | None:
        """The last version published (None if every batch was quarantined)."""
        return self.versions[-1] if self.versions else None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "versions": [v.to_json() for v in self.versions],
            "quarantined": [b.to_json() for b in self.quarantined],
            "reused": list(self.reused),
            "raw": [v.to_json() for v in self.raw],
            "reports": [dict(r) for r in self.reports],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestResult:
        """Build from the dict ``to_json`` returns."""
        return cls(
            versions=tuple(DatasetVersion.from_json(v) for v in data.get("versions", ())),
            quarantined=tuple(QuarantinedBatch.from_json(b) for b in data.get("quarantined", ())),
            reused=tuple(bool(r) for r in data.get("reused", ())),
            raw=tuple(DatasetVersion.from_json(v) for v in data.get("raw", ())),
            reports=tuple(dict(r) for r in data.get("reports", ())),
        )


def _optional_dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


class DataBackend(Protocol):
    """The data operations, embedded (``DataService``) or over HTTP (``steward.client.data``).

    Both raise the errors of ``steward.errors``; one contract test suite runs against both. Expectations
    and policies are taken in any of their forms (object, dict, YAML text or file) and read where the
    caller runs: a remote client reads a YAML file or a source locally and sends what it found, so a
    server never opens a path or URL a client names. An implementation over another transport:

    >>> class Forwarding:
    ...     def __init__(self, inner: DataBackend) -> None:
    ...         self.inner = inner
    ...
    ...     def get_dataset(self, name: str) -> Dataset:
    ...         return self.inner.get_dataset(name)
    ...
    ...     # … and every other method below, with the same signature and errors.
    """

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
        """Create a dataset; ``AlreadyExists`` if the name is taken."""
        ...

    def get_dataset(self, name: str) -> Dataset:
        """Return a dataset with its highest version number; ``NotFound`` otherwise."""
        ...

    def list_datasets(self) -> list[Dataset]:
        """Return every dataset, by name."""
        ...

    def set_expectations(
        self, name: str, expectations: DatasetSchema | Mapping[str, Any] | str | Path | None
    ) -> Dataset:
        """Replace the expectations later ingestions of ``name`` are checked against (None: none)."""
        ...

    def set_privacy(self, name: str, policy: PrivacyPolicy | Mapping[str, Any] | None) -> Dataset:
        """Replace the privacy policy ``protect`` applies to ``name`` by default (None: none)."""
        ...

    def residency(self, name: str) -> Residency:
        """The regions dataset ``name`` may reside in."""
        ...

    def get_version(self, name: str, number: int | None = None) -> DatasetVersion:
        """Return version ``number`` of a dataset, or its highest; ``NotFound`` otherwise."""
        ...

    def get_version_by_id(self, version_id: str) -> DatasetVersion:
        """Return a version by its id (what lineage records); ``NotFound`` otherwise."""
        ...

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """Return every version of a dataset, oldest first."""
        ...

    def read_table(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        """Read a version's data (checked against its digests) as one Arrow table."""
        ...

    def ingest(
        self,
        source: Any,
        dataset: str,
        *,
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        privacy: PrivacyPolicy | Mapping[str, Any] | None = None,
        description: str = "",
        region: str | None = None,
        allowed_regions: Sequence[str] | None = None,
        **options: Any,
    ) -> IngestResult:
        """Read ``source`` (a path or URL, a source mapping, a ``Connector``, a table or DataFrame) and
        publish what passes the dataset's expectations; quarantine what fails."""
        ...

    def validate_version(
        self,
        name: str,
        expectations: DatasetSchema | Mapping[str, Any] | str | Path | None = None,
        number: int | None = None,
    ) -> ValidationReport:
        """Check a stored version against ``expectations`` (the dataset's own by default)."""
        ...

    def diff(self, name: str, old: int, new: int, *, other: str | None = None) -> ProfileDiff:
        """Compare version ``old`` of ``name`` with version ``new`` (of ``other``, if given)."""
        ...

    def scan(
        self, name: str, number: int | None = None, *, sample_rows: int = 10_000, min_share: float = 0.5
    ) -> tuple[DatasetVersion, list[ColumnFinding]]:
        """Scan a version for personal data, record the findings on it; return it and them."""
        ...

    def protect(
        self,
        name: str,
        number: int | None = None,
        policy: PrivacyPolicy | Mapping[str, Any] | None = None,
        *,
        target: str | None = None,
    ) -> DatasetVersion:
        """Publish a privacy-protected copy of a version, whose parent is the raw one."""
        ...

    def k_anonymity(
        self, name: str, quasi_identifiers: Sequence[str], number: int | None = None
    ) -> KAnonymityReport:
        """How identifiable a version's rows are through ``quasi_identifiers``."""
        ...

    def list_quarantine(
        self, dataset: str | None = None, status: QuarantineStatus | str | None = QuarantineStatus.HELD
    ) -> list[QuarantinedBatch]:
        """Return quarantined batches (HELD ones by default; ``status=None`` for all), oldest first."""
        ...

    def get_quarantined(self, batch_id: str) -> QuarantinedBatch:
        """Return one quarantined batch with its report; ``NotFound`` otherwise."""
        ...

    def release(self, batch_id: str, reason: str = "") -> DatasetVersion:
        """Publish a HELD batch as it is; ``Conflict`` if it was already released or dropped."""
        ...

    def drop(self, batch_id: str, reason: str = "") -> QuarantinedBatch:
        """Mark a HELD batch dropped; ``Conflict`` if it was already released or dropped."""
        ...
