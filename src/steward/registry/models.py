"""The registry's types, and the ``RegistryBackend`` protocol that the embedded service and the HTTP
client both implement."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steward.core.signature import Signature
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.registry.signatures import VerificationReport

MANIFEST_NAME = "steward-model.yaml"
PRIMARY_FORMAT = "model"
_REFERENCE = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))?$")


def parse_reference(reference: str) -> tuple[str, str | None, str | None]:
    """Split ``models:/name/1.2.0`` / ``models:/name@alias`` / ``models:/name`` into (name, version, alias).

    Raises:
        InvalidInput: For any other form.
    """
    match = _REFERENCE.match(reference) if isinstance(reference, str) else None
    if match is None:
        raise InvalidInput(
            f"invalid model reference {reference!r}: use models:/<name>/<version>, models:/<name>@<alias> "
            "or models:/<name>",
            {"field": "uri"},
        )
    return match["name"], match["version"], match["alias"]


class VersionStatus(StrEnum):
    """A version is READY (usable, may take aliases) or ARCHIVED (kept, loadable, takes no alias)."""

    READY = "READY"
    ARCHIVED = "ARCHIVED"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model bundle: its path inside the bundle and the blob holding its bytes."""

    path: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"path": self.path, "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelFile:
        """Build from the dict ``to_json`` returns."""
        return cls(str(data["path"]), str(data["digest"]), int(data["size"]))


@dataclass(frozen=True)
class VersionSpec:
    """What a client sends to create a version; the registry adds the number, the run's facts and time.

    Attributes:
        flavor: The flavor that wrote ``files``.
        files: The bundle's files, already uploaded.
        flavor_options: What the flavor's loader needs (``predict_fn`` …).
        signature: The input (and output) schema, enforced at predict time.
        requirements: Pinned requirements (``scikit-learn==1.9.1`` …).
        python_version: The Python that saved the model.
        run_id: The run that produced the model.
        datasets: Dataset versions the model was trained on, by role (``{"train": id}``).
        metrics: Figures to record with the version (the run's latest metrics are added).
        description: Free text.
        version: An explicit SemVer; chosen by the registry if omitted.
    """

    flavor: str
    files: Sequence[ModelFile]
    flavor_options: Mapping[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    requirements: Sequence[str] = ()
    python_version: str = ""
    run_id: str | None = None
    datasets: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "flavor": self.flavor,
            "files": [f.to_json() for f in self.files],
            "flavor_options": dict(self.flavor_options),
            "signature": self.signature.to_dict() if self.signature else None,
            "requirements": list(self.requirements),
            "python_version": self.python_version,
            "run_id": self.run_id,
            "datasets": dict(self.datasets),
            "metrics": dict(self.metrics),
            "description": self.description,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionSpec:
        """Build from the dict ``to_json`` returns."""
        signature = data.get("signature")
        return cls(
            flavor=str(data["flavor"]),
            files=[ModelFile.from_json(f) for f in data.get("files") or ()],
            flavor_options=dict(data.get("flavor_options") or {}),
            signature=Signature.from_dict(signature) if signature else None,
            requirements=list(data.get("requirements") or ()),
            python_version=str(data.get("python_version") or ""),
            run_id=data.get("run_id"),
            datasets=dict(data.get("datasets") or {}),
            metrics=dict(data.get("metrics") or {}),
            description=str(data.get("description") or ""),
            version=data.get("version"),
        )


@dataclass(frozen=True)
class ModelVersion:
    """A registered version: its number, status, aliases and the manifest of its bundle.

    ``manifest`` is the parsed ``steward-model.yaml``: flavor, options, files with digests, signature,
    requirements, Python version, run, datasets and metrics. ``formats`` holds the manifests of further
    formats of the same version (``{"onnx": {...}}``).
    """

    id: str
    model: str
    version: str
    status: VersionStatus
    flavor: str
    run_id: str | None
    description: str
    created_at: datetime
    created_by: str
    archived_at: datetime | None
    manifest_digest: str
    manifest: Mapping[str, Any]
    aliases: tuple[str, ...] = ()
    formats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    archived_reason: str = ""

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``, what ``steward.load_model`` takes."""
        return f"models:/{self.model}/{self.version}"

    @property
    def signature(self) -> Signature | None:
        """The recorded signature, if any."""
        data = self.manifest.get("signature")
        return Signature.from_dict(data) if data else None

    @property
    def files(self) -> list[ModelFile]:
        """The primary bundle's files."""
        return [ModelFile.from_json(f) for f in self.manifest.get("files", ())]

    @property
    def datasets(self) -> dict[str, str]:
        """Dataset version ids by role."""
        return dict(self.manifest.get("datasets") or {})

    @property
    def metrics(self) -> dict[str, float]:
        """The figures recorded with the version."""
        return dict(self.manifest.get("metrics") or {})

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times in ISO 8601, UTC)."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "status": self.status.value,
            "flavor": self.flavor,
            "run_id": self.run_id,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "archived_at": self.archived_at.isoformat() if self.archived_at else None,
            "archived_reason": self.archived_reason,
            "manifest_digest": self.manifest_digest,
            "manifest": dict(self.manifest),
            "aliases": list(self.aliases),
            "formats": {k: dict(v) for k, v in self.formats.items()},
            "uri": self.uri,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelVersion:
        """Build from the dict ``to_json`` returns."""
        archived = data.get("archived_at")
        return cls(
            id=data["id"],
            model=data["model"],
            version=data["version"],
            status=VersionStatus(data["status"]),
            flavor=data["flavor"],
            run_id=data.get("run_id"),
            description=data.get("description", ""),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=data.get("created_by", ""),
            archived_at=datetime.fromisoformat(archived) if archived else None,
            manifest_digest=data["manifest_digest"],
            manifest=dict(data.get("manifest") or {}),
            aliases=tuple(data.get("aliases") or ()),
            formats=dict(data.get("formats") or {}),
            archived_reason=data.get("archived_reason", ""),
        )


