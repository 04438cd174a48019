"""Monitoring routes: monitors, their runs, the alerts they raise and reports of an endpoint, under
``/api/v1``.

Each route parses its input, calls one ``MonitoringService`` method and maps the result to JSON.

=======  ===================================================  =============================  ================
Method   Path                                                 Answer                         Permission
=======  ===================================================  =============================  ================
GET      ``/monitors``                                        ``{"monitors": [...]}``        monitoring:read
POST     ``/monitors`` ``{name, endpoint, rules, window,      201 ``Monitor``                monitoring:write
         schedule, reference, channels, actions, cooldown}``
GET      ``/monitors/{name}``                                 ``Monitor``                    monitoring:read
DELETE   ``/monitors/{name}``                                 204                            monitoring:write
POST     ``/monitors/{name}/enable`` (``/disable``)           ``Monitor``                    monitoring:write
POST     ``/monitors/{name}/run`` ``{now}``                   ``MonitorRun``                 monitoring:write
GET      ``/alerts?monitor=&state=``                          ``{"alerts": [...]}``          monitoring:read
GET      ``/alerts/{alert_id}``                               ``Alert``                      monitoring:read
GET      ``/monitoring/report?endpoint=&window=&reference=``  ``MonitoringReport`` (HTML     monitoring:read
         ``&reference_start=&reference_end=&now=``            with ``format=html``)
         ``&attribute=&format=``
=======  ===================================================  =============================  ================

A monitor's channels hold secrets: a webhook URL's path is often its token (Slack's is), and header
values may be credentials. The stored monitor keeps them, for delivery; no answer carries them: a
webhook shows its scheme and host (``https://hooks.slack.com/…``), each header its name with ``***``
(:func:`public_monitor`). Alerts name channels the same way already.

The report's reference is ``reference=dataset`` or ``reference=dataset@3``, or a span of the endpoint's
own log as ``reference_start`` and ``reference_end`` (ISO 8601); neither: the served version's training
dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, Response

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.api.responses import OrjsonResponse
from steward.errors import InvalidInput
from steward.monitoring.models import Channel, Monitor
from steward.monitoring.report_html import render_html
from steward.monitoring.service import MonitoringService

router = APIRouter(prefix=API_PREFIX, tags=["monitoring"])

MASK = "***"
"""What a secret value (a header's, a password's) shows as."""
_SECRET_OPTION_WORDS = ("password", "secret", "token")
_MONITOR = "/monitors/{name}"
_HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The report page needs no script and loads nothing: a value that slipped through escaping cannot run."""


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_monitoring(request: Request) -> MonitoringService:
    """Return the app's ``MonitoringService`` (``app.state.monitoring``, made on the app's platform, registry
    and data service if absent)."""
    state = request.app.state
    if getattr(state, "monitoring", None) is None:
        state.monitoring = MonitoringService(
            state.platform, getattr(state, "registry", None), getattr(state, "data", None)
        )
    return cast(MonitoringService, state.monitoring)


Monitoring = Annotated[MonitoringService, Depends(get_monitoring)]
"""A route parameter annotated ``Monitoring`` receives the app's ``MonitoringService``."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MonitorIn(_Body):
    """Body of ``POST /monitors``: the monitor's parts stay loose so the service names a bad one (and the
    part of a rule that is wrong) exactly as it does embedded."""

    name: str
    endpoint: str
    rules: Any = Field(description="Alert rules, e.g. ['drift_share > 0.3', 'accuracy < 0.85 for 3 windows']")
    window: Any = Field("24h", description="How far back each run looks: '24h', '30m' or seconds")
    schedule: Any = Field("*/15 * * * *", description="A cron expression or an interval in seconds")
    reference: Any = Field(
        None, description="'dataset' or 'dataset@3', or {window_start, window_end} of the endpoint's log"
    )
    channels: Any = Field(default_factory=list, description="Webhook URLs or {kind, target, options}")
    actions: Any = Field(
        default_factory=list, description="{kind: retrain, target, params} or {kind: rollback}"
    )
    cooldown: Any = Field("1h", description="After an alert resolves, how long a new breach is only counted")


class RunIn(_Body):
    """Body of ``POST /monitors/{name}/run`` (optional): the end of the window, now by default."""

    now: datetime | None = None


def _json(content: Any, status_code: int = 200) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code)


# -- what answers may show ------------------------------------------------------------------------


def masked_target(url: str) -> str:
    """A webhook URL as answers show it: scheme and host (and port) only, ``https://hooks.slack.com/…``.

    The path, query, fragment and any user or password are left out: any of them may be the secret.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number: show nothing of it
        return "…"
    if not parts.scheme or not host:
        return "…"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{f':{port}' if port else ''}/…"


