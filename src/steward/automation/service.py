"""``AutomationService``: triggers (cron, interval, data arrival) and their firings, embedded.

Creating a trigger checks everything it will need when it fires, so a bad one is refused at once and
never fails at 3 a.m.: the cron expression or period, that the dataset exists, that the import path
resolves to a ``@pipeline`` (which imports and so runs its module: the documented trust boundary, see
``automation.actions``) and that the parameters fit it. Every change is audited in its transaction.

The scheduler (``automation.scheduler``) fires them; this service is what the CLI and the API call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.automation import repository as repo
from steward.automation.actions import check_executor, load_target
from steward.automation.models import Firing, PipelineAction, Trigger, TriggerKind
from steward.automation.triggers import parse_cron, parse_interval
from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import from_ms, now_ms, to_ms
from steward.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from steward.governance import audit
from steward.governance.context import current_identity

if TYPE_CHECKING:
    from steward.data.service import DataService
    from steward.monitoring.models import Monitor
    from steward.store.platform import Platform

READ = "automation:read"
"""The permission to read triggers and their firings."""
WRITE = "automation:write"
"""The permission to create and delete triggers."""
MAX_FIRINGS = 1000


class AutomationService:
    """Triggers and their firings (embedded mode).

    Args:
        platform: The settings and stores to use.
        data: The data service dataset triggers are checked against (one is made if omitted).
    """

    def __init__(self, platform: Platform, data: DataService | None = None) -> None:
        self.platform = platform
        self._db = platform.metadata
        self._data = data

    @property
    def data(self) -> DataService:
        """The data service whose datasets ``dataset`` triggers watch."""
        if self._data is None:
            from steward.data.service import DataService

            self._data = DataService(self.platform)
        return self._data

    def _require(self, permission: str) -> None:
        current_identity().require(permission, self.platform.project)

    def record(
        self, conn: Connection, action: str, name: str, details: Mapping[str, Any], outcome: str = "ok"
    ) -> None:
        """Append the audit entry of a change of trigger ``name`` inside the caller's transaction."""
        audit.record(self.platform, conn, action, "trigger", name, outcome=outcome, details=dict(details))

    # -- triggers ------------------------------------------------------------------------------------

    def create_trigger(
        self,
        name: str,
        kind: str,
        spec: str,
        pipeline: str,
        *,
        params: Mapping[str, Any] | None = None,
        executor: str = "local",
        enabled: bool = True,
    ) -> Trigger:
        """Create a trigger that runs ``pipeline`` with ``params`` when it is due.

        Args:
            name: Its name, unique in the project.
            kind: ``cron`` (``spec``: ``0 * * * *``, UTC), ``interval`` (``spec``: ``900``, ``15m``) or
                ``dataset`` (``spec``: a dataset's name; each new version is due, those that exist now
                are not).
            spec: See ``kind``.
            pipeline: The ``@pipeline``'s import path, ``package.module:attribute`` (imported now to check
                it: this runs its module's code).
            params: The pipeline's parameters (JSON values).
            executor: Where its steps run (``local``, ``processes``, ``processes:N``, ``ray`` …).
            enabled: Whether the scheduler fires it.

        Raises:
            InvalidInput: Naming the field: a bad name, kind, cron expression, period, executor, import
                path, or parameters the pipeline does not take (or lacks).
            NotFound: The dataset does not exist.
            AlreadyExists: The project has a trigger of that name.
        """
        self._require(WRITE)
        validate_name(name, "trigger")
        chosen = _kind(kind)
        action = _action(pipeline, params, executor, self.platform.settings.automation_packages)
        now = now_ms()
        values: dict[str, Any] = {
            "id": new_id(),
            "project": self.platform.project,
            "name": name,
            "kind": chosen.value,
            "enabled": 1 if enabled else 0,
            "created_at": now,
            "created_by": self.platform.actor,
            "next_due_at": None,
            "last_fired_at": None,
            "cursor": None,
        }
        facts: dict[str, Any] = {"kind": chosen.value, "action": action.to_json(), "enabled": bool(enabled)}
        if chosen is TriggerKind.DATASET:
            validate_name(spec, "dataset")
            latest = self._dataset_latest(spec)
            values["cursor"] = str(latest or 0)
            facts["version_seen"] = latest or 0
            text = spec
        else:
            schedule = parse_cron(spec) if chosen is TriggerKind.CRON else parse_interval(spec)
            text = schedule.text
            values["next_due_at"] = to_ms(schedule.next_after(from_ms(now)))
        values["spec"] = repo.spec_json(text, action)
        facts["spec"] = text
        try:
            with self._db.transaction() as conn:
                repo.insert_trigger(conn, values)
                self.record(conn, "trigger.create", name, facts)
        except SQLIntegrityError:
            raise AlreadyExists(f"trigger {name!r} already exists", {"field": "name"}) from None
        return self.get_trigger(name)

    def _dataset_latest(self, name: str) -> int | None:
        try:
            return self.data.get_dataset(name).latest_version
        except NotFound:
            raise NotFound(
                f"dataset {name!r} not found in project {self.platform.project!r}: a data-arrival trigger "
                "watches an existing dataset (create it, or ingest its first version, first)",
                {"field": "dataset", "dataset": name},
            ) from None

    def _row(self, conn: Connection, name: str) -> Any:
        if not isinstance(name, str) or not name:
            raise InvalidInput("a trigger name is required", {"field": "name"})
        row = repo.find_trigger(conn, self.platform.project, name)
        if row is None:
            raise NotFound(f"trigger {name!r} not found", {"field": "trigger"})
        return row

    def get_trigger(self, name: str) -> Trigger:
        """Return one trigger.

        Raises:
            NotFound: The project has no trigger called ``name``.
        """
        self._require(READ)
        with self._db.read() as conn:
            return repo.to_trigger(self._row(conn, name))

    def list_triggers(self) -> list[Trigger]:
        """Return the project's triggers (those the scheduler keeps for monitors too), by name."""
        self._require(READ)
        with self._db.read() as conn:
            return [repo.to_trigger(r) for r in repo.trigger_rows(conn, self.platform.project)]

    def delete_trigger(self, name: str, reason: str = "") -> None:
        """Delete a trigger and its firings (the audit trail keeps what they did). A monitor's trigger
        comes back at the scheduler's next pass while the monitor exists: disable the monitor instead.

        Raises:
            NotFound: There is no such trigger.
        """
        self._require(WRITE)
        with self._db.transaction() as conn:
            row = self._row(conn, name)
            found = repo.to_trigger(row)
            repo.delete_trigger(conn, row.id)
            facts = {"kind": found.kind.value, "spec": found.spec, "reason": reason}
            self.record(conn, "trigger.delete", name, facts)

    # -- the scheduler's monitor triggers ---------------------------------------------------------------

    def follow_monitor(self, monitor: Monitor, schedule: str, first_due: datetime, now: datetime) -> Trigger:
        """The ``monitor`` trigger the scheduler keeps for ``monitor`` (id: the monitor's), made and
        audited the first time it is asked for. No permission is checked: this is the scheduler's own
        bookkeeping, not a user's request (users cannot create monitor triggers).

        Raises:
            Conflict: Its name (``monitor:<name>``) is taken by a trigger of another monitor.
        """
        with self._db.read() as conn:
            row = repo.trigger_by_id(conn, monitor.id)
        if row is not None:
            return repo.to_trigger(row)
        name = f"monitor:{monitor.name}" if len(monitor.name) <= 120 else f"monitor:{monitor.id}"
        values = {
            "id": monitor.id,
            "project": self.platform.project,
            "name": name,
            "kind": TriggerKind.MONITOR.value,
            "spec": repo.spec_json(monitor.name, None, monitor_id=monitor.id),
            "enabled": 1,
            "created_at": to_ms(now),
            "created_by": self.platform.actor,
            "next_due_at": to_ms(first_due),
            "last_fired_at": None,
            "cursor": None,
        }
        facts = {"kind": "monitor", "monitor": monitor.name, "schedule": schedule, "automatic": True}
        try:
            with self._db.transaction() as conn:
                repo.insert_trigger(conn, values)
                self.record(conn, "trigger.create", name, facts)
        except SQLIntegrityError:
            pass  # another scheduler made it first
        with self._db.read() as conn:
            made = repo.trigger_by_id(conn, monitor.id)
        if made is None:
            raise Conflict(
                f"the trigger name {name!r} of monitor {monitor.name!r} is taken by another trigger",
                {"field": "monitor", "monitor": monitor.name},
            )
        return repo.to_trigger(made)

    def forget_monitor(self, trigger_id: str) -> None:
        """Drop the scheduler's trigger of a monitor that was deleted (audited; the trail keeps what its
        firings did)."""
        with self._db.transaction() as conn:
            row = repo.trigger_by_id(conn, trigger_id, lock=True)
            if row is None or row.kind != TriggerKind.MONITOR.value:
                return
            monitor = repo.to_trigger(row).spec
            repo.delete_trigger(conn, row.id)
            facts = {
                "kind": "monitor",
                "monitor": monitor,
                "reason": "its monitor was deleted",
                "automatic": True,
            }
            self.record(conn, "trigger.delete", row.name, facts)

    # -- firings -------------------------------------------------------------------------------------

    def list_firings(self, name: str, limit: int = 50) -> list[Firing]:
        """Return a trigger's latest firings, newest first.

        Raises:
            NotFound: There is no such trigger.
            InvalidInput: If ``limit`` is not between 1 and 1000.
        """
        self._require(READ)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FIRINGS:
            raise InvalidInput(f"limit must be between 1 and {MAX_FIRINGS}", {"field": "limit"})
        with self._db.read() as conn:
            row = self._row(conn, name)
            rows = repo.firing_rows(conn, self.platform.project, row.id, limit)
        return [repo.to_firing(r, name) for r in rows]


def _kind(kind: object) -> TriggerKind:
    if kind == TriggerKind.MONITOR.value:
        raise InvalidInput(
            "monitor triggers are kept by the scheduler for each monitor: create a monitor instead "
            "(its schedule and actions are its own)",
            {"field": "kind"},
        )
    try:
        return TriggerKind(kind if isinstance(kind, str) else "")
    except ValueError:
        raise InvalidInput(
            f"unknown trigger kind {kind!r}: use cron, interval or dataset", {"field": "kind"}
        ) from None


def _action(
    target: str, params: Mapping[str, Any] | None, executor: str, allowed: str | None = None
) -> PipelineAction:
    if params is not None and not isinstance(params, Mapping):
        raise InvalidInput("params must be an object of parameter names to values", {"field": "params"})
    given = dict(params or {})
    try:
        json.dumps(given, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"params must be JSON values: {exc}", {"field": "params"}) from None
    found = load_target(target, allowed)
    found.bind_params(given)  # every parameter known, none missing: the firing would fail otherwise
    return PipelineAction(target=target, params=given, executor=check_executor(executor))