@dataclass(frozen=True)
class RegisteredModel:
    """A named model: its description, its highest version and where its aliases point."""

    id: str
    name: str
    description: str
    created_at: datetime
    created_by: str
    latest_version: str | None
    version_count: int
    aliases: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegisteredModel:
        """Build from the dict ``to_json`` returns."""
        return cls(
            id=data["id"],
            name=data["name"],
            description=data.get("description", ""),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=data.get("created_by", ""),
            latest_version=data.get("latest_version"),
            version_count=int(data.get("version_count", 0)),
            aliases=dict(data.get("aliases") or {}),
        )


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias (``to_version`` None: the alias was removed)."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    at: datetime
    reason: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "model": self.model,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AliasEvent:
        """Build from the dict ``to_json`` returns."""
        return cls(
            model=data["model"],
            alias=data["alias"],
            from_version=data.get("from_version"),
            to_version=data.get("to_version"),
            actor=data.get("actor", ""),
            at=datetime.fromisoformat(data["at"]),
            reason=data.get("reason", ""),
        )


class RegistryBackend(Protocol):
    """The registry operations, embedded (``RegistryService``) or over HTTP (``steward.client``).

    Both raise the errors of ``steward.errors``; one contract test suite runs against both.
    """

    def upload_file(self, model: str, local_path: Path, path: str, datasets: Sequence[str] = ()) -> ModelFile:
        """Store one bundle file (content-addressed) before its version is created.

        ``datasets`` (the dataset version ids the model was trained on) lets the store refuse the bytes
        before writing them when their data may not reside in its region (``ResidencyViolation``).
        """
        ...

    def create_version(self, model: str, spec: VersionSpec) -> ModelVersion:
        """Register a version of ``model`` (created if new) from uploaded files, atomically."""
        ...

    def add_format(
        self,
        model: str,
        version: str,
        name: str,
        flavor: str,
        options: Mapping[str, Any],
        files: Sequence[ModelFile],
    ) -> ModelVersion:
        """Attach a further format (``onnx`` …) to an existing version; ``Conflict`` if it has one."""
        ...

    def get_model(self, name: str) -> RegisteredModel:
        """Return a registered model; ``NotFound`` otherwise."""
        ...

    def list_models(self) -> list[RegisteredModel]:
        """Return every registered model, by name."""
        ...

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Return a model's versions, lowest first by SemVer precedence."""
        ...

    def get_version(self, model: str, version: str) -> ModelVersion:
        """Return one version; ``NotFound`` if the model or the version does not exist."""
        ...

    def resolve(self, reference: str) -> ModelVersion:
        """Resolve ``models:/name/1.2.0``, ``models:/name@alias`` or ``models:/name`` (highest READY)."""
        ...

    def set_alias(self, model: str, alias: str, version: str, reason: str = "") -> ModelVersion:
        """Point ``alias`` at ``version`` atomically and record the move; return the version."""
        ...

    def delete_alias(self, model: str, alias: str, reason: str = "") -> None:
        """Remove an alias and record it; ``NotFound`` if it does not exist."""
        ...

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Return every recorded move of the model's aliases (or of one), oldest first."""
        ...

    def archive_version(self, model: str, version: str, reason: str = "") -> ModelVersion:
        """Archive a version; ``Conflict`` while an alias points at it."""
        ...

    def restore_version(self, model: str, version: str) -> ModelVersion:
        """Make an archived version READY again."""
        ...

    def read_file(self, model: str, version: str, path: str, fmt: str = PRIMARY_FORMAT) -> bytes:
        """Return the verified bytes of one file of a version's bundle (``steward-model.yaml`` too)."""
        ...

    def model_lineage(self, model: str, version: str) -> dict[str, Any]:
        """The chain behind a version: its run (params, code commit) and dataset versions."""
        ...

    def dataset_lineage(self, dataset_version_id: str) -> list[dict[str, Any]]:
        """Every model version trained on a dataset version."""
        ...

    def save_card(self, model: str, version: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """Render the version's model card from recorded facts plus ``fields`` and store it."""
        ...

    def get_card(self, model: str, version: str, fmt: str = "md") -> str:
        """Return the stored card (``md`` or ``html``), rendering it first if it was never saved."""
        ...

    def verify_version(self, model: str, version: str) -> VerificationReport:
        """Check the version's platform signature and re-hash its files; a report, ``ok`` if all passed."""
        ...