def public_channel(channel: Channel) -> dict[str, Any]:
    """``channel``'s JSON form without its secrets: a webhook's URL masked (:func:`masked_target`), every
    header value ``***``, any option named like a password, secret or token ``***``."""
    options: dict[str, Any] = {}
    for key, value in channel.options.items():
        if key == "headers" and isinstance(value, Mapping):
            options[key] = dict.fromkeys(value, MASK)
        elif any(word in key.lower() for word in _SECRET_OPTION_WORDS):
            options[key] = MASK
        else:
            options[key] = value
    target = masked_target(channel.target) if channel.kind == "webhook" else channel.target
    return {"kind": channel.kind, "target": target, "options": options}


def public_monitor(monitor: Monitor) -> dict[str, Any]:
    """``monitor``'s JSON form as the API answers it: its channels without their secrets."""
    return {**monitor.to_json(), "channels": [public_channel(c) for c in monitor.channels]}


# -- monitors -------------------------------------------------------------------------------------


@router.get("/monitors", dependencies=[requires("monitoring:read")], summary="List monitors")
def list_monitors(monitoring: Monitoring) -> Response:
    """Return ``{"monitors": [...]}`` by name (channels masked)."""
    return _json({"monitors": [public_monitor(m) for m in monitoring.list_monitors()]})


@router.post(
    "/monitors", dependencies=[requires("monitoring:write")], status_code=201, summary="Create a monitor"
)
def create_monitor(body: MonitorIn, monitoring: Monitoring) -> Response:
    """Create a monitor of an endpoint. Everything is checked first and nothing is stored on a refusal:
    400 naming the field (``rules`` with the part of the rule that is wrong, ``schedule``, ``window``,
    ``channels.target`` …), 404 for a reference dataset that does not exist, 409 if the name is taken."""
    found = monitoring.create_monitor(
        body.name,
        body.endpoint,
        rules=body.rules,
        window=body.window,
        schedule=body.schedule,
        reference=body.reference,
        channels=body.channels,
        actions=body.actions,
        cooldown=body.cooldown,
    )
    return _json(public_monitor(found), 201)


@router.get(_MONITOR, dependencies=[requires("monitoring:read")], summary="Get a monitor")
def get_monitor(name: str, monitoring: Monitoring) -> Response:
    """Return one monitor (channels masked); 404 if there is none."""
    return _json(public_monitor(monitoring.get_monitor(name)))


@router.delete(
    _MONITOR, dependencies=[requires("monitoring:write")], status_code=204, summary="Delete a monitor"
)
def delete_monitor(name: str, monitoring: Monitoring) -> Response:
    """Delete a monitor and its alerts (the audit trail keeps what happened)."""
    monitoring.delete_monitor(name)
    return Response(status_code=204)


@router.post(f"{_MONITOR}/enable", dependencies=[requires("monitoring:write")], summary="Enable a monitor")
def enable_monitor(name: str, monitoring: Monitoring) -> Response:
    """Let the scheduler run the monitor again; return it."""
    return _json(public_monitor(monitoring.set_enabled(name, True)))


@router.post(f"{_MONITOR}/disable", dependencies=[requires("monitoring:write")], summary="Disable a monitor")
def disable_monitor(name: str, monitoring: Monitoring) -> Response:
    """Stop the scheduler running the monitor (it can still be run by hand); return it."""
    return _json(public_monitor(monitoring.set_enabled(name, False)))


@router.post(f"{_MONITOR}/run", dependencies=[requires("monitoring:write")], summary="Run a monitor now")
def run_monitor(name: str, monitoring: Monitoring, body: RunIn | None = None) -> Response:
    """Run the monitor once over the window ending ``now``: return the ``MonitorRun`` (its facts, each
    rule's outcome, the alerts it opened, delivered to the channels, counted and resolved)."""
    return _json(monitoring.run_monitor(name, now=(body or RunIn()).now).to_json())


