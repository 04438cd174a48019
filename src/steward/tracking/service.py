"""``TrackingService``: the embedded implementation of tracking, straight on the metadata and blob stores."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.core.ids import new_id
from steward.core.names import validate_key, validate_name
from steward.core.time import from_ms, now_ms
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.governance import audit
from steward.store.platform import Platform
from steward.tracking import repository as repo
from steward.tracking.models import Artifact, Experiment, MetricSeries, Run, RunStatus, SystemInfo
from steward.tracking.search import parse_filter, parse_order_by
from steward.tracking.validation import check_artifact_path, check_metric_arrays, param_text, tag_text

MAX_SEARCH_RESULTS = 50_000
ENVIRONMENT_ARTIFACT = "_steward/environment.json"
"""Where each run keeps ``{"python": …, "packages": {name: version}}`` among its artifacts."""


class TrackingService:
    """Experiments, runs, params, metrics, tags and artifacts, stored directly (embedded mode).

    Args:
        platform: The settings, metadata store and blob store to use.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._db = platform.metadata
        self._environments: set[str] = set()
        self._env_lock = threading.Lock()
        # Experiments are never renamed or removed, so a found one can be remembered by project and name.
        self._experiments: dict[tuple[str, str], Experiment] = {}
        # Runs never change project: (project, run id) pairs already checked to be visible.
        self._visible_runs: set[tuple[str, str]] = set()
        self._last_environment: tuple[Mapping[str, str], str, str, int] | None = None

    def _record(self, conn: Any, action: str, kind: str, resource: str) -> None:
        """Audit a lifecycle change (experiments made, runs deleted or restored) in ``conn``'s transaction.

        Logging to a run (params, metrics, tags, artifacts) is not audited entry by entry: the run
        itself records who logged, when, from which code; its creation is in the run's own row.
        """
        audit.append(
            conn, actor=self.platform.actor, action=action, resource_kind=kind, resource_id=resource,
            checkpoint=audit.checkpointer_for(self.platform.settings), project=self.platform.project,
            request_id=self.platform.request_id,
        )  # fmt: skip

    # -- experiments -------------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        """Create an experiment.

        Raises:
            InvalidInput: If ``name`` is not a valid name.
            AlreadyExists: If an experiment has that name.
        """
        validate_name(name, "experiment")
        values = {"id": new_id(), "project": self.platform.project, "name": name, "description": description,
                  "created_at": now_ms()}  # fmt: skip
        try:
            with self._db.transaction() as conn:
                repo.insert_experiment(conn, values)
                self._record(conn, "experiment.create", "experiment", name)
        except SQLIntegrityError:
            raise AlreadyExists(f"experiment {name!r} already exists", {"field": "experiment"}) from None
        return self.get_experiment(name)

    def get_experiment(self, name_or_id: str) -> Experiment:
        """Return an experiment by name or id.

        Raises:
            NotFound: If there is none.
        """
        with self._db.read() as conn:
            found = repo.find_experiment(conn, self.platform.project, name_or_id)
        if found is None:
            raise NotFound(f"experiment {name_or_id!r} not found", {"field": "experiment"})
        return found

    def get_or_create_experiment(self, name: str) -> Experiment:
        """Return the experiment called ``name``, creating it first if needed (safe under races)."""
        key = (self.platform.project, name)
        known = self._experiments.get(key)
        if known is not None:
            return known
        try:
            found = self.get_experiment(name)
        except NotFound:
            try:
                found = self.create_experiment(name)
            except AlreadyExists:
                found = self.get_experiment(name)
        if found.name == name:
            self._experiments[key] = found
        return found

    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]:
        """Return experiments, oldest first."""
        with self._db.read() as conn:
            return repo.list_experiments(conn, self.platform.project, include_deleted)

    # -- runs --------------------------------------------------------------------------------------

    def check_visible(self, conn: Any, run_id: str) -> None:
        """Raise ``NotFound`` unless ``run_id`` is a run of the acting project (remembered once seen).

        Writes that do not read the run's row first (params, the run's end) call this, so that no
        project can write to another's runs.
        """
        key = (self.platform.project, run_id)
        if key in self._visible_runs:
            return
        repo.run_row(conn, run_id, key[0])
        self._remember_visible(key)

    def _remember_visible(self, key: tuple[str, str]) -> None:
        if len(self._visible_runs) > 100_000:
            self._visible_runs.clear()
        self._visible_runs.add(key)

    def _store_environment(self, system: SystemInfo) -> tuple[str, int] | None:
        """Store the Python version and package list as a blob once; return its digest and size."""
        if not system.packages:
            return None
        last = self._last_environment
        if last is not None and last[0] is system.packages and last[1] == system.python_version:
            return last[2], last[3]
        document = json.dumps(
            {"python": system.python_version, "packages": dict(system.packages)}, sort_keys=True
        ).encode()
        digest = hashlib.sha256(document).hexdigest()
        with self._env_lock:
            known = digest in self._environments
        if not known:
            ref = self.platform.blobs.put_bytes(document)
            with self._env_lock:
                self._environments.add(ref.digest)
        # The SDK passes the same captured object for every run of a process: skip re-encoding it.
        self._last_environment = (system.packages, system.python_version, digest, len(document))
        return digest, len(document)

    def create_run(
        self,
        experiment: str,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        system: SystemInfo | None = None,
    ) -> Run:
        """Start a RUNNING run in ``experiment``, creating the experiment if it does not exist.

        Args:
            experiment: The experiment's name (or id).
            name: The run's name; a generated one if omitted.
            parent_run_id: Nest this run under another run.
            tags: Initial tags.
            system: Where the run runs (user, host, git, packages); recorded as given.

        Raises:
            InvalidInput: For a bad experiment name or tag.
            NotFound: If ``parent_run_id`` names no run.
        """
        exp = self.get_or_create_experiment(experiment)
        run_id = new_id()
        run_name = name if name else f"run-{run_id[-8:]}"
        if len(run_name) > 256:
            raise InvalidInput("run name is longer than 256 characters", {"field": "run_name"})
        tag_values = {k: tag_text(k, v) for k, v in (tags or {}).items()}
        system = system or SystemInfo()
        environment = self._store_environment(system)
        values = {
            "id": run_id,
            "experiment_id": exp.id,
            "name": run_name,
            "status": RunStatus.RUNNING.value,
            "start_time": now_ms(),
            "parent_run_id": parent_run_id,
            "user_name": system.user or self.platform.actor,
            "host": system.host,
            "entry_point": system.entry_point,
            "git_commit": system.git_commit,
            "git_dirty": None if system.git_dirty is None else int(system.git_dirty),
            "python_version": system.python_version,
            "environment_digest": environment[0] if environment else None,
        }
        with self._db.transaction() as conn:
            if parent_run_id is not None:
                repo.run_row(conn, parent_run_id, self.platform.project)
            repo.insert_run(conn, values)
            repo.upsert_tags(conn, run_id, tag_values)
            if environment is not None:
                # The package list is also an artifact, so both modes can read it back.
                digest, size = environment
                repo.insert_artifact(
                    conn,
                    {
                        "run_id": run_id,
                        "path": ENVIRONMENT_ARTIFACT,
                        "digest": digest,
                        "size": size,
                        "created_at": values["start_time"],
                    },
                )
        self._remember_visible((self.platform.project, run_id))  # created here: the next write need not look
        return repo.run_from_values(values, tags=tag_values)

    def get_run(self, run_id: str) -> Run:
        """Return a run with its params, tags and latest metrics.

        Raises:
            NotFound: If there is no such run.
        """
        with self._db.read() as conn:
            return repo.load_runs(conn, [repo.run_row(conn, run_id, self.platform.project)])[0]

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        metrics: Sequence[MetricSeries] = (),
    ) -> None:
        """Write the run's last metric points and end it with a terminal status, in one transaction.

        Nothing is read back (``get_run`` does that): ending is on the path of every run.

        Raises:
            InvalidInput: If ``status`` is RUNNING.
            Conflict: If the run has already ended.
        """
        status = RunStatus(status)
        if not status.is_terminal:
            raise InvalidInput("a run ends as FINISHED, FAILED or KILLED", {"field": "status"})
        checked = self._checked_series(metrics)
        with self._db.transaction() as conn:
            self.check_visible(conn, run_id)
            change = {"status": status.value, "end_time": now_ms(), "error": (error or None)}
            repo.end_writable_run(conn, run_id, self.platform.project, change)
            repo.insert_metric_series(conn, run_id, checked)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Record parameters.

        Raises:
            InvalidInput: For a bad key or value.
            Conflict: If a key was logged with a different value, or the run has ended.
        """
        values = {key: param_text(key, value) for key, value in params.items()}
        with self._db.transaction() as conn:
            self.check_visible(conn, run_id)
            repo.insert_params(conn, run_id, self.platform.project, values)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags (allowed on ended runs too, to annotate them afterwards).

        Raises:
            NotFound: If there is no such run.
        """
        values = {key: tag_text(key, value) for key, value in tags.items()}
        with self._db.transaction() as conn:
            repo.run_row(conn, run_id, self.platform.project)
            repo.upsert_tags(conn, run_id, values)

    def log_metrics(self, run_id: str, series: Sequence[MetricSeries]) -> int:
        """Append metric points, all in one transaction.

        Raises:
            InvalidInput: For a bad key, a non-finite value or a non-integer step.
            Conflict: If the run has ended.
        """
        checked = self._checked_series(series)
        with self._db.transaction() as conn:
            repo.writable_run(conn, run_id, self.platform.project, "metrics")
            return repo.insert_metric_series(conn, run_id, checked)

    @staticmethod
    def _checked_series(series: Sequence[MetricSeries]) -> list[MetricSeries]:
        checked = []
        for item in series:
            if item.checked:
                checked.append(item)
                continue
            steps, values, stamps = check_metric_arrays(item.key, item.values, item.steps, item.timestamps)
            checked.append(MetricSeries(item.key, steps, values, stamps))
        return checked

    def get_metric_history(self, run_id: str, key: str) -> MetricSeries:
        """Return every point of a metric, ordered by step then time.

        Raises:
            NotFound: If the run does not exist or never logged ``key``.
        """
        validate_key(key, "metrics")
        with self._db.read() as conn:
            repo.run_row(conn, run_id, self.platform.project)
            history = repo.metric_history(conn, run_id, key)
        if history is None:
            raise NotFound(f"run {run_id} has no metric {key!r}", {"field": f"metrics.{key}"})
        return history

    # -- artifacts ---------------------------------------------------------------------------------

    def _record_artifact(self, run_id: str, artifact_path: str, digest: str, size: int) -> Artifact:
        values: dict[str, Any] = {
            "run_id": run_id,
            "path": artifact_path,
            "digest": digest,
            "size": size,
            "created_at": now_ms(),
        }
        with self._db.transaction() as conn:
            repo.writable_run(conn, run_id, self.platform.project, "artifacts")
            repo.upsert_artifact(conn, values)
        created = from_ms(values["created_at"])
        assert created is not None
        return Artifact(artifact_path, digest, size, created)

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> Artifact:
        """Store a local file as an artifact of the run.

        Raises:
            InvalidInput: If the file does not exist or the path is bad.
            Conflict: If the run has ended.
        """
        artifact_path = check_artifact_path(artifact_path)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise InvalidInput(f"no such file: {local_path}", {"field": "local_path"})
        with self._db.read() as conn:
            repo.writable_run(conn, run_id, self.platform.project, "artifacts")
        ref = self.platform.blobs.put_file(local_path)
        return self._record_artifact(run_id, artifact_path, ref.digest, ref.size)

    def log_artifact_bytes(self, run_id: str, data: bytes, artifact_path: str) -> Artifact:
        """Store bytes as an artifact of the run."""
        artifact_path = check_artifact_path(artifact_path)
        with self._db.read() as conn:
            repo.writable_run(conn, run_id, self.platform.project, "artifacts")
        ref = self.platform.blobs.put_bytes(data)
        return self._record_artifact(run_id, artifact_path, ref.digest, ref.size)

    def log_artifact_stream(self, run_id: str, stream: Any, artifact_path: str) -> Artifact:
        """Store a binary stream (hashed while read) as an artifact of the run."""
        artifact_path = check_artifact_path(artifact_path)
        with self._db.read() as conn:
            repo.writable_run(conn, run_id, self.platform.project, "artifacts")
        ref = self.platform.blobs.put_stream(stream)
        return self._record_artifact(run_id, artifact_path, ref.digest, ref.size)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Return the run's artifacts sorted by path."""
        with self._db.read() as conn:
            repo.run_row(conn, run_id, self.platform.project)
            return repo.list_artifacts(conn, run_id)

    def get_artifact(self, run_id: str, artifact_path: str) -> Artifact:
        """Return the record of one artifact.

        Raises:
            NotFound: If the run has no artifact at that path.
        """
        artifact_path = check_artifact_path(artifact_path)
        for artifact in self.list_artifacts(run_id):
            if artifact.path == artifact_path:
                return artifact
        raise NotFound(f"run {run_id} has no artifact {artifact_path!r}", {"field": "artifact_path"})

    def open_artifact(self, run_id: str, artifact_path: str) -> tuple[Artifact, Iterator[bytes]]:
        """Return an artifact's record and its bytes as chunks, checked against the digest as they stream.

        Raises:
            NotFound: If there is no such artifact (the chunks raise it too if the blob is gone).
            IntegrityError: From the chunks, after the last one, if the bytes do not match.
        """
        artifact = self.get_artifact(run_id, artifact_path)
        return artifact, self.platform.blobs.iter_chunks(artifact.digest)

    def download_artifact(self, run_id: str, artifact_path: str, dest: Path) -> Path:
        """Write an artifact's verified bytes to ``dest``.

        Raises:
            NotFound: If there is no such artifact.
            IntegrityError: If the stored bytes no longer match their digest.
        """
        artifact = self.get_artifact(run_id, artifact_path)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.platform.blobs.download(artifact.digest, dest)
        return dest

    # -- search and lifecycle ----------------------------------------------------------------------

    def search_runs(
        self,
        experiments: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Return runs of the named experiments that match ``filter``, sorted by ``order_by``.

        Raises:
            NotFound: If an experiment does not exist.
            InvalidInput: For a malformed filter or order, or ``max_results`` out of 1..50,000.
        """
        where, order = _search_terms(filter, order_by, max_results)
        with self._db.read() as conn:
            ids = self._experiment_ids(conn, experiments)
            return repo.search_runs(conn, ids, where, order, max_results, include_deleted)

    def search_run_columns(
        self,
        experiments: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        include_deleted: bool = False,
    ) -> dict[str, list[Any]]:
        """``search_runs`` laid out by column (``repository.search_run_columns``: times in epoch ms), the
        shape ``steward.search_runs`` turns into a DataFrame.

        Raises:
            NotFound: If an experiment does not exist.
            InvalidInput: For a malformed filter or order, or ``max_results`` out of 1..50,000.
        """
        where, order = _search_terms(filter, order_by, max_results)
        with self._db.read() as conn:
            ids = self._experiment_ids(conn, experiments)
            return repo.search_run_columns(conn, ids, where, order, max_results, include_deleted)

    def _experiment_ids(self, conn: Any, experiments: Sequence[str]) -> list[str]:
        ids = []
        for name in [experiments] if isinstance(experiments, str) else experiments:
            found = repo.find_experiment(conn, self.platform.project, name)
            if found is None:
                raise NotFound(f"experiment {name!r} not found", {"field": "experiment"})
            ids.append(found.id)
        return ids

    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run: it leaves search results but keeps its data until restored.

        Raises:
            NotFound: If there is no such run.
            Conflict: If it is already deleted.
        """
        with self._db.transaction() as conn:
            row = repo.run_row(conn, run_id, self.platform.project)
            if row.deleted_at is not None:
                raise Conflict(f"run {run_id} is already deleted", {"field": "run_id"})
            repo.update_run(conn, run_id, {"deleted_at": now_ms()})
            self._record(conn, "run.delete", "run", run_id)

    def restore_run(self, run_id: str) -> None:
        """Undo ``delete_run``.

        Raises:
            NotFound: If there is no such run.
            Conflict: If it is not deleted.
        """
        with self._db.transaction() as conn:
            row = repo.run_row(conn, run_id, self.platform.project)
            if row.deleted_at is None:
                raise Conflict(f"run {run_id} is not deleted", {"field": "run_id"})
            repo.update_run(conn, run_id, {"deleted_at": None})
            self._record(conn, "run.restore", "run", run_id)


def _search_terms(filter: str, order_by: Sequence[str], max_results: int) -> tuple[Any, Any]:
    """The parsed filter and order of a search, once ``max_results`` is checked."""
    if (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not (0 < max_results <= MAX_SEARCH_RESULTS)
    ):
        raise InvalidInput(f"max_results must be 1..{MAX_SEARCH_RESULTS}", {"field": "max_results"})
    return parse_filter(filter), parse_order_by(list(order_by))
