"""``MonitoringService``: monitors of endpoints, their runs, the alerts their rules raise and where those
alerts go.

A run (:meth:`MonitoringService.run_monitor`) gathers the window's facts (``steward.monitoring.gather``),
then, in one transaction under the monitor's lock, evaluates every rule and opens, counts or resolves
its alerts (``steward.monitoring.evaluate`` documents the exact semantics of dedupe, ``for N windows``
and the cooldown). Alerts it opened are then delivered to the monitor's channels with retries
(``steward.monitoring.channels``); a channel that gives up marks the alert undelivered, and the alert
stays. Every change — a monitor created, enabled, disabled or deleted, an alert opened, delivered,
resolved, an action recorded — is an audit entry in the same transaction (resource kind ``monitor``).

Writes need ``monitoring:write`` in the project; reads are open to the service's callers (the API
checks ``monitoring:read``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import from_ms, now_ms, to_ms
from steward.errors import AlreadyExists, InvalidInput, NotFound
from steward.governance.context import current_identity
from steward.monitoring import repository as repo
from steward.monitoring.channels import deliver, notifier_for
from steward.monitoring.evaluate import deliveries_json, judge, record
from steward.monitoring.gather import Gatherer
from steward.monitoring.models import Alert, DriftOptions, DriftReport, Monitor, Notification
from steward.monitoring.rules import FAIRNESS_METRICS, check_rules, parse_rule, parse_seconds
from steward.monitoring.runs import MonitoringReport, MonitorRun
from steward.monitoring.specs import as_action, as_channel, check_schedule, many, parse_reference

if TYPE_CHECKING:
    from steward.data.service import DataService
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform

MAX_WINDOW_S = 90 * 86_400
"""The longest monitor window (90 days)."""
MAX_ACTIONS = 100
"""The most actions recorded on one alert."""


def _window(window: object) -> int:
    seconds = parse_seconds(window, "window", minimum=60)
    if seconds > MAX_WINDOW_S:
        raise InvalidInput(f"window must be at most {MAX_WINDOW_S // 86_400} days", {"field": "window"})
    return seconds


class MonitoringService:
    """Monitors, their runs and their alerts (embedded mode).

    Args:
        platform: The settings and stores to use.
        registry: The registry served versions are read from (one is made if omitted).
        data: The data service reference datasets are read through (one is made if omitted).
        attempts: Delivery attempts per channel.
        backoff_s: The wait after a channel's first failed attempt (doubling after each further one).
        sleep: How to wait between attempts.
    """

    def __init__(
        self,
        platform: Platform,
        registry: RegistryService | None = None,
        data: DataService | None = None,
        *,
        attempts: int = 4,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.platform = platform
        self._db = platform.metadata
        self._registry = registry
        self._data = data
        self._gatherer: Gatherer | None = None
        self.attempts, self.backoff_s, self._sleep = attempts, backoff_s, sleep

    @property
    def registry(self) -> RegistryService:
        """The registry served versions come from."""
        if self._registry is None:
            from steward.registry.service import RegistryService

            self._registry = RegistryService(self.platform)
        return self._registry

    @property
    def data(self) -> DataService:
        """The data service reference datasets are read through."""
        if self._data is None:
            from steward.data.service import DataService

            self._data = DataService(self.platform)
        return self._data

    @property
    def gatherer(self) -> Gatherer:
        """What reads an endpoint's window (the log, the reference, labels, serving statistics)."""
        if self._gatherer is None:
            self._gatherer = Gatherer(self.platform, self.registry, self.data)
        return self._gatherer

    def _may_write(self) -> None:
        current_identity().require("monitoring:write", self.platform.project)

    def _row(self, conn: Connection, name: str, *, lock: bool = False) -> Row[Any]:
        validate_name(name, "monitor")
        row = repo.find_monitor(conn, self.platform.project, name, lock=lock)
        if row is None:
            raise NotFound(f"monitor {name!r} not found", {"field": "monitor"})
        return row

    # -- monitors -----------------------------------------------------------------------------------

    def create_monitor(
        self,
        name: str,
        endpoint: str,
        *,
        rules: Sequence[str],
        window: str | int = "24h",
        schedule: str | int = "*/15 * * * *",
        reference: Mapping[str, Any] | str | None = None,
        channels: Sequence[Any] = (),
        actions: Sequence[Any] = (),
        cooldown: str | int = "1h",
    ) -> Monitor:
        """Create a monitor of ``endpoint``.

        Args:
            name: The monitor's name.
            endpoint: The endpoint whose prediction log and serving statistics it reads.
            rules: Its alert rules (``["drift_share > 0.3", "accuracy < 0.85 for 3 windows"]``).
            window: The window each run looks back over (``"24h"``, ``"30m"``, seconds).
            schedule: A cron expression or an interval in seconds (the automation layer runs it).
            reference: ``"dataset@3"``, ``{"dataset", "version"}`` or ``{"window_start", "window_end"}``
                of the endpoint's log; None: the served version's training dataset. A dataset without a
                version is pinned to its latest version now.
            channels: Webhook URLs, :class:`~steward.monitoring.models.Channel` or their JSON form.
            actions: :class:`~steward.monitoring.models.Action` or their JSON form (retrain, rollback).
            cooldown: After an alert resolves, how long a new breach of its rule is only counted.

        Raises:
            InvalidInput: Naming the field at fault: a bad name, rule (and its part), schedule, duration,
                reference, channel or action.
            NotFound: The reference dataset or version does not exist.
            AlreadyExists: The project has a monitor of that name.
        """
        self._may_write()
        validate_name(name, "monitor")
        validate_name(endpoint, "endpoint")
        texts = check_rules(list(rules) if isinstance(rules, list | tuple) else rules)
        window_s = _window(window)
        channel_list = [as_channel(c) for c in many(channels, "channels")]
        spec: dict[str, Any] = {
            "window_s": window_s,
            "schedule": check_schedule(schedule),
            "rules": list(texts),
            "reference": self._pinned(parse_reference(reference)),
            "channels": [c.to_json() for c in channel_list],
            "actions": [as_action(a).to_json() for a in many(actions, "actions")],
            "cooldown_s": parse_seconds(cooldown, "cooldown", minimum=0),
        }
        values = {
            "id": new_id(),
            "project": self.platform.project,
            "name": name,
            "endpoint": endpoint,
            "spec": json.dumps(spec),
            "enabled": 1,
            "created_at": now_ms(),
            "created_by": self.platform.actor,
            "last_run_at": None,
        }
        facts = {**spec, "endpoint": endpoint, "channels": [notifier_for(c).name for c in channel_list]}
        try:
            with self._db.transaction() as conn:
                repo.insert_monitor(conn, values)
                record(self.platform, conn, "monitor.create", name, facts)
        except SQLIntegrityError:
            raise AlreadyExists(f"monitor {name!r} already exists", {"field": "name"}) from None
        return self.get_monitor(name)

    def _pinned(self, reference: dict[str, Any] | None) -> dict[str, Any] | None:
        if reference is None or "dataset" not in reference:
            return reference
        found = self.data.get_version(reference["dataset"], reference["version"])
        return {"dataset": found.dataset, "version": found.number}

    def get_monitor(self, name: str) -> Monitor:
        """Return one monitor.

        Raises:
            NotFound: There is no monitor called ``name`` in the project.
        """
        with self._db.read() as conn:
            return repo.to_monitor(self._row(conn, name))

    def list_monitors(self) -> list[Monitor]:
        """Return the project's monitors, by name."""
        with self._db.read() as conn:
            return [repo.to_monitor(r) for r in repo.monitor_rows(conn, self.platform.project)]

    def delete_monitor(self, name: str) -> None:
        """Delete a monitor with its alerts (the audit trail keeps what happened).

        Raises:
            NotFound: There is no such monitor.
        """
        self._may_write()
        with self._db.transaction() as conn:
            row = self._row(conn, name, lock=True)
            gone = repo.delete_monitor(conn, self.platform.project, row.id)
            record(self.platform, conn, "monitor.delete", name, {"endpoint": row.endpoint, "alerts": gone})

    def set_enabled(self, name: str, enabled: bool) -> Monitor:
        """Switch a monitor on or off (the scheduler runs enabled monitors only).

        Raises:
            InvalidInput: ``enabled`` is not a boolean.
            NotFound: There is no such monitor.
        """
        self._may_write()
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled must be true or false", {"field": "enabled"})
        with self._db.transaction() as conn:
            row = self._row(conn, name, lock=True)
            if bool(row.enabled) != enabled:
                repo.set_enabled(conn, self.platform.project, row.id, enabled)
                record(self.platform, conn, f"monitor.{'enable' if enabled else 'disable'}", name, {})
        return self.get_monitor(name)

    # -- runs ---------------------------------------------------------------------------------------

    def run_monitor(self, name: str, *, now: datetime | None = None) -> MonitorRun:
        """Run a monitor once: gather its window, evaluate its rules, open, count or resolve alerts, and
        deliver the alerts it opened.

        Args:
            name: The monitor.
            now: The end of the window (and the alerts' time); the current time by default.

        Raises:
            NotFound: There is no such monitor.
            InvalidInput: ``now`` is not a datetime.
        """
        self._may_write()
        monitor = self.get_monitor(name)
        if now is not None and not isinstance(now, datetime):
            raise InvalidInput("now must be a datetime", {"field": "now"})
        end = to_ms(now) if now is not None else now_ms()
        parsed = [parse_rule(t) for t in monitor.rules]
        attributes = sorted({r.argument for r in parsed if r.metric in FAIRNESS_METRICS and r.argument})
        report = self.gatherer.gather(monitor.endpoint, monitor.window_s, end, monitor.reference, attributes)
        span = f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
        with self._db.transaction() as conn:
            row = self._row(conn, name, lock=True)
            if row.id != monitor.id:
                raise NotFound(f"monitor {name!r} was replaced while it ran", {"field": "monitor"})
            judged = judge(self.platform, conn, monitor, report.facts, end, span)
            repo.set_last_run(conn, self.platform.project, monitor.id, end)
        opened = [self._deliver(monitor, self.get_alert(a)) for a in judged.opened]
        return MonitorRun(
            monitor=monitor.name,
            report=report,
            rules=tuple(judged.outcomes),
            opened=tuple(opened),
            updated=tuple(self.get_alert(a) for a in judged.updated),
            resolved=tuple(self.get_alert(a) for a in judged.resolved),
        )

    def _deliver(self, monitor: Monitor, alert: Alert) -> Alert:
        if not monitor.channels:
            return alert
        notification = Notification(
            alert, f"{monitor.name}: {alert.rule} on {monitor.endpoint}", alert.message or alert.rule
        )
        notifiers = [notifier_for(c) for c in monitor.channels]
        deliveries = deliver(
            notification, notifiers, attempts=self.attempts, backoff_s=self.backoff_s, sleep=self._sleep
        )
        ok = all(d.ok for d in deliveries)
        with self._db.transaction() as conn:
            repo.update_alert(
                conn,
                self.platform.project,
                alert.id,
                deliveries=deliveries_json(deliveries),
                delivered=int(ok),
            )
            details = {"alert": alert.id, "rule": alert.rule, "deliveries": [d.to_json() for d in deliveries]}
            record(
                self.platform, conn, "alert.deliver", monitor.name, details, outcome="ok" if ok else "failed"
            )
        return self.get_alert(alert.id)

    def report(
        self,
        endpoint: str,
        *,
        window: str | int = "24h",
        reference: Mapping[str, Any] | str | None = None,
        now: datetime | None = None,
        attribute: str | None = None,
        options: DriftOptions | None = None,
    ) -> MonitoringReport:
        """Everything about ``endpoint`` over one window, without evaluating rules: drift of its inputs
        and outputs against the reference, performance on late labels, fairness over ``attribute``,
        operations, and the reference and current summaries (for plots).

        Args:
            endpoint: The endpoint.
            window: How far back from ``now``.
            reference: As for :meth:`create_monitor` (None: the served version's training dataset).
            now: The window's end; the current time by default.
            attribute: A sensitive input column to report fairness over.
            options: How drift is judged.

        Raises:
            InvalidInput: For a bad name, window, reference or time.
            NotFound: The reference dataset or version does not exist.
        """
        validate_name(endpoint, "endpoint")
        window_s = _window(window)
        if now is not None and not isinstance(now, datetime):
            raise InvalidInput("now must be a datetime", {"field": "now"})
        if attribute is not None and (not isinstance(attribute, str) or not attribute):
            raise InvalidInput("attribute must be the name of an input column", {"field": "attribute"})
        spec = self._pinned(parse_reference(reference))
        end = to_ms(now) if now is not None else now_ms()
        return self.gatherer.gather(endpoint, window_s, end, spec, [attribute] if attribute else (), options)

    def dataset_drift(
        self,
        reference: str,
        current: str,
        *,
        columns: Sequence[str] | None = None,
        options: DriftOptions | None = None,
    ) -> DriftReport:
        """Drift between two dataset versions (``"name@1"`` and ``"name@2"``, or of two datasets), each read
        once through the data layer (so its PII columns need ``data:read_pii``, audited).

        Args:
            reference: The reference version: ``"name"`` (its latest) or ``"name@3"``.
            current: The version compared with it.
            columns: Only these columns (every column both share by default).
            options: How drift is judged (``DriftOptions``; its ``columns`` are overridden by ``columns``).

        Raises:
            InvalidInput: A malformed reference or an unknown column.
            NotFound: A dataset or version that does not exist.
        """
        from steward.monitoring.drift import drift

        sides = []
        for given, field_name in ((reference, "reference"), (current, "current")):
            try:
                spec = parse_reference(given) if isinstance(given, str) else None
            except InvalidInput:
                spec = None
            if spec is None or "dataset" not in spec:
                message = f"{field_name} {given!r} is not a dataset version such as 'churn' or 'churn@3'"
                raise InvalidInput(message, {"field": field_name})
            version = self.data.get_version(spec["dataset"], spec["version"])
            sides.append(self.data.read_table(version, list(columns) if columns else None))
        chosen = replace(options or DriftOptions(), columns=list(columns) if columns else None)
        return drift(sides[0], sides[1], chosen)

    # -- alerts -------------------------------------------------------------------------------------

    def list_alerts(self, monitor: str | None = None, state: str | None = None) -> list[Alert]:
        """Return the project's alerts (of one monitor, in one state), most recent first.

        Raises:
            InvalidInput: For a state other than ``firing`` or ``resolved``.
            NotFound: There is no such monitor.
        """
        if state is not None and state not in repo.STATES:
            raise InvalidInput(f"state must be {' or '.join(repo.STATES)}, not {state!r}", {"field": "state"})
        with self._db.read() as conn:
            monitor_id = self._row(conn, monitor).id if monitor is not None else None
            return [repo.to_alert(r) for r in repo.alert_rows(conn, self.platform.project, monitor_id, state)]

    def get_alert(self, alert_id: str) -> Alert:
        """Return one alert.

        Raises:
            NotFound: There is no alert of that id in the project.
        """
        with self._db.read() as conn:
            row = repo.alert_row(conn, self.platform.project, str(alert_id))
        if row is None:
            raise NotFound(f"alert {alert_id!r} not found", {"field": "alert"})
        return repo.to_alert(row)

    def record_action(self, alert_id: str, action: Mapping[str, Any]) -> Alert:
        """Record what an alert started (the automation layer calls this after it starts a retraining
        pipeline or rolls the endpoint back): stored on the alert and audited ``alert.action``.

        Args:
            alert_id: The alert.
            action: ``{"kind", "outcome", "details"}`` (``kind`` required; JSON values); ``at`` is added.

        Raises:
            InvalidInput: ``action`` is not a JSON object with a ``kind``, or the alert holds
                :data:`MAX_ACTIONS` already.
            NotFound: There is no such alert.
        """
        self._may_write()
        if not isinstance(action, Mapping) or not isinstance(action.get("kind"), str) or not action["kind"]:
            raise InvalidInput(
                "an action is an object with a kind, such as {'kind': 'retrain'}", {"field": "action"}
            )
        entry = {"at": from_ms(now_ms()).isoformat(), **dict(action)}
        try:
            json.dumps(entry)
        except (TypeError, ValueError):
            raise InvalidInput("an action must hold JSON values only", {"field": "action"}) from None
        with self._db.transaction() as conn:
            row = repo.alert_row(conn, self.platform.project, str(alert_id))
            if row is None:
                raise NotFound(f"alert {alert_id!r} not found", {"field": "alert"})
            actions = json.loads(row.actions)
            if len(actions) >= MAX_ACTIONS:
                raise InvalidInput(
                    f"alert {alert_id} holds {MAX_ACTIONS} actions already", {"field": "action"}
                )
            repo.update_alert(conn, self.platform.project, row.id, actions=json.dumps([*actions, entry]))
            details = {"alert": row.id, "rule": row.rule, "action": entry}
            record(self.platform, conn, "alert.action", row.monitor_name, details)
        return self.get_alert(row.id)
