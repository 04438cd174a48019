"""``RemoteMonitoringService``: the ``MonitoringBackend`` over a Steward server's REST API
(``api/monitoring.py``).

Same signatures, return types and errors as the embedded ``MonitoringService``, with one difference a
caller can see: the server never sends a channel's secrets, so a ``Monitor`` read remotely shows each
webhook as its scheme and host (``https://hooks.slack.com/…``) and each header value as ``***``; the
server's stored monitor keeps them and delivers with them. Names go into URL paths, so they are checked
here first with the service's own function and message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from steward.client.http import HttpClient, segment
from steward.core.names import validate_name
from steward.errors import InvalidInput, NotFound
from steward.monitoring.models import Action, Alert, Channel, DriftReport, Monitor
from steward.monitoring.runs import MonitoringReport, MonitorRun
from steward.monitoring.specs import parse_reference

RUN_TIMEOUT_S = 300.0
"""How long a run may take to answer: it reads a whole window, then delivers each alert it opens with
retries (a dead webhook alone costs its timeouts and backoffs), all before the server answers."""


def _monitor(name: str) -> str:
    return f"/monitors/{segment(validate_name(name, 'monitor'))}"


def _moment(now: datetime | None) -> str | None:
    if now is None:
        return None
    if not isinstance(now, datetime):
        raise InvalidInput("now must be a datetime", {"field": "now"})
    return now.isoformat()


def _plain(value: Any) -> Any:
    """``value`` as JSON: channels and actions by their JSON form, times in ISO 8601; anything else as it
    is, for the server to judge (and refuse with the field named) exactly as the service does."""
    if isinstance(value, Channel | Action):
        return value.to_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class RemoteMonitoringService:
    """Monitors, their runs, alerts and reports over HTTP: what ``steward.connect("http://…")`` uses.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

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
        """Create a monitor of ``endpoint`` on the server (see ``MonitoringService.create_monitor``).

        Raises:
            InvalidInput: Naming the field at fault (a rule names the part that is wrong).
            NotFound: The reference dataset or version does not exist.
            AlreadyExists: The project has a monitor of that name.
        """
        body = {
            "name": name,
            "endpoint": endpoint,
            "rules": _plain(rules),
            "window": window,
            "schedule": schedule,
            "reference": _plain(reference),
            "channels": _plain(channels),
            "actions": _plain(actions),
            "cooldown": cooldown,
        }
        return Monitor.from_json(self.http.json("POST", "/monitors", body))

    def get_monitor(self, name: str) -> Monitor:
        """Return one monitor (its channels' secrets masked).

        Raises:
            NotFound: There is no monitor called ``name`` in the project.
        """
        return Monitor.from_json(self.http.json("GET", _monitor(name)))

    def list_monitors(self) -> list[Monitor]:
        """Return the project's monitors, by name."""
        return [Monitor.from_json(m) for m in self.http.json("GET", "/monitors")["monitors"]]

    def delete_monitor(self, name: str) -> None:
        """Delete a monitor and its alerts.

        Raises:
            NotFound: There is no such monitor.
        """
        self.http.request("DELETE", _monitor(name))

    def set_enabled(self, name: str, enabled: bool) -> Monitor:
        """Switch a monitor on or off.

        Raises:
            InvalidInput: ``enabled`` is not a boolean.
            NotFound: There is no such monitor.
        """
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled must be true or false", {"field": "enabled"})
        path = f"{_monitor(name)}/{'enable' if enabled else 'disable'}"
        return Monitor.from_json(self.http.json("POST", path))

    def run_monitor(self, name: str, *, now: datetime | None = None) -> MonitorRun:
        """Run a monitor once on the server, over the window ending ``now`` (its alerts are delivered from
        there); waits up to :data:`RUN_TIMEOUT_S` for the answer.

        Raises:
            NotFound: There is no such monitor.
            InvalidInput: ``now`` is not a datetime.
        """
        path = f"{_monitor(name)}/run"
        response = self.http.request("POST", path, json={"now": _moment(now)}, timeout=RUN_TIMEOUT_S)
        return MonitorRun.from_json(orjson.loads(response.content))

    # -- alerts -------------------------------------------------------------------------------------

    def list_alerts(self, monitor: str | None = None, state: str | None = None) -> list[Alert]:
        """Return the project's alerts (of one monitor, in one state), most recent first.

        Raises:
            InvalidInput: For a state other than ``firing`` or ``resolved``.
            NotFound: There is no such monitor.
        """
        params = {k: v for k, v in (("monitor", monitor), ("state", state)) if v is not None}
        return [Alert.from_json(a) for a in self.http.json("GET", "/alerts", params=params)["alerts"]]

    def get_alert(self, alert_id: str) -> Alert:
        """Return one alert.

        Raises:
            NotFound: There is no alert of that id in the project.
        """
        if not alert_id:  # an empty path segment would name the list instead
            raise NotFound(f"alert {alert_id!r} not found", {"field": "alert"})
        return Alert.from_json(self.http.json("GET", f"/alerts/{segment(str(alert_id))}"))

    # -- reports ------------------------------------------------------------------------------------

    def report(
        self,
        endpoint: str,
        *,
        window: str | int = "24h",
        reference: Mapping[str, Any] | str | None = None,
        now: datetime | None = None,
        attribute: str | None = None,
    ) -> MonitoringReport:
        """Everything about ``endpoint`` over one window, gathered on the server without evaluating rules
        (see ``MonitoringService.report``).

        Raises:
            InvalidInput: For a bad name, window, reference or time.
            NotFound: The reference dataset or version does not exist.
        """
        params = _report_params(endpoint, window, reference, now, attribute)
        return MonitoringReport.from_json(self.http.json("GET", "/monitoring/report", params=params))

    def report_html(
        self,
        endpoint: str,
        *,
        window: str | int = "24h",
        reference: Mapping[str, Any] | str | None = None,
        now: datetime | None = None,
        attribute: str | None = None,
    ) -> str:
        """The same report as a self-contained HTML page, rendered by the server.

        Raises:
            InvalidInput: As for :meth:`report`, or a server that cannot render HTML.
        """
        params = _report_params(endpoint, window, reference, now, attribute)
        params["format"] = "html"
        return self.http.request("GET", "/monitoring/report", params=params).text

    def dataset_drift(
        self, reference: str, current: str, *, columns: Sequence[str] | None = None
    ) -> DriftReport:
        """Drift between two dataset versions, computed on the server.

        Raises:
            InvalidInput: A malformed version or an unknown column.
            NotFound: A dataset or version that does not exist.
        """
        params: dict[str, Any] = {"reference": reference, "current": current}
        if columns:
            params["columns"] = list(columns)
        return DriftReport.from_json(self.http.json("GET", "/monitoring/drift", params=params))


def _report_params(
    endpoint: str,
    window: str | int,
    reference: Mapping[str, Any] | str | None,
    now: datetime | None,
    attribute: str | None,
) -> dict[str, str]:
    """The query of a report, each part checked here as the service checks it (the service's order)."""
    params = {"endpoint": validate_name(endpoint, "endpoint")}
    if isinstance(window, bool) or not isinstance(window, int | str):
        raise InvalidInput("window must be a duration such as '15m', '24h' or 900", {"field": "window"})
    params["window"] = str(window)
    moment = _moment(now)
    if moment is not None:
        params["now"] = moment
    if attribute is not None:
        if not isinstance(attribute, str):
            raise InvalidInput("attribute must be the name of an input column", {"field": "attribute"})
        params["attribute"] = attribute
    return params | _reference_params(reference)


def _reference_params(reference: Mapping[str, Any] | str | None) -> dict[str, str]:
    """The query parameters naming ``reference`` (checked here as the service checks it)."""
    spec = parse_reference(reference)
    if spec is None:
        return {}
    if "dataset" in spec:
        version = spec["version"]
        return {"reference": spec["dataset"] if version is None else f"{spec['dataset']}@{version}"}
    return {"reference_start": spec["window_start"], "reference_end": spec["window_end"]}
