"""``FeatureStore``: the feature store's operations in embedded mode (the one entry point for the API,
the CLI, the SDK and other domains).

Definitions are versioned in the metadata database; training sets are point-in-time joins in DuckDB
over the source datasets' Parquet (``offline``); the latest values per entity live in the online store
(``online``: SQLite embedded, Redis for teams), written by ``materialize``, ``push`` and stream
consumers. Every change is audited; reads of PII-tagged features go through the data layer's checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from steward.core.time import as_utc, now_ms
from steward.errors import InvalidInput, NotFound
from steward.features import repository as repo
from steward.features.apply import check_references, check_source, overlay, spec_digest
from steward.features.models import (
    KIND_ENTITY,
    KIND_SERVICE,
    KIND_VIEW,
    ApplyReport,
    Definition,
    FeatureView,
    MaterializationRun,
    OnlineFeatures,
    OnlineStore,
    SkewReport,
    StoredDefinition,
)
from steward.features.resolve import Lookup, Selection, select, whole_view
from steward.features.rows import entity_columns, entity_table, skew_mismatches, view_rows
from steward.features.sources import staged_inputs
from steward.features.specs import check_definition, kind_of, ordered, parse_document
from steward.governance import audit
from steward.governance.context import current_identity, local_identity
from steward.store.platform import Platform

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import Connection

    from steward.data.service import DataService

KINDS = (KIND_ENTITY, KIND_VIEW, KIND_SERVICE)
PLAN_TTL_S = 5.0
"""How long an online read reuses the definitions it resolved (another process's ``apply`` is seen
after this long; this process's at once)."""


class FeatureStore:
    """Feature definitions, training sets and online features, stored directly (embedded mode).

    Args:
        platform: The settings, metadata store and blob store to use.
        data: The data service source datasets are read through (made on first use).
        online: The online store (``Settings.online_store`` by default, opened on first use).
    """

    def __init__(
        self, platform: Platform, data: DataService | None = None, online: OnlineStore | None = None
    ) -> None:
        self.platform = platform
        self.metadata = platform.metadata
        self._data = data
        self._online = online
        self._plans: dict[tuple[str, tuple[str, ...] | str, bool], tuple[float, _OnlinePlan]] = {}
        self._lock = threading.Lock()
        self._local = local_identity(platform.local_actor)  # the OS user is looked up once, not per read

    @property
    def data(self) -> DataService:
        """The data service views read their datasets through."""
        if self._data is None:
            from steward.data.service import DataService

            self._data = DataService(self.platform)
        return self._data

    @property
    def online(self) -> OnlineStore:
        """The online store, opened on first use."""
        if self._online is None:
            with self._lock:
                if self._online is None:
                    from steward.features.online import open_online_store

                    self._online = open_online_store(self.platform.settings)
        return self._online

    def close(self) -> None:
        """Release the online store's connections."""
        if self._online is not None:
            self._online.close()

    def _require(self, permission: str) -> None:
        current_identity(self._local).require(permission, self.platform.project)

    def _record(self, conn: Connection, action: str, kind: str, resource: str, **fields: Any) -> None:
        audit.record(self.platform, conn, action, kind, resource, **fields)

    def _lookup(self, conn: Connection) -> Lookup:
        project = self.platform.project

        def lookup(kind: str, name: str) -> StoredDefinition | None:
            return repo.latest(conn, project, kind, name)

        return lookup

    # -- definitions -----------------------------------------------------------------------------

    def apply(self, definitions: Sequence[Definition] | Mapping[str, Any] | str) -> ApplyReport:
        """Register definitions: each one a new version only if its spec changed.

        Everything is checked first — names, types, TTLs, that each view's entities exist and its
        source dataset has its key, timestamp and feature columns with compatible types, that each
        service's features exist — and then stored in one transaction, audited.

        Args:
            definitions: ``Entity``/``FeatureView``/``FeatureService`` objects, a YAML document's dict,
                or YAML text.

        Returns:
            What was created, changed or left as it was (``kind:name`` each).

        Raises:
            InvalidInput: For a malformed definition or a view that does not fit its data.
            NotFound: For a reference to an entity, view, feature or dataset that does not exist.
        """
        self._require("features:write")
        if isinstance(definitions, Mapping | str):
            batch = parse_document(definitions)
        else:
            batch = [check_definition(d) for d in definitions]
        names = [(kind_of(d), d.name) for d in batch]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise InvalidInput(f"{twice[0]} {twice[1]!r} is defined twice", {"field": "definitions"})
        batch = ordered(batch)
        project = self.platform.project
        with self.metadata.read() as conn:
            lookup = overlay(self._lookup(conn), batch)
            check_references(lookup, batch)
            derived = {
                d.name: check_source(self.data, lookup, d) for d in batch if isinstance(d, FeatureView)
            }
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        at, actor = now_ms(), self.platform.actor
        with self.metadata.transaction() as conn:
            for item in batch:
                kind, spec = kind_of(item), item.to_spec()
                digest = spec_digest(spec)
                current = repo.latest(conn, project, kind, item.name)
                label = f"{kind}:{item.name}"
                if current is not None and current.digest == digest:
                    unchanged.append(label)
                    continue
                number = 1 if current is None else current.version + 1
                extra = derived.get(item.name, {}) if kind == KIND_VIEW else {}
                repo.insert_definition(conn, project, kind, item.name, number, spec, digest, extra, at, actor)
                (created if current is None else updated).append(label)
                self._record(
                    conn, f"{kind}.apply", kind, item.name, after_digest=digest,
                    before_digest=current.digest if current is not None else None,
                    details={"version": number},
                )  # fmt: skip
        with self._lock:
            self._plans.clear()
        return ApplyReport(tuple(created), tuple(updated), tuple(unchanged))

    def list_definitions(self, kind: str | None = None) -> list[StoredDefinition]:
        """The latest version of every definition (of one kind), by kind and name."""
        self._require("features:read")
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r} (known: {', '.join(KINDS)})", {"field": "kind"})
        with self.metadata.read() as conn:
            return repo.latest_all(conn, self.platform.project, kind)

    def get_definition(self, kind: str, name: str, version: int | None = None) -> StoredDefinition:
        """One version of a definition (the latest by default).

        Raises:
            NotFound: If there is no such definition or version.
        """
        self._require("features:read")
        if kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r} (known: {', '.join(KINDS)})", {"field": "kind"})
        with self.metadata.read() as conn:
            project = self.platform.project
            found = (
                repo.latest(conn, project, kind, name)
                if version is None
                else repo.version(conn, project, kind, name, version)
            )
        if found is None:
            which = f" version {version}" if version is not None else ""
            raise NotFound(f"{kind} {name!r}{which} not found", {"field": "name", "kind": kind})
        return found

    def definition_history(self, kind: str, name: str) -> list[StoredDefinition]:
        """Every version of a definition, oldest first.

        Raises:
            NotFound: If it was never applied.
        """
        self.get_definition(kind, name)
        with self.metadata.read() as conn:
            return repo.history(conn, self.platform.project, kind, name)

    def _select(self, features: Sequence[str] | str) -> list[Selection]:
        with self.metadata.read() as conn:
            return select(self._lookup(conn), features)

    # -- training sets ---------------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_rows: Any,
        features: Sequence[str] | str,
        *,
        timestamp: str = "event_timestamp",
        full_feature_names: bool = False,
        save_as: str | None = None,
    ) -> pa.Table:
        """A point-in-time correct training set (``steward.features.offline.point_in_time_join``).

        Args:
            entity_rows: The entity keys and timestamps (DataFrame, Arrow table, dict of lists or
                list of dicts); every row comes back, in order, with its other columns.
            features: ``view:feature`` references (``view`` for all of a view's) or a service's name.
            timestamp: The entity rows' timestamp column.
            full_feature_names: Name the columns ``view__feature``.
            save_as: Also publish the result as a version of this dataset, whose lineage names the
                source dataset versions (``features_from``).

        Raises:
            InvalidInput: Entity rows without a key or the timestamp column, a type mismatch, a
                malformed reference.
            NotFound: An unknown view, feature or service.
            Forbidden: Without ``features:read`` (and ``data:read_pii`` for PII-tagged features; and
                ``data:write`` with ``save_as``).
        """
        from steward.features.offline import point_in_time_join

        self._require("features:read")
        if save_as is not None:
            self._require("data:write")
        table = entity_table(entity_rows)
        selections = self._select(features)
        with staged_inputs(self.data, selections) as (inputs, versions):
            result = point_in_time_join(
                table, inputs, timestamp=timestamp, full_feature_names=full_feature_names
            )
        if save_as is not None:
            self._save_training_set(save_as, result, selections, versions)
        return result

    def _save_training_set(
        self, name: str, table: pa.Table, selections: Sequence[Selection], versions: Sequence[Any]
    ) -> None:
        source = {
            "kind": "features",
            "features": [f"{s.view.name}:{f}" for s in selections for f in s.features],
            "dataset_versions": [v.ref for v in versions],
        }
        saved, existed = self.data.publish(name, table, source)
        if existed:
            return
        with self.metadata.transaction() as conn:
            repo.insert_lineage(conn, [v.id for v in versions], saved.id)

    # -- online ----------------------------------------------------------------------------------

    def _online_plan(self, features: Sequence[str] | str, full: bool) -> _OnlinePlan:
        key = (self.platform.project, features if isinstance(features, str) else tuple(features), full)
        now = time.monotonic()
        with self._lock:
            cached = self._plans.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        selections = self._select(features)
        plan = _OnlinePlan(
            selections,
            [(s.view, s.join_keys, s.features) for s in selections],
            sorted(
                {
                    f"{s.view.name}:{f}"
                    for s in selections
                    for f in s.features
                    if f in s.derived.get("pii", {})
                }
            ),
        )
        with self._lock:
            self._plans[key] = (now + PLAN_TTL_S, plan)
        return plan

    def get_online_features(
        self, entity_rows: Any, features: Sequence[str] | str, *, full_feature_names: bool = False
    ) -> OnlineFeatures:
        """The online values of ``features`` for each entity row.

        An entity the store does not have gets nulls and the status ``NOT_FOUND``; a value older than
        the view's TTL gets nulls and ``OUTSIDE_TTL`` — never an error.

        Raises:
            InvalidInput: Entity rows without a view's join key.
            NotFound: An unknown view, feature or service.
            Forbidden: Without ``features:read`` (and ``data:read_pii`` for PII-tagged features).
        """
        from steward.features.online import read_online

        self._require("features:read")
        plan = self._online_plan(features, full_feature_names)
        if plan.pii:
            self._check_pii(plan.pii)
        return read_online(
            self.online, self.platform.project, plan.views, entity_columns(entity_rows),
            full_feature_names=full_feature_names,
        )  # fmt: skip

    def _check_pii(self, tagged: Sequence[str]) -> None:
        identity = current_identity(self._local)
        allowed = identity.can("data:read_pii", self.platform.project)
        with self.metadata.transaction() as conn:
            self._record(
                conn, "features.read_pii", KIND_VIEW, tagged[0].split(":")[0], details={"features": tagged},
                outcome="ok" if allowed else "denied",
            )  # fmt: skip
        if not allowed:
            identity.require("data:read_pii", self.platform.project)

    # -- materialisation and pushes --------------------------------------------------------------

    def materialize(
        self, views: Sequence[str] | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> list[MaterializationRun]:
        """Write the latest values per entity with event times in ``[start, end)`` to the online store.

        ``start`` None continues where the view's last run into this store ended (from its first row
        the first time); ``end`` None is now. A value already online with a later event time (pushed
        from a stream) is kept.

        Raises:
            InvalidInput: ``start`` not before ``end``, or a view that is not online.
            NotFound: An unknown view.
        """
        from steward.features.offline import latest_per_entity
        from steward.features.online import records_from_table

        self._require("features:write")
        end = as_utc(end) if end is not None else datetime.now(UTC)
        end = end.replace(microsecond=end.microsecond // 1000 * 1000)  # as stored: milliseconds
        store = self.online
        project = self.platform.project
        with self.metadata.read() as conn:
            lookup = self._lookup(conn)
            if views is None:
                listed = repo.latest_all(conn, project, KIND_VIEW)
                names = [d.name for d in listed if d.spec.get("online", True)]
            else:
                names = list(views)
            plan = []
            for name in names:
                selection = whole_view(lookup, name)
                if not selection.view.online:
                    raise InvalidInput(
                        f"feature view {name!r} is not online", {"field": "views", "view": name}
                    )
                last = repo.last_window_end(conn, project, name, store.name)
                plan.append((selection, as_utc(start) if start is not None else last))
        runs: list[MaterializationRun] = []
        for selection, begin in plan:
            if begin is not None and begin >= end:
                when = f"start {begin.isoformat()} is not before end {end.isoformat()}"
                raise InvalidInput(f"materialize {selection.view.name!r}: {when}", {"field": "start"})
            with staged_inputs(self.data, [selection]) as (inputs, _versions):
                latest = latest_per_entity(inputs[0], begin, end)
            view = selection.view
            records = records_from_table(latest, selection.join_keys, view.timestamp, selection.features)
            written = store.write(project, view.name, records)
            run = MaterializationRun(
                view=view.name,
                start=begin or datetime.fromtimestamp(0, UTC),
                end=end,
                rows=latest.num_rows,
                entities=written,
                store=store.name,
                finished_at=datetime.now(UTC),
                finished_by=self.platform.actor,
            )
            with self.metadata.transaction() as conn:
                repo.insert_materialization(conn, project, run)
                self._record(conn, "feature_view.materialize", KIND_VIEW, view.name, details=run.to_json())
            runs.append(run)
        return runs

    def list_materializations(self, view: str | None = None) -> list[MaterializationRun]:
        """Past materialisation runs, newest first."""
        self._require("features:read")
        with self.metadata.read() as conn:
            return repo.materializations(conn, self.platform.project, view)

    def _view_selection(self, name: str) -> Selection:
        with self.metadata.read() as conn:
            return whole_view(self._lookup(conn), name)

    def push(self, view: str, rows: Any) -> int:
        """Write fresh rows of a view (its keys, event timestamp and every feature) to the online store.

        Returns:
            How many entities took the new values (an entity with a later value online keeps it).

        Raises:
            InvalidInput: A missing column, or a value that does not fit its feature's type.
            NotFound: An unknown view.
        """
        from steward.features.online import records_from_table

        self._require("features:write")
        selection = self._view_selection(view)
        table = view_rows(selection, entity_table(rows))
        written = self.online.write(
            self.platform.project, view,
            records_from_table(table, selection.join_keys, selection.view.timestamp, selection.features),
        )  # fmt: skip
        with self.metadata.transaction() as conn:
            self._record(
                conn,
                "feature_view.push",
                KIND_VIEW,
                view,
                details={"rows": table.num_rows, "written": written},
            )
        return written

    def consume_stream(self, view: str, *, max_batches: int | None = None, block_ms: int = 0) -> int:
        """Push what a stream-fed view's Redis stream holds to the online store.

        Each micro-batch is acknowledged (and checkpointed) only once written, so a crash re-delivers
        it, and writing it again changes nothing (the later event time wins).

        Returns:
            The rows pushed.

        Raises:
            InvalidInput: The view is not fed by a stream, or an entry does not fit the view.
        """
        from steward.features.streams import consume

        selection = self._view_selection(view)
        return consume(selection, self.push, max_batches=max_batches, block_ms=block_ms)

    # -- consistency -----------------------------------------------------------------------------

    def skew(self, view: str, *, sample: int = 100, tolerance: float = 1e-9, seed: int = 0) -> SkewReport:
        """Compare offline and online values of a view for a sample of its entities.

        The offline value is what a training set asked for now would hold; the online one is what the
        store serves. A difference means training/serving skew (or a materialisation that is behind).

        Raises:
            InvalidInput: ``sample`` below 1 or a negative tolerance.
            NotFound: An unknown view.
        """
        from steward.features.offline import point_in_time_join, sample_entities
        from steward.features.online import read_online

        self._require("features:read")
        if sample < 1 or tolerance < 0:
            raise InvalidInput("sample must be at least 1 and tolerance not negative", {"field": "sample"})
        selection = self._view_selection(view)
        now = datetime.now(UTC)
        with staged_inputs(self.data, [selection]) as (inputs, _versions):
            entities = sample_entities(inputs[0], sample, seed)
            import pyarrow as pa

            as_of = pa.array([now] * entities.num_rows, pa.timestamp("us", tz="UTC"))
            probe = entities.append_column("__steward_as_of", as_of)
            offline = point_in_time_join(probe, inputs, timestamp="__steward_as_of")
        columns = {k: offline.column(k).to_pylist() for k in selection.join_keys}
        online = read_online(
            self.online, self.platform.project, [(selection.view, selection.join_keys, selection.features)],
            columns, now=now,
        )  # fmt: skip
        mismatches, compared, missing = skew_mismatches(selection, offline, online, tolerance)
        return SkewReport(view, entities.num_rows, compared, missing, tuple(mismatches), tolerance)


@dataclass(frozen=True)
class _OnlinePlan:
    """What an online read of one feature list resolved to, reused for ``PLAN_TTL_S``."""

    selections: list[Selection]
    views: list[tuple[FeatureView, tuple[str, ...], tuple[str, ...]]]
    pii: list[str]
