"""The scheduler: one pass (``tick``) fires every trigger and monitor that is due, exactly once.

Several schedulers may run against one database. For each due trigger a scheduler:

1. takes the trigger's **lease** (a ``scheduler_leases`` row named by the trigger's id, with a holder and
   an expiry, renewed while the action runs): while one scheduler runs a trigger's action, no other
   starts that trigger again, however slow the action. A lease whose holder died expires, and the next
   holder marks the dead holder's firing ``abandoned``;
2. **claims the firing**: in one transaction it re-reads the trigger, computes the due time from stored
   facts alone, INSERTs ``(trigger id, due time)`` into ``trigger_firings`` and moves the trigger on
   (``next_due_at``, ``cursor``). The primary key is the guarantee: a scheduler that races for the same
   due time gets a duplicate key and knows another one fired it;
3. runs the action (``automation.actions``), records its outcome on the firing and audits it with its
   cause, and gives the lease up.

A failing action is a ``failed`` firing; it never stops the pass or the loop. Monitors are fired the same
way, through a ``monitor`` trigger the scheduler keeps for each (id: the monitor's): the monitor runs
(``MonitoringService.run_monitor``) and each alert it newly fired runs the monitor's actions.

The scheduler acts as its own identity (the local user by default, as every embedded command does) in
each trigger's project.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.automation import repository as repo
from steward.automation.actions import record, run_alert_actions, run_pipeline, trigger_cause
from steward.automation.models import ActionResult, Firing, Outcome, Trigger, TriggerKind
from steward.automation.service import AutomationService
from steward.automation.triggers import (
    Schedule,
    arrival_due_ms,
    arrived,
    monitor_due,
    parse_cron,
    parse_interval,
    parse_schedule,
)
from steward.core.ids import new_id
from steward.core.time import from_ms, to_ms
from steward.errors import NotFound, StewardError
from steward.governance.context import Identity, acting_as, local_identity

if TYPE_CHECKING:
    from steward.data.service import DataService
    from steward.monitoring.models import Monitor
    from steward.monitoring.runs import MonitorRun
    from steward.store.platform import Platform

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0
"""How long a lease lasts unless renewed; a holder renews it every third of that while it works."""


class MonitorRunner(Protocol):
    """What the scheduler needs of the monitoring service (``MonitoringService`` provides it)."""

    def list_monitors(self) -> list[Monitor]:
        """The acting project's monitors."""
        ...

    def run_monitor(self, name: str, *, now: datetime | None = None) -> MonitorRun:
        """Run one monitor now; ``opened`` lists the alerts it fired."""
        ...

    def record_action(self, alert_id: str, action: dict[str, Any]) -> Any:
        """Add an action's ``{"kind", "outcome", "details"}`` to an alert."""
        ...


MonitoringFactory = Callable[["Platform"], "MonitorRunner | None"]


def default_monitoring(platform: Platform) -> MonitorRunner | None:
    """The monitoring service on ``platform`` (None where this installation has none)."""
    try:
        from steward.monitoring.service import MonitoringService
    except ImportError:
        return None
    found: MonitorRunner = MonitoringService(platform)
    return found


