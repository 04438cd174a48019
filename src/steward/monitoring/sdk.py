"""The monitoring half of the SDK: ``steward.create_monitor``, ``run_monitor``, ``list_alerts``,
``monitor_report`` …

Each function calls the default connection's monitoring backend (embedded: ``MonitoringService``, or a
server's REST API), which ``steward._connect`` installs with ``set_monitoring_resolver``.

Example:
    >>> steward.create_monitor(  # doctest: +SKIP
    ...     "churn-drift", "churn", rules=["drift_share > 0.3", "accuracy < 0.85 for 3 windows"],
    ...     window="24h", channels=["https://hooks.slack.com/services/…"],
    ... )
    >>> steward.run_monitor("churn-drift").opened  # doctest: +SKIP
    (Alert(rule='drift_share > 0.3', state='firing', ...),)
    >>> steward.monitor_report("churn", window="7d").drift.drifted_columns  # doctest: +SKIP
    ['income']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from steward.errors import StewardError
from steward.monitoring.models import Alert, DriftReport, Monitor
from steward.monitoring.runs import MonitoringReport, MonitorRun


class MonitoringBackend(Protocol):
    """What the SDK calls, embedded (``MonitoringService``) or remote.

    Example:
        >>> class NoMonitors:
        ...     def list_monitors(self):
        ...         return []
        >>> NoMonitors().list_monitors()
        []
    """

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
        """Create a monitor."""
        ...

    def get_monitor(self, name: str) -> Monitor:
        """Return one monitor."""
        ...

    def list_monitors(self) -> list[Monitor]:
        """Return the project's monitors."""
        ...

    def delete_monitor(self, name: str) -> None:
        """Delete a monitor and its alerts."""
        ...

    def set_enabled(self, name: str, enabled: bool) -> Monitor:
        """Switch a monitor on or off."""
        ...

    def run_monitor(self, name: str, *, now: datetime | None = None) -> MonitorRun:
        """Run a monitor once."""
        ...

    def list_alerts(self, monitor: str | None = None, state: str | None = None) -> list[Alert]:
        """Return alerts."""
        ...

    def get_alert(self, alert_id: str) -> Alert:
        """Return one alert."""
        ...

    def report(
        self,
        endpoint: str,
        *,
        window: str | int = "24h",
        reference: Mapping[str, Any] | str | None = None,
        now: datetime | None = None,
        attribute: str | None = None,
    ) -> MonitoringReport:
        """Gather an endpoint's window without evaluating rules."""
        ...

    def dataset_drift(
        self, reference: str, current: str, *, columns: Sequence[str] | None = None
    ) -> DriftReport:
        """Drift between two dataset versions."""
        ...


MonitoringResolver = Callable[[], MonitoringBackend]
_resolver: MonitoringResolver | None = None

__all__ = [
    "MonitoringBackend",
    "create_monitor",
    "dataset_drift",
    "delete_monitor",
    "disable_monitor",
    "enable_monitor",
    "get_alert",
    "get_monitor",
    "list_alerts",
    "list_monitors",
    "monitor_report",
    "run_monitor",
    "set_monitoring_resolver",
]


def set_monitoring_resolver(resolver: MonitoringResolver) -> None:
    """Install the function that returns the monitoring backend in use."""
    global _resolver
    _resolver = resolver


def _backend() -> MonitoringBackend:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


def create_monitor(
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
    """Watch ``endpoint`` with alert ``rules`` such as ``drift_share > 0.3``, ``psi(income) > 0.2``,
    ``accuracy < 0.85 for 3 windows``, ``p99_latency_ms > 50`` or ``error_rate > 1%``.

    Args:
        name: The monitor's name.
        endpoint: The endpoint to watch.
        rules: Its alert rules (``steward.monitoring.rules`` has the grammar).
        window: How far back each run looks (``"24h"``, ``"30m"``).
        schedule: A cron expression or an interval in seconds, for the scheduler.
        reference: ``"dataset@3"``, ``{"window_start", "window_end"}`` of the log; None: the served
            version's training dataset.
        channels: Webhook URLs (Slack-compatible), or ``{"kind": "email", "target": "a@b.org",
            "options": {"host", "port", "sender"}}``.
        actions: ``{"kind": "retrain", "target": "module:pipeline"}`` or ``{"kind": "rollback"}``.
        cooldown: After an alert resolves, a new breach of its rule within this is only counted.

    Raises:
        InvalidInput: Naming the field at fault (a rule names the part that is wrong).
        AlreadyExists: The project has a monitor of that name.
    """
    return _backend().create_monitor(
        name, endpoint, rules=rules, window=window, schedule=schedule, reference=reference,
        channels=channels, actions=actions, cooldown=cooldown,
    )  # fmt: skip


def get_monitor(name: str) -> Monitor:
    """Return one monitor."""
    return _backend().get_monitor(name)


def list_monitors() -> list[Monitor]:
    """Return the project's monitors."""
    return _backend().list_monitors()


def delete_monitor(name: str) -> None:
    """Delete a monitor and its alerts (the audit trail keeps what happened)."""
    _backend().delete_monitor(name)


def enable_monitor(name: str) -> Monitor:
    """Let the scheduler run a monitor again."""
    return _backend().set_enabled(name, True)


def disable_monitor(name: str) -> Monitor:
    """Stop the scheduler running a monitor (it can still be run by hand)."""
    return _backend().set_enabled(name, False)


def run_monitor(name: str, *, now: datetime | None = None) -> MonitorRun:
    """Run a monitor now: its facts, each rule's outcome, and the alerts it opened (delivered to its
    channels), counted and resolved."""
    return _backend().run_monitor(name, now=now)


def list_alerts(monitor: str | None = None, state: str | None = None) -> list[Alert]:
    """Return alerts, most recent first (of one monitor; ``firing`` or ``resolved`` only)."""
    return _backend().list_alerts(monitor, state)


def get_alert(alert_id: str) -> Alert:
    """Return one alert with its deliveries and the actions it started."""
    return _backend().get_alert(alert_id)


def monitor_report(
    endpoint: str,
    *,
    window: str | int = "24h",
    reference: Mapping[str, Any] | str | None = None,
    now: datetime | None = None,
    attribute: str | None = None,
) -> MonitoringReport:
    """Drift (inputs and predictions), performance on late labels, fairness over ``attribute`` and
    operations of ``endpoint`` over the window ending ``now``, with the summaries behind them."""
    return _backend().report(endpoint, window=window, reference=reference, now=now, attribute=attribute)


def dataset_drift(reference: str, current: str, *, columns: Sequence[str] | None = None) -> DriftReport:
    """Drift between two dataset versions (``steward.dataset_drift("tx@1", "tx@2")``): every shared column
    with its tests, the drift share and the dataset verdict, as a monitor's report has them."""
    return _backend().dataset_drift(reference, current, columns=columns)
