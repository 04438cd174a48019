"""``DeployService``: endpoints and rollouts, embedded, straight on the metadata store.

Every change of an endpoint's plan happens in one transaction that, under the endpoint's lock (a row
lock on PostgreSQL; SQLite writers are serial), re-reads the endpoint and its rollout, then writes the
move (``writes.apply_move``: arms, revision, rollout state, event, audit entry). A version reaches an
endpoint only through the policy gate of the endpoint's ``gate_alias`` (``writes.gate``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import from_ms, now_ms
from steward.deploy import repository as repo
from steward.deploy import strategies
from steward.deploy.analysis import stats_json
from steward.deploy.models import DEFAULT_GATE_ALIAS, Endpoint, EndpointStatus, Rollout, RolloutState
from steward.deploy.options import Strategy, parse_options, parse_strategy
from steward.deploy.stats import windows
from steward.deploy.writes import Subject, apply_move, gate, record
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.governance.context import current_identity
from steward.registry.models import ModelVersion
from steward.serving.models import Arm

if TYPE_CHECKING:
    from steward.deploy.controller import Readiness
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform

STATUS_WINDOW_S = 300
"""Without a rollout under way, ``status`` shows the statistics of this many seconds."""


UPDATABLE = ("description", "sticky_key", "feature_service")
"""The endpoint columns ``update_endpoint`` may change."""


def _sticky(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128 or value != value.strip():
        raise InvalidInput(
            "sticky_key must be a request field name of 1-128 characters", {"field": "sticky_key"}
        )
    return value


def _wanted(
    description: object,
    sticky_key: object,
    feature_service: object,
    clear_sticky: object,
    clear_service: object,
) -> dict[str, Any]:
    """The columns an update asks for, checked (the feature service's existence is checked apart)."""
    wanted: dict[str, Any] = {}
    if description is not None:
        if not isinstance(description, str):
            raise InvalidInput("description must be text", {"field": "description"})
        wanted["description"] = description
    for field, value, clear in (
        ("sticky_key", sticky_key, clear_sticky),
        ("feature_service", feature_service, clear_service),
    ):
        if not isinstance(clear, bool):
            raise InvalidInput(f"clear_{field} must be true or false", {"field": f"clear_{field}"})
        if clear and value is not None:
            raise InvalidInput(f"give {field} or clear_{field}, not both", {"field": field})
        if clear:
            wanted[field] = None
        elif value is not None:
            wanted[field] = _sticky(value) if field == "sticky_key" else validate_name(value, field)
    if not wanted:
        raise InvalidInput(
            f"nothing to change: give {', '.join(UPDATABLE)}, clear_sticky_key or clear_feature_service",
            {"field": "update", "fields": list(UPDATABLE)},
        )
    return wanted


class DeployService:
    """Endpoints, their traffic plans and rollouts (embedded mode).

    Args:
        platform: The settings and stores to use.
        registry: The registry whose versions are deployed (one is made if omitted).
    """

    def __init__(self, platform: Platform, registry: RegistryService | None = None) -> None:
        self.platform = platform
        self._db = platform.metadata
        self._registry = registry

    @property
    def registry(self) -> RegistryService:
        """The registry versions come from."""
        if self._registry is None:
            from steward.registry.service import RegistryService

            self._registry = RegistryService(self.platform)
        return self._registry

    def _may_write(self) -> None:
        current_identity().require("deploy:write", self.platform.project)

    def _gate(self, endpoint: str, model: str, version: str, alias: str, action: str) -> ModelVersion:
        return gate(self.platform, self.registry, endpoint, model, version, alias, action)

    def _row(self, conn: Connection, name: str, *, lock: bool = False) -> Row[Any]:
        validate_name(name, "endpoint")
        row = repo.find_endpoint(conn, self.platform.project, name, lock=lock)
        if row is None:
            raise NotFound(f"endpoint {name!r} not found", {"field": "endpoint"})
        return row

    def _endpoint(self, conn: Connection, row: Row[Any]) -> Endpoint:
        return repo.to_endpoint(row, repo.arms_of(conn, self.platform.project, [row.id]).get(row.id, ()))

    # -- endpoints ----------------------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str,
        model: str,
        version: str,
        *,
        description: str = "",
        gate_alias: str = DEFAULT_GATE_ALIAS,
        sticky_key: str | None = None,
        feature_service: str | None = None,
    ) -> Endpoint:
        """Create an endpoint serving ``version`` of ``model`` (its stable arm, 100%).

        Args:
            name: The endpoint's name.
            model: The registered model it serves.
            version: The version it serves first.
            description: What it is for.
            gate_alias: The alias whose policies every version deployed here must pass.
            sticky_key: The request field whose hash picks an A/B arm.
            feature_service: A feature service of the project: requests then carry its entity keys and
                the server reads the model's inputs from its online features (``serving.features``).

        Raises:
            InvalidInput: For a bad name, alias or sticky key.
            NotFound: The model, version or feature service does not exist (nothing is stored).
            AlreadyExists: The project has an endpoint of that name.
            PolicyViolation: The version fails the policies of ``gate_alias`` (``writes.gate``).
        """
        self._may_write()
        validate_name(name, "endpoint")
        validate_name(model, "model")
        validate_name(gate_alias, "gate_alias")
        sticky = _sticky(sticky_key)
        if not isinstance(description, str):
            raise InvalidInput("description must be text", {"field": "description"})
        if feature_service is not None:
            self._check_feature_service(feature_service)
        target = self._gate(name, model, version, gate_alias, "endpoint.create")
        now, arms, endpoint_id = now_ms(), (Arm(target.version, "stable", 1.0),), new_id()
        values = {
            "id": endpoint_id,
            "project": self.platform.project,
            "name": name,
            "model": model,
            "description": description,
            "gate_alias": gate_alias,
            "sticky_key": sticky,
            "feature_service": feature_service,
            "revision": 0,
            "active_rollout": None,
            "created_at": now,
            "created_by": self.platform.actor,
            "updated_at": now,
        }
        facts = {
            "model": model, "version": target.version, "gate_alias": gate_alias, "sticky_key": sticky,
            **({"feature_service": feature_service} if feature_service is not None else {}),
        }  # fmt: skip
        try:
            with self._db.transaction() as conn:
                repo.insert_endpoint(conn, values)
                revision = repo.write_plan(conn, self.platform.project, endpoint_id, arms, now)
                record(
                    self.platform, conn, "endpoint.create", name, {**facts, "revision": revision},
                    before=(), after=arms,
                )  # fmt: skip
        except SQLIntegrityError:
            raise AlreadyExists(f"endpoint {name!r} already exists", {"field": "name"}) from None
        return self.get_endpoint(name)

    def _check_feature_service(self, name: str) -> None:
        from steward.features.models import KIND_SERVICE
        from steward.features.service import FeatureStore

        validate_name(name, "feature_service")
        try:
            FeatureStore(self.platform).get_definition(KIND_SERVICE, name)
        except NotFound:
            raise NotFound(
                f"feature service {name!r} not found in project {self.platform.project!r}: define it with "
                "steward features apply",
                {"field": "feature_service", "feature_service": name},
            ) from None

    def update_endpoint(
        self,
        name: str,
        *,
        description: str | None = None,
        sticky_key: str | None = None,
        feature_service: str | None = None,
        clear_sticky_key: bool = False,
        clear_feature_service: bool = False,
        reason: str = "",
    ) -> Endpoint:
        """Change what an endpoint is for, its sticky key or its feature service; only what is given
        changes.

        The change bumps the plan's revision with its arms as they are, so servers following the endpoint
        pick up a new feature service or sticky key at their next poll. A change during a rollout is
        allowed, except of the sticky key during an A/B rollout (it would move users between its arms).
        Values equal to the current ones change nothing: no revision, no audit entry.

        Args:
            name: The endpoint's name.
            description: Its new description.
            sticky_key: Its new sticky key (the request field whose hash picks an A/B arm).
            feature_service: Its new feature service (a feature service of the project).
            clear_sticky_key: Remove its sticky key (A/B arms are then drawn per request).
            clear_feature_service: Remove its feature service (requests then carry the model's inputs).
            reason: Why: recorded with the change.

        Returns:
            The endpoint as it now is.

        Raises:
            InvalidInput: For a bad value, a value given with its ``clear_`` flag, or nothing to change
                (``details["field"]`` names the field).
            NotFound: The endpoint or the feature service does not exist (nothing is changed).
            Conflict: The sticky key would change while an A/B rollout is under way.
        """
        self._may_write()
        validate_name(name, "endpoint")
        wanted = _wanted(description, sticky_key, feature_service, clear_sticky_key, clear_feature_service)
        if not isinstance(reason, str):
            raise InvalidInput("reason must be text", {"field": "reason"})
        if wanted.get("feature_service") is not None:
            self._check_feature_service(wanted["feature_service"])
        project = self.platform.project
        with self._db.transaction() as conn:
            row = self._row(conn, name, lock=True)
            changes = {k: v for k, v in wanted.items() if getattr(row, k) != v}
            if "sticky_key" in changes and row.active_rollout is not None:
                rollout = repo.rollout_row(conn, project, row.id, row.active_rollout)
                if rollout is not None and rollout.strategy == Strategy.AB.value:
                    raise Conflict(
                        f"A/B rollout {row.active_rollout} is under way on {name!r}: its sticky key keeps "
                        "each user on one arm; change it after the rollout ends",
                        {"field": "sticky_key", "rollout": row.active_rollout},
                    )
            if not changes:
                return self._endpoint(conn, row)
            arms = self._endpoint(conn, row).arms
            revision = repo.write_plan(conn, project, row.id, arms, now_ms(), **changes)
            facts = {
                "changed": sorted(changes),
                "changes": {k: {"from": getattr(row, k), "to": v} for k, v in sorted(changes.items())},
                "reason": reason,
                "revision": revision,
            }
            record(self.platform, conn, "endpoint.update", name, facts, before=arms, after=arms)
        return self.get_endpoint(name)

    def get_endpoint(self, name: str) -> Endpoint:
        """Return one endpoint with its plan.

        Raises:
            NotFound: There is no endpoint called ``name`` in the project.
        """
        with self._db.read() as conn:
            return self._endpoint(conn, self._row(conn, name))

    def list_endpoints(self) -> list[Endpoint]:
        """Return the project's endpoints, by name."""
        project = self.platform.project
        with self._db.read() as conn:
            rows = repo.endpoint_rows(conn, project)
            arms = repo.arms_of(conn, project, [r.id for r in rows])
        return [repo.to_endpoint(r, arms.get(r.id, ())) for r in rows]

    def delete_endpoint(self, name: str, reason: str = "") -> None:
        """Delete an endpoint, its plan and its rollout history (the audit trail keeps what happened).

        Raises:
            NotFound: There is no such endpoint.
            Conflict: A rollout is under way on it: roll it back or abort it first.
        """
        self._may_write()
        with self._db.transaction() as conn:
            row = self._row(conn, name, lock=True)
            if row.active_rollout is not None:
                raise Conflict(
                    f"rollout {row.active_rollout} is under way on {name!r}: roll it back or abort it first",
                    {"field": "endpoint", "rollout": row.active_rollout},
                )
            before = self._endpoint(conn, row).arms
            repo.delete_endpoint(conn, self.platform.project, row.id)
            facts = {"reason": reason, "model": row.model}
            record(self.platform, conn, "endpoint.delete", name, facts, before=before, after=())

    # -- rollouts -----------------------------------------------------------------------------------

    def start_rollout(
        self, endpoint: str, strategy: str, version: str, options: Mapping[str, Any] | None = None
    ) -> Rollout:
        """Start rolling ``version`` out onto ``endpoint`` by ``strategy`` (its first plan applies now).

        Raises:
            InvalidInput: For an unknown strategy or a bad option (the field names it).
            NotFound: The endpoint or the version does not exist.
            Conflict: A rollout is under way already, or ``version`` is the stable version.
            PolicyViolation: The version fails the policies of the endpoint's gate alias.
        """
        self._may_write()
        kind = parse_strategy(strategy)
        if options is not None and not isinstance(options, Mapping):
            raise InvalidInput("options must be an object of option names to values", {"field": "options"})
        parsed = parse_options(kind, options)
        ep = self.get_endpoint(endpoint)
        target = self._gate(endpoint, ep.model, version, ep.gate_alias, "rollout.start")
        now, rollout_id = now_ms(), new_id()
        with self._db.transaction() as conn:
            row = self._row(conn, endpoint, lock=True)
            if row.active_rollout is not None:
                raise Conflict(
                    f"rollout {row.active_rollout} is under way on {endpoint!r}: promote, roll back or "
                    "abort it before starting another",
                    {"field": "endpoint", "rollout": row.active_rollout},
                )
            current = self._endpoint(conn, row)
            baseline = current.stable
            if target.version == baseline:
                raise Conflict(f"{target.version} already holds {endpoint!r}", {"field": "version"})
            move = strategies.start(kind, baseline, target.version, parsed)
            repo.insert_rollout(
                conn,
                {
                    "id": rollout_id,
                    "project": self.platform.project,
                    "endpoint_id": row.id,
                    "strategy": kind.value,
                    "version": target.version,
                    "baseline": baseline,
                    "state": move.state.value,
                    "step": move.step,
                    "options": json.dumps(parsed.to_json(kind)),
                    "step_started_at": now,
                    "analysis": None,
                    "message": move.message,
                    "created_at": now,
                    "created_by": self.platform.actor,
                    "ended_at": None if move.state.active else now,
                },
            )
            sticky = {"sticky_key": parsed.sticky_key} if kind is Strategy.AB and parsed.sticky_key else {}
            subject = Subject(rollout_id, kind, target.version, baseline, None)
            apply_move(
                self.platform, conn, current, subject, move, "rollout.start", now,
                details={"options": parsed.to_json(kind)}, columns=sticky,
            )  # fmt: skip
        return self.get_rollout(endpoint, rollout_id)

    def locked(
        self, conn: Connection, endpoint: str, rollout_id: str | None = None, what: str = "change"
    ) -> tuple[Endpoint, Rollout]:
        """Inside a write transaction: the endpoint (locked) and one of its rollouts (the latest by
        default).

        Raises:
            NotFound: There is no such endpoint.
            Conflict: It has no such rollout.
        """
        row = self._row(conn, endpoint, lock=True)
        found = repo.rollout_row(conn, self.platform.project, row.id, rollout_id)
        if found is None:
            raise Conflict(f"endpoint {endpoint!r} has no rollout: nothing to {what}", {"field": "endpoint"})
        return self._endpoint(conn, row), repo.to_rollout(found, endpoint)

    def locked_active(self, conn: Connection, endpoint: str, what: str) -> tuple[Endpoint, Rollout]:
        """Inside a write transaction: the endpoint (locked) and its rollout under way.

        Raises:
            NotFound: There is no such endpoint.
            Conflict: No rollout is under way on it (the message says there is nothing to ``what``).
        """
        row = self._row(conn, endpoint, lock=True)
        if row.active_rollout is None:
            raise Conflict(
                f"no rollout is under way on {endpoint!r}: nothing to {what}", {"field": "endpoint"}
            )
        return self.locked(conn, endpoint, row.active_rollout, what)

    def promote(self, endpoint: str, *, finish: bool = False, reason: str = "") -> Rollout:
        """Move the rollout under way on by hand, without analysis: a canary to its next step (or, with
        ``finish``, to 100%); a blue-green candidate, the B arm of an A/B test or a shadow to 100%.

        Raises:
            NotFound: There is no such endpoint.
            Conflict: No rollout is under way on it.
        """
        self._may_write()
        with self._db.transaction() as conn:
            ep, rollout = self.locked_active(conn, endpoint, "promote")
            move = strategies.forward(
                rollout.strategy,
                rollout.baseline,
                rollout.version,
                rollout.step,
                rollout.options,
                finish=finish,
            )
            apply_move(
                self.platform, conn, ep, Subject.of(rollout), move, "rollout.promote", now_ms(),
                kind="promoted", message=f"promoted by hand: {move.message}",
                details={"reason": reason, "finish": finish},
            )  # fmt: skip
        return self.get_rollout(endpoint, rollout.id)

    def rollback(self, endpoint: str, reason: str = "") -> Rollout:
        """Give the baseline version all traffic again, at once: of the rollout under way, or of the
        latest one if it succeeded and its baseline still stands by.

        Raises:
            NotFound: There is no such endpoint.
            Conflict: There is nothing to roll back.
        """
        self._may_write()
        with self._db.transaction() as conn:
            ep, rollout = self.locked(conn, endpoint, what="roll back")
            if not rollout.active:
                ended = strategies.finished_arms(rollout.baseline, rollout.version)
                if rollout.state is not RolloutState.SUCCEEDED or set(ep.arms) != set(ended):
                    since = (
                        " and the plan has changed since" if rollout.state is RolloutState.SUCCEEDED else ""
                    )
                    raise Conflict(
                        f"nothing to roll back on {endpoint!r}: its latest rollout ({rollout.id}) is "
                        f"{rollout.state.value}{since}",
                        {"field": "endpoint", "rollout": rollout.id},
                    )
            move = strategies.rollback(
                rollout.strategy, rollout.baseline, rollout.version, rollout.step, active=rollout.active
            )
            self.write_rollback(conn, ep, rollout, move, reason, automatic=False)
        return self.get_rollout(endpoint, rollout.id)

    def write_rollback(
        self,
        conn: Connection,
        ep: Endpoint,
        rollout: Rollout,
        move: strategies.Move,
        reason: str,
        *,
        automatic: bool,
        analysis: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a rollback inside the caller's transaction (by hand, or the controller's after a
        failed analysis)."""
        why = f": {reason}" if reason else ""
        text = f"{'automatic rollback' if automatic else 'rolled back'}{why}; {move.message}"
        apply_move(
            self.platform, conn, ep, Subject.of(rollout), move, "rollout.rollback", now_ms(), message=text,
            analysis=analysis, details={"reason": reason, "automatic": automatic},
        )  # fmt: skip

    def abort(self, endpoint: str, reason: str = "") -> Rollout:
        """Stop the rollout under way: its candidate leaves the plan and the baseline takes 100%.

        Raises:
            NotFound: There is no such endpoint.
            Conflict: No rollout is under way on it.
        """
        self._may_write()
        with self._db.transaction() as conn:
            ep, rollout = self.locked_active(conn, endpoint, "abort")
            move = strategies.abort(rollout.baseline, rollout.version, rollout.step)
            apply_move(
                self.platform, conn, ep, Subject.of(rollout), move, "rollout.abort", now_ms(),
                details={"reason": reason},
            )  # fmt: skip
        return self.get_rollout(endpoint, rollout.id)

    # -- reading ------------------------------------------------------------------------------------

    def get_rollout(self, endpoint: str, rollout_id: str | None = None) -> Rollout:
        """Return a rollout of ``endpoint`` (the latest by default) with its events.

        Raises:
            NotFound: There is no such endpoint or rollout.
        """
        with self._db.read() as conn:
            row = self._row(conn, endpoint)
            found = repo.rollout_row(conn, self.platform.project, row.id, rollout_id)
            if found is None:
                what = f"rollout {rollout_id!r}" if rollout_id else "any rollout"
                raise NotFound(f"endpoint {endpoint!r} has no {what}", {"field": "rollout"})
            return repo.to_rollout(found, endpoint, repo.events_of(conn, self.platform.project, found.id))

    def list_rollouts(self, endpoint: str) -> list[Rollout]:
        """Return the rollouts of ``endpoint``, newest first (without their events).

        Raises:
            NotFound: There is no such endpoint.
        """
        with self._db.read() as conn:
            row = self._row(conn, endpoint)
            rows = repo.rollout_rows(conn, self.platform.project, row.id)
            return [repo.to_rollout(r, endpoint) for r in rows]

    def status(self, endpoint: str) -> EndpointStatus:
        """Return the endpoint, its latest rollout (with events) and what each version served since the
        rollout's current step began (or, with none under way, over the last ``STATUS_WINDOW_S``).

        Raises:
            NotFound: There is no such endpoint.
        """
        ep = self.get_endpoint(endpoint)
        try:
            rollout: Rollout | None = self.get_rollout(endpoint)
        except NotFound:
            rollout = None
        if rollout is not None and rollout.active:
            since = int(rollout.step_started_at.timestamp() * 1000)
        else:
            since = now_ms() - STATUS_WINDOW_S * 1000
        found = windows(self.platform, self.platform.project, endpoint, since)
        stats = {v: stats_json(s) for v, s in sorted(found.items())}
        return EndpointStatus(ep, rollout, stats, from_ms(since))

    def advance(self, endpoint: str, *, readiness: Readiness | None = None) -> dict[str, Any]:
        """Run one analysis step of the rollout under way now (``deploy.controller.advance``)."""
        from steward.deploy.controller import advance

        return advance(self, endpoint, readiness=readiness)

    def results(self, endpoint: str, rollout_id: str | None = None) -> dict[str, Any]:
        """Per-arm outcomes of a rollout (the latest by default); for A/B, the significance test
        (``deploy.results``).

        Raises:
            NotFound: There is no such endpoint or rollout.
        """
        from steward.deploy.results import results

        return results(self, self.get_rollout(endpoint, rollout_id))

    def export(
        self, endpoint: str, target: str, version: str | None = None, options: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The files that deploy a version of the endpoint's model (its stable version by default) on
        ``target`` (``kubernetes``, ``kserve`` or ``docker``: ``deploy.export``), acting in the project.

        Raises:
            NotFound: There is no such endpoint or version.
            InvalidInput: For an unknown target or a bad option (named in ``details["field"]``).
            Conflict: The version is archived.
        """
        from steward.deploy.export import ExportOptions, export_files

        ep = self.get_endpoint(endpoint)
        if options is not None and not isinstance(options, Mapping):
            raise InvalidInput("options must be an object of option names to values", {"field": "options"})
        found = self.registry.get_version(ep.model, version or ep.stable)
        chosen = ExportOptions.from_mapping({"project": self.platform.project, **(options or {})})
        return export_files(found, target, chosen)