def default_holder() -> str:
    """A name for this scheduler: host, process and a random part (two in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"


@dataclass
class SchedulerStatus:
    """What a scheduler has done since it started (the CLI's status line).

    Attributes:
        holder: Its lease holder name.
        ticks: Passes made.
        fired: Firings it made.
        failed: Of those, the failed ones.
        last_tick_at: When its last pass began.
        last_error: The last error that cut a pass short (the database was away …), if any.
        watching: Triggers and monitors it looked at in its last pass.
    """

    holder: str
    ticks: int = 0
    fired: int = 0
    failed: int = 0
    last_tick_at: datetime | None = None
    last_error: str = ""
    watching: int = 0


@dataclass(frozen=True)
class _Claim:
    trigger: Trigger
    due_ms: int
    fired_ms: int
    cause: Mapping[str, Any]


Decision = tuple[int, dict[str, Any], dict[str, Any]]
"""A claim's decision: the due time (the firing's key), trigger columns to set, facts of the cause."""
Plan = Callable[[Connection, Row[Any], int], "Decision | None"]
"""Inside the claim: the trigger's row (locked) and now → its ``Decision``, or None if it is not due
after all."""


def _schedule(trigger: Trigger) -> Schedule:
    return parse_cron(trigger.spec) if trigger.kind is TriggerKind.CRON else parse_interval(trigger.spec)


class Scheduler:
    """Fires due triggers and monitors; many may run at once against one database.

    Args:
        platform: The settings and stores.
        holder: This scheduler's name in leases and firings (host:pid:random by default).
        interval: Seconds between passes in ``run_forever``.
        clock: Returns the current time (UTC, aware); tests pass their own.
        lease_s: How long a lease lasts without renewal.
        identity: Who it acts as (the local user by default).
        monitoring: Makes the monitoring service for a platform (None: do not run monitors).
    """

    def __init__(
        self,
        platform: Platform,
        *,
        holder: str | None = None,
        interval: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        identity: Identity | None = None,
        monitoring: MonitoringFactory | None = default_monitoring,
    ) -> None:
        self.platform = platform
        self.holder = holder or default_holder()
        self.interval = interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lease_ms = int(lease_s * 1000)
        self.identity = identity or local_identity()
        self.status = SchedulerStatus(self.holder)
        self._monitoring = monitoring
        self._db = platform.metadata
        self._data: DataService | None = None
        self._automation = AutomationService(platform)

    # -- the loop ------------------------------------------------------------------------------------

    def run_forever(
        self, stop: threading.Event, on_tick: Callable[[list[Firing]], None] | None = None
    ) -> None:
        """Make a pass every ``interval`` seconds until ``stop`` is set (the pass under way finishes).

        Args:
            stop: Set it to stop.
            on_tick: Called after each pass with the firings it made.
        """
        while not stop.is_set():
            try:
                fired = self.tick()
            except Exception as exc:  # the database away for a moment: say so, try again next time
                log.exception("scheduler pass failed")
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                fired = []
            if on_tick is not None:
                on_tick(fired)
            stop.wait(self.interval)

    def tick(self, now: datetime | None = None) -> list[Firing]:
        """One pass: fire every trigger and monitor due at ``now`` (the clock's time by default).

        Returns:
            The firings this scheduler made (others may have fired the rest).
        """
        moment = now or self.clock()
        at = to_ms(moment)
        self.status.ticks += 1
        self.status.last_tick_at = moment
        with self._db.read() as conn:
            rows = repo.candidate_rows(conn, at)
        steps = [(r.project, r.name, self._trigger_step(r, moment)) for r in rows]
        fired = self._run(steps)
        try:
            monitors = self._monitors()
        except Exception as exc:  # the monitoring service failing must not stop the triggers' firings
            log.exception("scheduler: listing monitors failed")
            self.status.last_error = f"monitors: {type(exc).__name__}: {exc}"
            monitors = []
        fired += self._run([(p, m.name, self._monitor_step(s, m, moment)) for p, s, m in monitors])
        self.status.watching = len(steps) + len(monitors)
        return fired

    def _run(self, steps: list[tuple[str, str, Callable[[], Firing | None]]]) -> list[Firing]:
        fired = []
        for project, name, step in steps:
            try:
                with acting_as(self.identity, project):
                    firing = step()
            except Exception as exc:  # one bad trigger must not keep the others from firing
                log.exception("scheduler: %s in project %s failed", name, project)
                self.status.last_error = f"{name}: {type(exc).__name__}: {exc}"
                continue
            if firing is not None:
                fired.append(firing)
                self.status.fired += 1
                self.status.failed += firing.outcome is not Outcome.SUCCEEDED
        return fired

    # -- triggers ------------------------------------------------------------------------------------

    def _trigger_step(self, row: Row[Any], now: datetime) -> Callable[[], Firing | None]:
        trigger = repo.to_trigger(row)

        def act(claim: _Claim) -> ActionResult:
            action = claim.trigger.action
            assert action is not None
            allowed = self.platform.settings.automation_packages
            return run_pipeline(action.target, action.params, action.executor, claim.cause, allowed=allowed)

        if trigger.kind.timed:
            return lambda: self._fire(trigger, now, self._timed_plan(trigger), act)

        def step() -> Firing | None:
            latest = self._latest_version(trigger.spec)
            if latest is None or arrived(latest[0], trigger.cursor) is None:
                return None  # nothing new: no lease taken, no write
            return self._fire(trigger, now, self._arrival_plan(trigger, *latest), act)

        return step

    def _timed_plan(self, trigger: Trigger) -> Plan:
        schedule = _schedule(trigger)

        def plan(conn: Connection, row: Row[Any], at: int) -> Decision | None:
            if row.next_due_at is None or row.next_due_at > at:
                return None
            following = to_ms(schedule.next_after(from_ms(at)))  # missed times coalesce into this one
            return int(row.next_due_at), {"next_due_at": following}, {"schedule": schedule.text}

        return plan

    def _arrival_plan(self, trigger: Trigger, number: int, published_ms: int) -> Plan:
        def plan(conn: Connection, row: Row[Any], at: int) -> Decision | None:
            version = arrived(number, row.cursor)
            if version is None:
                return None
            due = arrival_due_ms(published_ms, repo.last_due(conn, row.id))
            facts = {"dataset": trigger.spec, "version": version, "previous": int(row.cursor or 0)}
            return due, {"cursor": str(version)}, facts

        return plan

    def _latest_version(self, dataset: str) -> tuple[int, int] | None:
        if self._data is None:
            from steward.data.service import DataService

            self._data = DataService(self.platform)
        try:
            found = self._data.get_version(dataset)
        except NotFound:
            return None  # no version yet, or the dataset is gone
        return found.number, to_ms(found.created_at)

    # -- monitors ------------------------------------------------------------------------------------

    def _monitors(self) -> list[tuple[str, MonitorRunner, Monitor]]:
        """Every project's enabled monitors; the triggers of monitors deleted since are dropped."""
        if self._monitoring is None:
            return []
        with self._db.read() as conn:  # the triggers first: any monitor they follow is listed after
            kept = repo.monitor_trigger_rows(conn)
            projects = set(repo.monitor_projects(conn)) | {r.project for r in kept}
        found = []
        for project in sorted(projects):
            with acting_as(self.identity, project):
                service = self._monitoring(self.platform)
                if service is None:
                    return []
                listed = service.list_monitors()
                known = {m.id for m in listed}
                for row in kept:
                    if row.project == project and repo.monitor_of(row) not in known:
                        self._automation.forget_monitor(row.id)
                found += [(project, service, m) for m in listed if m.enabled]
        return found

    def _monitor_step(
        self, service: MonitorRunner, monitor: Monitor, now: datetime
    ) -> Callable[[], Firing | None]:
        def step() -> Firing | None:
            try:
                schedule = parse_schedule(monitor.schedule)
            except StewardError as exc:
                log.warning("monitor %s has a bad schedule: %s", monitor.name, exc.message)
                return None
            first = monitor_due(schedule, monitor.last_run_at, monitor.created_at, None)
            trigger = self._automation.follow_monitor(monitor, schedule.text, first, now)
            with self._db.read() as conn:
                last = repo.last_due(conn, trigger.id)
            if monitor_due(schedule, monitor.last_run_at, monitor.created_at, from_ms(last)) > now:
                return None
            plan = self._monitor_plan(monitor, schedule)
            return self._fire(trigger, now, plan, lambda claim: self._run_monitor(service, monitor, now))

        return step

    def _monitor_plan(self, monitor: Monitor, schedule: Schedule) -> Plan:
        def plan(conn: Connection, row: Row[Any], at: int) -> Decision | None:
            last_run = from_ms(repo.monitor_last_run(conn, monitor.id))
            last = from_ms(repo.last_due(conn, row.id))
            due = to_ms(monitor_due(schedule, last_run, monitor.created_at, last))
            if due > at:
                return None
            following = to_ms(schedule.next_after(from_ms(at)))
            return due, {"next_due_at": following}, {"monitor": monitor.name, "endpoint": monitor.endpoint}

        return plan

    def _run_monitor(self, service: MonitorRunner, monitor: Monitor, now: datetime) -> ActionResult:
        facts: dict[str, Any] = {"monitor": monitor.name, "endpoint": monitor.endpoint}
        try:
            run = service.run_monitor(monitor.name, now=now)
        except StewardError as exc:
            return ActionResult("monitor", Outcome.FAILED, {**facts, "error": exc.message})
        alerts = []
        ok = True
        for alert in run.opened:  # new alerts only: a repeat counted on an open one acts no more
            results = run_alert_actions(self.platform, monitor, alert, service.record_action)
            ok = ok and all(r.succeeded for r in results)
            alerts.append({"alert": alert.id, "rule": alert.rule, "actions": [r.to_json() for r in results]})
        facts["fired"] = alerts
        return ActionResult("monitor", Outcome.SUCCEEDED if ok else Outcome.FAILED, facts)

    # -- the firing protocol -------------------------------------------------------------------------

    def _fire(
        self, trigger: Trigger, now: datetime, plan: Plan, act: Callable[[_Claim], ActionResult]
    ) -> Firing | None:
        at = to_ms(now)
        if not self._take_lease(trigger, at):
            return None  # another scheduler is running it
        try:
            claim = self._claim(trigger.id, at, plan)
            if claim is None:
                return None
            kind = "monitor" if trigger.kind is TriggerKind.MONITOR else "pipeline"
            try:
                with self._renewing(trigger.id, at):
                    result = act(claim)
            except Exception as exc:  # an action's bug is a failed firing, not a dead scheduler
                log.exception("action of trigger %s failed", trigger.name)
                result = ActionResult(kind, Outcome.FAILED, {"error": f"{type(exc).__name__}: {exc}"})
            except BaseException:
                stopped = {"error": "the scheduler was stopped"}
                self._finish(claim, ActionResult(kind, Outcome.FAILED, stopped))
                raise
            return self._finish(claim, result)
        finally:
            self._release(trigger.id)

    def _claim(self, trigger_id: str, at: int, plan: Plan) -> _Claim | None:
        try:
            with self._db.transaction() as conn:
                row = repo.trigger_by_id(conn, trigger_id, lock=True)
                if row is None or not row.enabled:
                    return None
                decided = plan(conn, row, at)
                if decided is None:
                    return None
                due, columns, facts = decided
                trigger = repo.to_trigger(row)
                cause = trigger_cause(trigger, due, **facts)
                repo.insert_firing(
                    conn,
                    {
                        "trigger_id": trigger_id,
                        "due_at": due,
                        "project": row.project,
                        "fired_at": at,
                        "fired_by": self.holder,
                        "outcome": Outcome.RUNNING.value,
                        "details": _json({"cause": cause}),
                    },
                )
                repo.update_trigger(conn, trigger_id, last_fired_at=at, **columns)
        except SQLIntegrityError:
            return None  # the primary key says another scheduler fired this due time
        return _Claim(trigger, due, at, cause)

    def _finish(self, claim: _Claim, result: ActionResult) -> Firing:
        details = {"cause": dict(claim.cause), "result": result.to_json()}
        with self._db.transaction() as conn:
            repo.finish_firing(conn, claim.trigger.id, claim.due_ms, result.outcome, details)
            record(self.platform, conn, result, claim.cause)
        t = claim.trigger
        return Firing(
            t.id, t.name, t.project, from_ms(claim.due_ms), from_ms(claim.fired_ms), self.holder,
            result.outcome, details,
        )  # fmt: skip

    # -- leases --------------------------------------------------------------------------------------

    def _take_lease(self, trigger: Trigger, at: int) -> bool:
        try:
            with self._db.transaction() as conn:
                taken, previous = repo.acquire_lease(conn, trigger.id, self.holder, at, at + self.lease_ms)
                if previous is not None:
                    lost = repo.abandon_firings(conn, trigger.id, previous)
                    facts = {"previous_holder": previous, "holder": self.holder, "abandoned": lost}
                    self._automation.record(conn, "trigger.take_over", trigger.name, facts)
                    log.warning("took over trigger %s from %s (its lease expired)", trigger.name, previous)
        except SQLIntegrityError:
            return False  # another scheduler inserted the lease at the same moment
        return taken

    @contextmanager
    def _renewing(self, name: str, at: int) -> Iterator[None]:
        """Renew the lease every third of its length while the block runs."""
        done = threading.Event()
        started = time.monotonic()

        def renew() -> None:
            while not done.wait(self.lease_ms / 3000):
                expires = at + int((time.monotonic() - started) * 1000) + self.lease_ms
                try:
                    with self._db.transaction() as conn:
                        if not repo.renew_lease(conn, name, self.holder, expires):
                            log.warning("lost the lease of trigger %s while its action runs", name)
                except StewardError as exc:
                    log.warning("could not renew the lease of trigger %s: %s", name, exc.message)

        thread = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _release(self, name: str) -> None:
        try:
            with self._db.transaction() as conn:
                repo.release_lease(conn, name, self.holder)
        except StewardError as exc:  # it expires by itself
            log.warning("could not release the lease of trigger %s: %s", name, exc.message)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, default=str)