# -- alerts ---------------------------------------------------------------------------------------


@router.get("/alerts", dependencies=[requires("monitoring:read")], summary="List alerts")
def list_alerts(
    monitoring: Monitoring,
    monitor: Annotated[str | None, Query(description="Only this monitor's")] = None,
    state: Annotated[str | None, Query(description="firing or resolved")] = None,
) -> Response:
    """Return ``{"alerts": [...]}``, most recent first; 404 for an unknown monitor, 400 for a bad state."""
    return _json({"alerts": [a.to_json() for a in monitoring.list_alerts(monitor, state)]})


@router.get("/alerts/{alert_id}", dependencies=[requires("monitoring:read")], summary="Get an alert")
def get_alert(alert_id: str, monitoring: Monitoring) -> Response:
    """Return one alert with its deliveries and the actions it started; 404 if the project has none."""
    return _json(monitoring.get_alert(alert_id).to_json())


# -- reports --------------------------------------------------------------------------------------


def report_reference(
    reference: str | None, start: datetime | None, end: datetime | None
) -> str | dict[str, Any] | None:
    """The reference the query names: a dataset (``reference``) or a log span (``start`` and ``end``).

    Raises:
        InvalidInput: Naming ``reference`` for both forms at once, or a span missing one end.
    """
    if start is None and end is None:
        return reference
    if reference is not None:
        raise InvalidInput(
            "give reference or reference_start and reference_end, not both", {"field": "reference"}
        )
    if start is None or end is None:
        raise InvalidInput("a log reference needs reference_start and reference_end", {"field": "reference"})
    return {"window_start": start, "window_end": end}


@router.get(
    "/monitoring/report",
    dependencies=[requires("monitoring:read")],
    summary="An endpoint's monitoring report",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def report(
    monitoring: Monitoring,
    endpoint: Annotated[str, Query(description="The endpoint")],
    window: Annotated[str, Query(description="How far back from now: '24h', '30m' or seconds")] = "24h",
    reference: Annotated[str | None, Query(description="A dataset: 'name' or 'name@3'")] = None,
    reference_start: Annotated[datetime | None, Query(description="A log span's start, instead")] = None,
    reference_end: Annotated[datetime | None, Query(description="The log span's end")] = None,
    now: Annotated[datetime | None, Query(description="The window's end (default: now)")] = None,
    attribute: Annotated[str | None, Query(description="A sensitive input column, for fairness")] = None,
    format: Annotated[Literal["json", "html"], Query(description="json, or an html page")] = "json",
) -> Response:
    """Drift of the endpoint's inputs and outputs, performance on late labels, fairness over ``attribute``
    and operations over the window, with the summaries behind them; no rule is evaluated.

    ``format=html`` answers the same report as one self-contained page (``monitoring.report_html``: inline
    style and SVG, every text escaped), under a policy that lets it run no script and load nothing. 400
    naming the field for a bad window, reference or attribute; 404 for a reference dataset that does not
    exist.
    """
    found = monitoring.report(
        endpoint,
        window=window,
        reference=report_reference(reference, reference_start, reference_end),
        now=now,
        attribute=attribute,
    )
    if format == "json":
        return _json(found.to_json())
    headers = {"Content-Security-Policy": _HTML_POLICY, "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(render_html(found), headers=headers)


@router.get(
    "/monitoring/drift",
    dependencies=[requires("monitoring:read")],
    summary="Drift between two dataset versions",
)
def dataset_drift(
    monitoring: Monitoring,
    reference: Annotated[str, Query(description="The reference version: 'name' or 'name@3'")],
    current: Annotated[str, Query(description="The version compared with it")],
    columns: Annotated[list[str] | None, Query(description="Only these columns (repeat)")] = None,
) -> Response:
    """Every shared column's drift, the drift share and the verdict; 400 naming the field for a malformed
    version or unknown column, 404 for one that does not exist, 403 without ``data:read_pii`` for
    columns tagged as personal data."""
    return _json(monitoring.dataset_drift(reference, current, columns=columns).to_json())
