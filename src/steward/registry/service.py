"""``RegistryService``: the embedded model registry, straight on the metadata and blob stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.core.ids import new_id
from steward.core.names import validate_key, validate_name
from steward.core.semver import next_version, parse_version, sort_key
from steward.core.time import from_ms, now_ms
from steward.data import repository as data_repo
from steward.data.residency import check_write, residency_of
from steward.errors import Conflict, InvalidInput, NotFound, ResidencyViolation
from steward.governance import audit
from steward.registry import repository as repo
from steward.registry import signatures
from steward.registry.cards import check_card_fields, render_card
from steward.registry.manifest import (
    check_files,
    check_flavor,
    format_manifest,
    lineage_edges,
    manifest_bytes,
    version_manifest,
)
from steward.registry.models import (
    MANIFEST_NAME,
    PRIMARY_FORMAT,
    AliasEvent,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    VersionSpec,
    VersionStatus,
    parse_reference,
)
from steward.registry.promotion import refuse_if_protected
from steward.store.platform import Platform
from steward.tracking.service import TrackingService

RESERVED_ALIASES = frozenset({"latest"})
_MAX_ATTEMPTS = 8


class RegistryService:
    """Registered models, their semantic versions, aliases, lineage and cards (embedded mode).

    Args:
        platform: The settings, metadata store and blob store to use.
        tracking: The tracking service to read producing runs from (one is made if omitted).
    """

    def __init__(self, platform: Platform, tracking: TrackingService | None = None) -> None:
        self.platform = platform
        self._db = platform.metadata
        self._tracking = tracking or TrackingService(platform)
        # Models are never renamed or removed, so a found id can be remembered by project and name.
        self._model_ids: dict[tuple[str, str], str] = {}

    # -- models ------------------------------------------------------------------------------------

    def _model_id(self, name: str) -> str:
        key = (self.platform.project, name)
        known = self._model_ids.get(key)
        if known is not None:
            return known
        validate_name(name, "model")
        with self._db.read() as conn:
            row = repo.find_model(conn, key[0], name)
        if row is None:
            raise NotFound(f"model {name!r} not found", {"field": "model"})
        self._model_ids[key] = row.id
        return str(row.id)

    def get_model(self, name: str) -> RegisteredModel:
        """Return a registered model with its highest version and aliases.

        Raises:
            NotFound: If there is no model called ``name``.
        """
        model_id = self._model_id(name)
        with self._db.read() as conn:
            row = repo.find_model(conn, self.platform.project, name)
            numbers = repo.versions_by_model(conn, [model_id])[model_id]
            aliases = repo.aliases_by_model(conn, [model_id])[model_id]
        assert row is not None
        latest = max(numbers, key=sort_key) if numbers else None
        return repo.to_model(row, latest, len(numbers), aliases)

    def list_models(self) -> list[RegisteredModel]:
        """Return every registered model, by name."""
        with self._db.read() as conn:
            rows = repo.list_model_rows(conn, self.platform.project)
            ids = [r.id for r in rows]
            numbers = repo.versions_by_model(conn, ids)
            aliases = repo.aliases_by_model(conn, ids)
        result = []
        for row in rows:
            found = numbers.get(row.id, [])
            latest = max(found, key=sort_key) if found else None
            result.append(repo.to_model(row, latest, len(found), aliases.get(row.id, {})))
        return result

    # -- registering -------------------------------------------------------------------------------

    def check_residency(self, datasets: Iterable[str]) -> None:
        """Refuse to store a model trained on these dataset versions where their data may not reside.

        Ids that are not Steward dataset versions carry no region rules and pass.

        Raises:
            ResidencyViolation: The artifact store is outside a dataset's allowed regions.
        """
        ids = sorted({d for d in datasets if isinstance(d, str)})
        if not ids:
            return
        with self._db.read() as conn:
            rows = data_repo.datasets_of_versions(conn, self.platform.project, ids)
        store = self.platform.settings.store_region
        for row in rows:
            listed = json.loads(row.allowed_regions) if row.allowed_regions else None
            rules = residency_of(row.name, row.region, listed, self.platform.settings)
            try:
                check_write(rules, store, "a model trained on a version")
            except ResidencyViolation as exc:
                with self._db.transaction() as conn:
                    audit.append(
                        conn, actor=self.platform.actor, action="model.write", resource_kind="dataset",
                        resource_id=row.name, outcome="denied", details={**exc.details, "versions": ids},
                        checkpoint=audit.checkpointer_for(self.platform.settings),
                        project=self.platform.project, request_id=self.platform.request_id,
                    )  # fmt: skip
                raise

    def upload_file(self, model: str, local_path: Path, path: str, datasets: Sequence[str] = ()) -> ModelFile:
        """Store one bundle file in the blob store (content-addressed; storing it twice is free).

        Args:
            model: The model it belongs to.
            local_path: The file.
            path: Its path inside the bundle.
            datasets: The dataset version ids the model was trained on: the file is refused before it
                is stored if their data may not reside in the artifact store's region.

        Raises:
            InvalidInput: For a bad model name or file path.
            ResidencyViolation: See ``check_residency``.
        """
        validate_name(model, "model")
        check_files([ModelFile(path, "", 0)])
        self.check_residency(datasets)
        ref = self.platform.blobs.put_file(local_path)
        return ModelFile(path, ref.digest, ref.size)

    def _check_spec(self, spec: VersionSpec) -> list[ModelFile]:
        check_flavor(spec.flavor)
        files = check_files(spec.files)
        for f in files:
            try:
                stored = self.platform.blobs.size(f.digest)
            except (NotFound, InvalidInput):
                raise InvalidInput(
                    f"bundle file {f.path!r} was not uploaded (blob {f.digest} is missing)",
                    {"field": "files", "path": f.path},
                ) from None
            if stored != f.size:
                raise InvalidInput(
                    f"bundle file {f.path!r} is {stored} bytes in the store, not {f.size}",
                    {"field": "files", "path": f.path},
                )
        for role, dataset in spec.datasets.items():
            validate_key(role, "datasets")
            if not isinstance(dataset, str) or not 0 < len(dataset) <= 128:
                raise InvalidInput(f"invalid dataset version id for {role!r}", {"field": "datasets"})
        for key, value in spec.metrics.items():
            validate_key(key, "metrics")
            if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
                raise InvalidInput(f"metric {key!r} must be a finite number", {"field": "metrics"})
        if spec.version is not None:
            parse_version(spec.version)
        return files

    def _run_facts(self, run_id: str | None) -> tuple[dict[str, Any] | None, dict[str, float]]:
        if run_id is None:
            return None, {}
        run = self._tracking.get_run(run_id)
        facts = {
            "id": run.id,
            "name": run.name,
            "experiment_id": run.experiment_id,
            "git_commit": run.git_commit,
            "git_dirty": run.git_dirty,
        }
        return facts, dict(run.metrics)

    def create_version(self, model: str, spec: VersionSpec) -> ModelVersion:
        """Register a version of ``model`` (creating the model if new) from already uploaded files.

        The version number is ``spec.version`` if given; otherwise ``1.0.0`` for the first, a minor bump
        of the highest for a retrain, and a major bump when the input signature differs from the highest
        version's. Nothing is written unless everything is: no half version, no orphan alias.

        Raises:
            InvalidInput: For a bad name, SemVer, file list, dataset or metric.
            NotFound: If ``spec.run_id`` names no run.
            Conflict: If the explicit version already exists.
            ResidencyViolation: The store is outside the allowed regions of a dataset it was trained on.
        """
        validate_name(model, "model")
        files = self._check_spec(spec)
        self.check_residency(spec.datasets.values())
        run, run_metrics = self._run_facts(spec.run_id)
        inputs = json.dumps(spec.signature.inputs.to_dict(), sort_keys=True) if spec.signature else None
        for _attempt in range(_MAX_ATTEMPTS):
            with self._db.read() as conn:
                row = repo.find_model(conn, self.platform.project, model)
                existing = repo.version_numbers(conn, row.id) if row is not None else []
            numbers = [v for v, _ in existing]
            if spec.version is not None:
                version = str(parse_version(spec.version))
                if version in numbers:
                    raise Conflict(f"model {model!r} already has version {version}", {"field": "version"})
            else:
                # Compare with the highest version that recorded inputs: one registered without a
                # signature says nothing about what callers send.
                signed = [e for e in existing if e[1] is not None]
                top = max(signed, key=lambda e: sort_key(e[0])) if signed else None
                breaking = top is not None and inputs is not None and top[1] != inputs
                version = next_version(numbers, breaking)
            created = self._insert_version(
                model, row.id if row else None, len(existing), version, spec, files, run, run_metrics
            )
            if created is not None:
                return created
        raise Conflict(f"could not register a version of {model!r}: too many concurrent registrations")

    def _insert_version(
        self,
        model: str,
        model_id: str | None,
        seen: int,
        version: str,
        spec: VersionSpec,
        files: list[ModelFile],
        run: dict[str, Any] | None,
        run_metrics: Mapping[str, float],
    ) -> ModelVersion | None:
        inputs = json.dumps(spec.signature.inputs.to_dict(), sort_keys=True) if spec.signature else None
        now, actor = now_ms(), self.platform.actor
        manifest = version_manifest(model, version, spec, files, run, run_metrics, now, actor)
        ref = self.platform.blobs.put_bytes(manifest_bytes(manifest))
        version_id = new_id()
        edges = lineage_edges(version_id, spec, now)
        # Signed before the transaction, stored in the same insert: no version is ever visible unsigned.
        key_id, signature = signatures.sign_version(
            self.platform.settings, signatures.VersionFacts(version_id, model, version, ref.digest)
        )
        values = {
            "id": version_id,
            "version": version,
            "status": VersionStatus.READY.value,
            "flavor": spec.flavor,
            "run_id": spec.run_id,
            "description": spec.description,
            "input_schema": inputs,
            "manifest_digest": ref.digest,
            "manifest": json.dumps(manifest),
            "created_at": now,
            "created_by": actor,
            "signature": signature,
            "signing_key_id": key_id,
        }
        try:
            with self._db.transaction() as conn:
                if model_id is None:
                    model_id = new_id()
                    repo.insert_model(
                        conn,
                        {
                            "id": model_id,
                            "project": self.platform.project,
                            "name": model,
                            "description": spec.description,
                            "created_at": now,
                            "created_by": actor,
                        },
                    )
                else:
                    repo.lock_model(conn, model_id)
                    # Another writer may have registered since the numbers were read: choose again.
                    if repo.count_versions(conn, model_id) != seen:
                        return None
                repo.insert_version(conn, {**values, "model_id": model_id}, edges)
                audit.append(
                    conn, actor=actor, action="model.register", resource_kind="model_version",
                    resource_id=f"{model}/{version}", after_digest=ref.digest,
                    details={"flavor": spec.flavor, "run_id": spec.run_id, "datasets": dict(spec.datasets)},
                    checkpoint=audit.checkpointer_for(self.platform.settings), project=self.platform.project,
                    request_id=self.platform.request_id,
                )  # fmt: skip
        except SQLIntegrityError:
            return None
        self._model_ids[(self.platform.project, model)] = model_id
        return self.get_version(model, version)

    def add_format(
        self,
        model: str,
        version: str,
        name: str,
        flavor: str,
        options: Mapping[str, Any],
        files: Sequence[ModelFile],
    ) -> ModelVersion:
        """Attach a further format (``onnx`` …) to a version, as its own verified bundle.

        A signed version is signed again over all its formats (``signatures.resign_for_format``).

        Raises:
            NotFound: If the model or version does not exist.
            Conflict: If the version already has a format called ``name``.
            IntegrityError: If the version's signature does not verify (nothing is added).
        """
        validate_name(name, "format")
        if name == PRIMARY_FORMAT:
            raise InvalidInput(f"format name {name!r} is the primary bundle's", {"field": "format"})
        checked = self._check_spec(VersionSpec(flavor=flavor, files=files))
        target = self.get_version(model, version)
        if name in target.formats:
            raise Conflict(f"{target.uri} already has a {name!r} format", {"field": "format"})
        now = now_ms()
        manifest = format_manifest(target.manifest, name, flavor, options, checked, now, self.platform.actor)
        ref = self.platform.blobs.put_bytes(manifest_bytes(manifest))
        values = {
            "version_id": target.id,
            "name": name,
            "flavor": flavor,
            "manifest_digest": ref.digest,
            "manifest": json.dumps(manifest),
            "created_at": now,
        }
        try:
            with self._db.transaction() as conn:
                repo.insert_format(conn, values)
                # model_formats has no signature column: the version's signature covers every format.
                signatures.resign_for_format(conn, self.platform.settings, target, name)
        except SQLIntegrityError:
            raise Conflict(f"{target.uri} already has a {name!r} format", {"field": "format"}) from None
        return self.get_version(model, version)

    # -- reading -----------------------------------------------------------------------------------

    def _complete(self, conn: Any, rows: Sequence[Any], model: str) -> list[ModelVersion]:
        ids = [r.id for r in rows]
        aliases = repo.aliases_by_version(conn, ids)
        formats = repo.formats_by_version(conn, ids)
        return [repo.to_version(r, model, aliases.get(r.id, ()), formats.get(r.id)) for r in rows]

    def get_version(self, model: str, version: str) -> ModelVersion:
        """Return one version.

        Raises:
            NotFound: If the model or the version does not exist.
            InvalidInput: If ``version`` is not a SemVer.
        """
        model_id = self._model_id(model)
        number = str(parse_version(version))
        with self._db.read() as conn:
            row = repo.version_row(conn, model_id, number)
            if row is None:
                raise NotFound(f"model {model!r} has no version {version}", {"field": "version"})
            return self._complete(conn, [row], model)[0]

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Return a model's versions, lowest first by SemVer precedence.

        Raises:
            NotFound: If there is no such model.
        """
        model_id = self._model_id(model)
        with self._db.read() as conn:
            rows = sorted(repo.version_rows(conn, model_id), key=lambda r: sort_key(r.version))
            return self._complete(conn, rows, model)

    def resolve(self, reference: str) -> ModelVersion:
        """Resolve ``models:/name/1.2.0``, ``models:/name@alias`` or ``models:/name``.

        ``models:/name`` and ``models:/name@latest`` mean the highest READY version.

        Raises:
            InvalidInput: For a malformed reference.
            NotFound: If the model, version or alias does not exist.
        """
        name, version, alias = parse_reference(reference)
        if version is not None:
            return self.get_version(name, version)
        if alias is None or alias == "latest":
            ready = [v for v in self.list_versions(name) if v.status is VersionStatus.READY]
            if not ready:
                raise NotFound(f"model {name!r} has no READY version", {"field": "version"})
            return ready[-1]
        model_id = self._model_id(name)
        with self._db.read() as conn:
            row = repo.alias_target(conn, model_id, alias)
            if row is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}", {"field": "alias"})
            return self._complete(conn, [row], name)[0]

    def read_file(self, model: str, version: str, path: str, fmt: str = PRIMARY_FORMAT) -> bytes:
        """Return the verified bytes of one file of a version's bundle, or its ``steward-model.yaml``.

        Raises:
            NotFound: If the version, format or file does not exist.
            IntegrityError: If the stored bytes do not match their digest.
        """
        target = self.get_version(model, version)
        manifest, digest = target.manifest, target.manifest_digest
        if fmt != PRIMARY_FORMAT:
            if fmt not in target.formats:
                raise NotFound(f"{target.uri} has no {fmt!r} format", {"field": "format"})
            manifest = target.formats[fmt]
            digest = self._format_digest(target.id, fmt)
        if path == MANIFEST_NAME:
            return self.platform.blobs.get_bytes(digest)
        for f in manifest.get("files", ()):
            if f["path"] == path:
                return self.platform.blobs.get_bytes(f["digest"])
        raise NotFound(f"{target.uri} has no file {path!r}", {"field": "path"})

    def _format_digest(self, version_id: str, fmt: str) -> str:
        with self._db.read() as conn:
            row = repo.format_row(conn, version_id, fmt)
        if row is None:
            raise NotFound(f"no {fmt!r} format", {"field": "format"})
        return str(row.manifest_digest)

    # -- aliases and status ------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: str, reason: str = "") -> ModelVersion:
        """Point ``alias`` at ``version``, atomically, recording who moved it, when and why.

        An alias that a policy protects (``production`` under a production gate) is not moved here by any
        role: promote through the gate instead (``steward.registry.promotion.promote``, ``steward models
        promote``), which checks the policies and may wait for approvals.

        Raises:
            InvalidInput: For a bad or reserved alias name.
            NotFound: If the model or version does not exist.
            Conflict: If the version is archived.
            PolicyViolation: If a policy in force protects the alias (the refusal is audited).
        """
        validate_name(alias, "alias")
        self._model_id(model)
        refuse_if_protected(self, model, alias, "move")
        return self._move_alias(model, alias, version, reason)

    def _move_alias(
        self,
        model: str,
        alias: str,
        version: str,
        reason: str = "",
        *,
        details: Mapping[str, Any] | None = None,
        before: Callable[[Any, str | None], None] | None = None,
    ) -> ModelVersion:
        """Move an alias with no policy check: ``set_alias`` once it knows the alias is unprotected, and
        ``promotion`` once the gate has passed. Audited as ``model.alias_set`` in the move's transaction.

        Args:
            details: More facts for the audit entry (the policies that passed, the approval request).
            before: Called under the model's lock with the connection and the version the alias points at
                now (None if none), before the move; it may write in the same transaction, or raise to
                abort the move.
        """
        validate_name(alias, "alias")
        if alias in RESERVED_ALIASES:
            raise InvalidInput(f"alias {alias!r} is reserved (it always means the highest READY version)")
        target = self.get_version(model, version)
        if target.status is VersionStatus.ARCHIVED:
            raise Conflict(f"{target.uri} is archived and cannot take an alias", {"field": "version"})
        model_id = self._model_id(model)
        now, actor = now_ms(), self.platform.actor
        with self._db.transaction() as conn:
            repo.lock_model(conn, model_id)
            current = repo.alias_target(conn, model_id, alias)
            # Archiving and alias moves both write here, so re-check the status inside the transaction.
            row = repo.version_row(conn, model_id, target.version)
            if row is None or row.status != VersionStatus.READY.value:
                raise Conflict(f"{target.uri} is archived and cannot take an alias", {"field": "version"})
            previous = current.version if current is not None else None
            if before is not None:
                before(conn, previous)
            repo.upsert_alias(
                conn,
                {
                    "model_id": model_id,
                    "alias": alias,
                    "version_id": target.id,
                    "updated_at": now,
                    "updated_by": actor,
                },
            )
            repo.insert_alias_event(
                conn,
                {
                    "model_id": model_id,
                    "alias": alias,
                    "from_version": previous,
                    "to_version": target.version,
                    "actor": actor,
                    "at": now,
                    "reason": reason,
                },
            )
            audit.append(
                conn, actor=actor, action="model.alias_set", resource_kind="model_alias",
                resource_id=f"{model}@{alias}", request_id=self.platform.request_id,
                details={"model": model, "alias": alias, "from": previous, "to": target.version,
                         "reason": reason, **(details or {})},
                checkpoint=audit.checkpointer_for(self.platform.settings), project=self.platform.project,
            )  # fmt: skip
        return self.get_version(model, target.version)

    def delete_alias(self, model: str, alias: str, reason: str = "") -> None:
        """Remove an alias, recording it (audited as ``model.alias_deleted``).

        Raises:
            NotFound: If the model has no such alias.
            PolicyViolation: If a policy in force protects the alias: it is never removed directly
                (promote another version, or retire the policy). The refusal is audited.
        """
        model_id = self._model_id(model)
        refuse_if_protected(self, model, alias, "delete")
        now, actor = now_ms(), self.platform.actor
        with self._db.transaction() as conn:
            repo.lock_model(conn, model_id)
            current = repo.alias_target(conn, model_id, alias)
            if current is None:
                raise NotFound(f"model {model!r} has no alias {alias!r}", {"field": "alias"})
            repo.delete_alias(conn, model_id, alias)
            repo.insert_alias_event(
                conn,
                {
                    "model_id": model_id,
                    "alias": alias,
                    "from_version": current.version,
                    "to_version": None,
                    "actor": actor,
                    "at": now,
                    "reason": reason,
                },
            )
            audit.append(
                conn, actor=actor, action="model.alias_deleted", resource_kind="model_alias",
                resource_id=f"{model}@{alias}", request_id=self.platform.request_id,
                details={"model": model, "alias": alias, "from": current.version, "reason": reason},
                checkpoint=audit.checkpointer_for(self.platform.settings), project=self.platform.project,
            )  # fmt: skip

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Return every recorded move of the model's aliases (or of one alias), oldest first."""
        model_id = self._model_id(model)
        with self._db.read() as conn:
            return repo.alias_events_of(conn, model_id, model, alias)

    def archive_version(self, model: str, version: str, reason: str = "") -> ModelVersion:
        """Archive a version, recording when and why: it stays loadable but takes no alias.

        Archiving an archived version changes nothing.

        Raises:
            Conflict: While an alias points at it (move the alias first).
        """
        target = self.get_version(model, version)
        if target.status is VersionStatus.ARCHIVED:
            return target
        model_id = self._model_id(model)
        with self._db.transaction() as conn:
            # The same lock as set_alias: an alias cannot land on the version while it is archived.
            repo.lock_model(conn, model_id)
            held = repo.aliases_by_version(conn, [target.id]).get(target.id, ())
            if held:
                raise Conflict(
                    f"{target.uri} is held by alias(es) {', '.join(held)}: move them first",
                    {"field": "version", "aliases": list(held)},
                )
            repo.set_version_status(conn, target.id, VersionStatus.ARCHIVED, now_ms(), reason)
            self._record(conn, "model.archive", f"{model}/{target.version}", {"reason": reason})
        return self.get_version(model, target.version)

    def restore_version(self, model: str, version: str) -> ModelVersion:
        """Make an archived version READY again (restoring a READY version changes nothing)."""
        target = self.get_version(model, version)
        if target.status is VersionStatus.READY:
            return target
        with self._db.transaction() as conn:
            repo.lock_model(conn, self._model_id(model))
            repo.set_version_status(conn, target.id, VersionStatus.READY, None)
            self._record(conn, "model.restore", f"{model}/{target.version}", {})
        return self.get_version(model, target.version)

    # -- lineage and cards -------------------------------------------------------------------------

    def model_lineage(self, model: str, version: str) -> dict[str, Any]:
        """The chain behind a version: the producing run (params, metrics, code commit) and datasets."""
        target = self.get_version(model, version)
        run: dict[str, Any] | None = None
        if target.run_id is not None:
            found = self._tracking.get_run(target.run_id)
            experiment = self._tracking.get_experiment(found.experiment_id)
            run = {
                "id": found.id,
                "name": found.name,
                "experiment": experiment.name,
                "status": found.status.value,
                "start_time": found.start_time.isoformat(),
                "user": found.user,
                "entry_point": found.entry_point,
                "git_commit": found.git_commit,
                "git_dirty": found.git_dirty,
                "params": dict(found.params),
                "metrics": dict(found.metrics),
            }
        return {
            "model": model,
            "version": target.version,
            "status": target.status.value,
            "flavor": target.flavor,
            "manifest_digest": target.manifest_digest,
            "created_at": target.created_at.isoformat(),
            "created_by": target.created_by,
            "aliases": list(target.aliases),
            "run": run,
            "datasets": [self._dataset_facts(r, d) for r, d in sorted(target.datasets.items())],
        }

    def _dataset_facts(self, role: str, version_id: str) -> dict[str, Any]:
        """A training dataset: its id and role, and, for a Steward dataset version, its ref and the chain
        of versions it derives from back to its source."""
        with self._db.read() as conn:
            chain = data_repo.version_ancestry(conn, self.platform.project, version_id)
        facts: dict[str, Any] = {"role": role, "id": version_id}
        if chain:
            facts["ref"] = f"{chain[0].dataset_name}@{chain[0].number}"
            facts["chain"] = [
                {
                    "id": row.id,
                    "ref": f"{row.dataset_name}@{row.number}",
                    "content_digest": row.content_digest,
                    "source": json.loads(row.source),
                }
                for row in chain
            ]
        return facts

    def dataset_lineage(self, dataset_version_id: str) -> list[dict[str, Any]]:
        """Every model version trained on a dataset version or on a version derived from it (a protected
        copy …): what an erasure request for that data must retrain. ``via`` names the derived version a
        model was trained on, when it is not the version asked about."""
        with self._db.read() as conn:
            derived = data_repo.descendants(conn, self.platform.project, dataset_version_id)
            refs = {r.id: f"{r.dataset_name}@{r.number}" for r in derived}
            rows = [
                (v, r)
                for v in [dataset_version_id, *refs]
                for r in repo.models_trained_on(conn, self.platform.project, v)
            ]
            aliases = repo.aliases_by_version(conn, [r.id for _, r in rows])
        return [
            {
                "model": r.model_name,
                "version": r.version,
                "status": r.status,
                "role": r.role,
                "aliases": list(aliases.get(r.id, ())),
                "run_id": r.run_id,
                "created_at": from_ms(r.created_at).isoformat(),
                **({"via": {"id": v, "ref": refs[v]}} if v != dataset_version_id else {}),
            }
            for v, r in rows
        ]

    def save_card(self, model: str, version: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """Render the version's model card from recorded facts plus ``fields`` and store it with the version.

        Args:
            fields: User-written sections (``intended_use``, ``limitations`` …, see ``cards.CARD_FIELDS``);
                sections not given keep their previously saved text.

        Returns:
            ``{"fields": …, "markdown_digest": …, "html_digest": …}``.
        """
        checked = check_card_fields(fields)
        target = self.get_version(model, version)
        lineage = self.model_lineage(model, target.version)
        model_id = self._model_id(model)
        with self._db.transaction() as conn:
            # Under the model's lock, so two saves of different sections both survive.
            repo.lock_model(conn, model_id)
            row = repo.card_row(conn, target.id)
            merged = {**(json.loads(row.fields) if row is not None else {}), **checked}
            markdown, html = render_card(target, lineage, merged)
            md_ref = self.platform.blobs.put_bytes(markdown.encode())
            html_ref = self.platform.blobs.put_bytes(html.encode())
            repo.upsert_card(
                conn,
                {
                    "version_id": target.id,
                    "fields": json.dumps(merged),
                    "markdown_digest": md_ref.digest,
                    "html_digest": html_ref.digest,
                    "updated_at": now_ms(),
                    "updated_by": self.platform.actor,
                },
            )
            self._record(
                conn, "model.card", f"{model}/{target.version}", {"sections": sorted(checked)},
                before=row.markdown_digest if row is not None else None, after=md_ref.digest,
            )  # fmt: skip
        return {"fields": merged, "markdown_digest": md_ref.digest, "html_digest": html_ref.digest}

    def _record(
        self,
        conn: Any,
        action: str,
        version_ref: str,
        details: Mapping[str, Any],
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        """Audit a change to the model version ``version_ref`` (``model/version``) inside ``conn``'s
        transaction."""
        audit.append(
            conn, actor=self.platform.actor, action=action, resource_kind="model_version",
            resource_id=version_ref, details=details, before_digest=before, after_digest=after,
            checkpoint=audit.checkpointer_for(self.platform.settings), project=self.platform.project,
            request_id=self.platform.request_id,
        )  # fmt: skip

    def _card_fields(self, version_id: str) -> dict[str, str]:
        with self._db.read() as conn:
            row = repo.card_row(conn, version_id)
        return dict(json.loads(row.fields)) if row is not None else {}

    def get_card(self, model: str, version: str, fmt: str = "md") -> str:
        """Return the version's card as ``md`` or ``html``: the saved sections with today's facts.

        The facts (status, aliases, lineage) are rendered as they are now, so a card never shows a stale
        alias; ``save_card`` keeps a snapshot of each saved rendering in the blob store.

        Raises:
            InvalidInput: For another format.
        """
        if fmt not in ("md", "html"):
            raise InvalidInput(f"unknown card format {fmt!r}: use md or html", {"field": "format"})
        target = self.get_version(model, version)
        markdown, html = render_card(
            target, self.model_lineage(model, target.version), self._card_fields(target.id)
        )
        return markdown if fmt == "md" else html

    # -- signatures --------------------------------------------------------------------------------

    def verify_version(self, model: str, version: str) -> signatures.VerificationReport:
        """Check a version's signature and re-hash every file it records (see ``signatures.verify_version``).

        Returns:
            The report: one ``Check`` per line, ``ok`` if all passed (a failed check is not an error).

        Raises:
            NotFound: If the model or version does not exist.
        """
        return signatures.verify_version(self, model, version)

    def sign_version(self, model: str, version: str) -> signatures.VerificationReport:
        """Sign a version registered before signing, after checking every digest (``keys:admin`` only).

        A version already signed by the platform key is left as it is; see ``signatures.sign_unsigned``.

        Raises:
            Forbidden: Without ``keys:admin``.
            IntegrityError: A digest check fails, or the platform key's signature does not verify.
        """
        return signatures.sign_unsigned(self, model, version)
