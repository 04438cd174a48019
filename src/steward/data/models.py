"""The data domain's types: datasets, their immutable versions, and quarantined batches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class IngestResult:
    """What one ``ingest`` call produced: published versions and quarantined batches.

    Attributes:
        versions: The versions published (with a privacy policy, the protected copies).
        quarantined: The batches that failed their checks.
        reused: Per version, whether it existed already (the same content is the same version).
        raw: With a privacy policy, the raw versions the protected copies came from.
    """

    versions: tuple[DatasetVersion, ...] = ()
    quarantined: tuple[QuarantinedBatch, ...] = ()
    reused: tuple[bool, ...] = field(default=())
    raw: tuple[DatasetVersion, ...] = field(default=())

    @property
    def version(self) -> DatasetVersion | None:
        """The last version published (None if every batch was quarantined)."""
        return self.versions[-1] if self.versions else None
