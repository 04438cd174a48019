"""The tracking domain's types, and the ``TrackingBackend`` protocol that the embedded service and the
HTTP client both implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from steward.core.time import to_us


class RunStatus(StrEnum):
    """The life of a run: RUNNING, then FINISHED, FAILED (an exception) or KILLED (a signal)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended."""
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    id: str
    name: str
    description: str
    created_at: datetime
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Experiment:
        """Build from the dict ``to_json`` returns."""
        return cls(
            id=data["id"],
            name=data["name"],
            description=data.get("description", ""),
            created_at=datetime.fromisoformat(data["created_at"]),
            deleted=bool(data.get("deleted", False)),
        )


@dataclass(frozen=True)
class SystemInfo:
    """What a run records about where it ran, captured by ``steward.tracking.environment``."""

    user: str = ""
    host: str = ""
    entry_point: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    python_version: str = ""
    packages: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """A run as stored: its record, its parameters, tags and the latest value of each metric."""

    id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    parent_run_id: str | None
    error: str | None
    user: str
    host: str
    entry_point: str
    git_commit: str | None
    git_dirty: bool | None
    python_version: str
    environment_digest: str | None
    deleted: bool
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times in ISO 8601, UTC)."""
        data = asdict(self)
        data["status"] = self.status.value
        data["start_time"] = self.start_time.isoformat()
        data["end_time"] = self.end_time.isoformat() if self.end_time else None
        data["params"] = dict(self.params)
        data["tags"] = dict(self.tags)
        data["metrics"] = dict(self.metrics)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        """Build from the dict ``to_json`` returns."""
        values = dict(data)
        values["status"] = RunStatus(values["status"])
        values["start_time"] = datetime.fromisoformat(values["start_time"])
        end = values.get("end_time")
        values["end_time"] = datetime.fromisoformat(end) if end else None
        return cls(**values)


@dataclass(frozen=True)
class MetricSeries:
    """Points of one metric: parallel arrays of steps (int64), values (float64) and times (Unix ms).

    ``checked`` is set by the SDK's metric buffer, which validated every point when it was logged, so
    the embedded service need not check the arrays again. Series from anywhere else are checked.
    """

    key: str
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    timestamps: npt.NDArray[np.int64]
    checked: bool = field(default=False, compare=False, kw_only=True)

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class Artifact:
    """A file recorded by a run: its path inside the run, and the blob holding its bytes."""

    path: str
    digest: str
    size: int
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "path": self.path,
            "digest": self.digest,
            "size": self.size,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        """Build from the dict ``to_json`` returns."""
        return cls(
            data["path"], data["digest"], int(data["size"]), datetime.fromisoformat(data["created_at"])
        )


class TrackingBackend(Protocol):
    """The tracking operations, embedded (``TrackingService``) or over HTTP (``steward.client``).

    Both raise the errors of ``steward.errors``; one contract test suite runs against both.
    """

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        """Create an experiment; ``AlreadyExists`` if the name is taken."""
        ...

    def get_experiment(self, name_or_id: str) -> Experiment:
        """Return an experiment by name or id; ``NotFound`` otherwise."""
        ...

    def get_or_create_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``, creating it if needed."""
        ...

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments, oldest first."""
        ...

    def create_run(
        self,
        experiment: str,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        system: SystemInfo | None = None,
    ) -> Run:
        """Start a RUNNING run in ``experiment`` (created if missing)."""
        ...

    def get_run(self, run_id: str) -> Run:
        """Return a run with its params, tags and latest metrics."""
        ...

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        metrics: Sequence[MetricSeries] = (),
    ) -> None:
        """Write the run's last metric points (if any) and end it; ``Conflict`` if it already ended."""
        ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Record parameters; ``Conflict`` if a key was logged before with a different value."""
        ...

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) tags."""
        ...

    def log_metrics(self, run_id: str, series: Sequence[MetricSeries]) -> int:
        """Append metric points in one transaction; return how many were written."""
        ...

    def get_metric_history(self, run_id: str, key: str) -> MetricSeries:
        """Return every point of a metric ordered by step then time; ``NotFound`` if never logged."""
        ...

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> Artifact:
        """Store a local file as the run's artifact ``artifact_path``."""
        ...

    def log_artifact_bytes(self, run_id: str, data: bytes, artifact_path: str) -> Artifact:
        """Store bytes as the run's artifact ``artifact_path``."""
        ...

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Return the run's artifacts sorted by path."""
        ...

    def download_artifact(self, run_id: str, artifact_path: str, dest: Path) -> Path:
        """Write an artifact's verified bytes to ``dest`` and return it."""
        ...

    def search_runs(
        self,
        experiments: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Return runs of the named experiments matching ``filter``, sorted by ``order_by``."""
        ...

    def search_run_columns(
        self,
        experiments: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> dict[str, list[Any]]:
        """``search_runs`` laid out by column (``run_columns``' shape), for ``steward.search_runs``."""
        ...

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run (hidden from search, restorable)."""
        ...

    def restore_run(self, run_id: str) -> None:
        """Undo ``delete_run``."""
        ...


RUN_BASE_COLUMNS = (
    "run_id", "experiment_id", "run_name", "status", "start_time", "end_time", "parent_run_id",
)  # fmt: skip
"""The columns of every search result, before its ``metrics.*``, ``params.*`` and ``tags.*``."""


def run_columns(found: Sequence[Run]) -> dict[str, list[Any]]:
    """Runs laid out by column: ``RUN_BASE_COLUMNS`` (times as epoch milliseconds, None for a run still
    going), then ``metrics.<key>``, ``params.<key>`` and ``tags.<key>`` for every key any run has, each
    group sorted by key, NaN where a run lacks the key."""
    columns: dict[str, list[Any]] = {
        "run_id": [r.id for r in found],
        "experiment_id": [r.experiment_id for r in found],
        "run_name": [r.name for r in found],
        "status": [r.status.value for r in found],
        "start_time": [to_us(r.start_time) // 1000 for r in found],
        "end_time": [to_us(r.end_time) // 1000 if r.end_time is not None else None for r in found],
        "parent_run_id": [r.parent_run_id for r in found],
    }
    missing = float("nan")
    for kind in ("metrics", "params", "tags"):
        for key in sorted({k for r in found for k in getattr(r, kind)}):
            columns[f"{kind}.{key}"] = [getattr(r, kind).get(key, missing) for r in found]
    return columns
