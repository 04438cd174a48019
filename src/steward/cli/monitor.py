"""``steward monitor``: monitors of endpoints, their runs, reports and alerts.

``create`` watches an endpoint with alert rules (``--rule "drift_share > 0.3" --rule "accuracy < 0.85
for 3 windows"``), a window, a schedule for ``steward scheduler``, channels (``--webhook``, ``--email``),
actions (``--action retrain:module:pipeline``, ``--action rollback``), a cooldown and a reference;
``list`` and ``show`` read them back; ``run`` runs one now and prints the facts it gathered, each rule's
outcome and the alerts it opened, counted and resolved; ``report`` writes an endpoint's drift,
performance, fairness and operations over a window as a self-contained HTML page or as JSON (the same
numbers); ``alerts`` lists alerts; ``delete``, ``enable`` and ``disable`` manage a monitor.

The commands call the connection's monitoring backend, so they work embedded and against a server
(``STEWARD_URI``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.audit import parse_time
from steward.cli.output import (
    JsonOption,
    connection,
    console,
    details_grid,
    err_console,
    format_number,
    format_time,
    new_table,
    print_json,
)
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.monitoring.models import Alert, Channel, Monitor
    from steward.monitoring.runs import MonitoringReport, MonitorRun
    from steward.monitoring.sdk import MonitoringBackend

app = typer.Typer(
    help="Monitors of endpoints: drift, performance, fairness and latency rules, alerts and reports.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The monitor's name.")]
WindowOption = Annotated[str, typer.Option("--window", "-w", help="How far back: 30m, 24h, 7d or seconds.")]
ReferenceOption = Annotated[
    str | None,
    typer.Option(
        "--reference",
        help="The reference dataset, DATASET or DATASET@N (default: the served version's training data).",
    ),
]
ReferenceFrom = Annotated[
    datetime | None,
    typer.Option(
        "--reference-from",
        parser=parse_time,
        metavar="TIME",
        help="Use the endpoint's own log from TIME as the reference (ISO 8601, UTC if naive, or 7d back).",
    ),
]
ReferenceTo = Annotated[
    datetime | None,
    typer.Option("--reference-to", parser=parse_time, metavar="TIME", help="... up to TIME."),
]
NowOption = Annotated[
    datetime | None,
    typer.Option(
        "--now",
        parser=parse_time,
        metavar="TIME",
        help="The window's end: ISO 8601 (UTC if naive) or a span back (2h); the current time by default.",
    ),
]

OUTCOME_STYLES = {
    "opened": "bold red",
    "counted": "red",
    "cooldown": "yellow",
    "resolved": "green",
    "pending": "yellow",
    "ok": "green",
    "unknown": "dim",
}
STATE_STYLES = {"firing": "red", "resolved": "green"}


class AlertState(StrEnum):
    """Which alerts ``alerts`` lists."""

    firing = "firing"
    resolved = "resolved"
    all = "all"


class ReportFormat(StrEnum):
    """What ``report`` writes."""

    html = "html"
    json = "json"


@contextmanager
def monitoring() -> Iterator[MonitoringBackend]:
    """Open the monitoring backend for one command: embedded, or the ``STEWARD_URI`` server."""
    with connection() as conn:
        yield conn.monitoring


def _reference(
    dataset: str | None, low: datetime | None, high: datetime | None
) -> str | dict[str, Any] | None:
    if low is None and high is None:
        return dataset
    if dataset is not None:
        raise InvalidInput(
            "give --reference or --reference-from and --reference-to, not both", {"field": "reference"}
        )
    if low is None or high is None:
        raise InvalidInput(
            "a log reference needs both --reference-from and --reference-to", {"field": "reference"}
        )
    return {"window_start": low.isoformat(), "window_end": high.isoformat()}


def duration(seconds: int) -> str:
    """Seconds as the largest whole unit: ``90s``, ``15m``, ``24h``, ``7d``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "d" and seconds < 2 * size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _channel_name(channel: Channel) -> str:
    """A channel as it may be shown: a webhook's scheme and host only (its path is often its secret)."""
    from steward.monitoring.channels import notifier_for

    try:
        return notifier_for(channel).name
    except InvalidInput:
        return channel.kind


def _actions(raw: Sequence[str], params: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    parsed = _params(params)
    for text in raw:
        kind, _, target = text.strip().partition(":")
        action: dict[str, Any] = {"kind": kind.strip(), "target": target.strip()}
        if action["kind"] == "retrain":
            action["params"] = parsed
        found.append(action)
    if parsed and not any(a["kind"] == "retrain" for a in found):
        raise InvalidInput(
            "--param is for a retrain action: add --action retrain:module:pipeline", {"field": "param"}
        )
    return found


def _params(raw: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in raw:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param takes KEY=VALUE, not {item!r}", {"field": "param"})
        try:
            found[key.strip()] = json.loads(text)
        except ValueError:
            found[key.strip()] = text
    return found


def _channels(
    webhooks: Sequence[str],
    headers: Sequence[str],
    emails: Sequence[str],
    smtp: Mapping[str, Any],
) -> list[Any]:
    found: list[Any] = []
    parsed: dict[str, str] = {}
    for item in headers:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"--webhook-header takes NAME=VALUE, not {item!r}", {"field": "webhook_header"}
            )
        parsed[key.strip()] = value.strip()
    if parsed and not webhooks:
        raise InvalidInput("--webhook-header needs a --webhook", {"field": "webhook_header"})
    for url in webhooks:
        found.append({"kind": "webhook", "target": url, "options": {"headers": parsed}} if parsed else url)
    if emails:
        if not smtp.get("host") or not smtp.get("sender"):
            raise InvalidInput(
                "--email needs the SMTP server: add --smtp-host HOST and --smtp-sender ADDRESS",
                {"field": "smtp_host" if not smtp.get("host") else "smtp_sender"},
            )
        options = {k: v for k, v in smtp.items() if v is not None and v is not False}
        found.append({"kind": "email", "target": ",".join(emails), "options": options})
    return found


# -- monitors -------------------------------------------------------------------------------------------


@app.command("create")
def create(
    name: NameArg,
    endpoint: Annotated[str, typer.Option("--endpoint", "-e", help="The endpoint to watch.")],
    rule: Annotated[
        list[str],
        typer.Option(
            "--rule",
            "-r",
            help="An alert rule (repeatable): 'drift_share > 0.3', 'psi(income) > 0.2', "
            "'accuracy < 0.85 for 3 windows', 'p99_latency_ms > 50', 'error_rate > 1%'.",
        ),
    ],
    window: WindowOption = "24h",
    schedule: Annotated[
        str, typer.Option("--schedule", help="When the scheduler runs it: a cron expression or seconds.")
    ] = "*/15 * * * *",
    webhook: Annotated[
        list[str], typer.Option("--webhook", help="POST alerts here as Slack-compatible JSON (repeatable).")
    ] = [],  # noqa: B006
    webhook_header: Annotated[
        list[str],
        typer.Option(
            "--webhook-header", help="A header for the webhooks, NAME=VALUE; VALUE env:VAR reads $VAR."
        ),
    ] = [],  # noqa: B006
    email: Annotated[
        list[str], typer.Option("--email", help="E-mail alerts to this address (repeatable).")
    ] = [],  # noqa: B006
    smtp_host: Annotated[str | None, typer.Option("--smtp-host", help="The SMTP server for --email.")] = None,
    smtp_port: Annotated[
        int | None, typer.Option("--smtp-port", help="Its port (25, or 587 with STARTTLS).")
    ] = None,
    smtp_sender: Annotated[str | None, typer.Option("--smtp-sender", help="The From address.")] = None,
    smtp_starttls: Annotated[bool, typer.Option("--smtp-starttls", help="Upgrade with STARTTLS.")] = False,
    smtp_username: Annotated[
        str | None,
        typer.Option("--smtp-username", help="Log in as this user (password: $STEWARD_SMTP_PASSWORD)."),
    ] = None,
    action: Annotated[
        list[str],
        typer.Option(
            "--action",
            help="What a firing alert does (repeatable): retrain:module:pipeline (a new version, never "
            "straight to production) or rollback.",
        ),
    ] = [],  # noqa: B006
    param: Annotated[
        list[str],
        typer.Option("--param", "-p", help="A retrain pipeline's parameter, KEY=VALUE (JSON values)."),
    ] = [],  # noqa: B006
    cooldown: Annotated[
        str,
        typer.Option("--cooldown", help="After an alert resolves, a new breach within this is only counted."),
    ] = "1h",
    reference: ReferenceOption = None,
    reference_from: ReferenceFrom = None,
    reference_to: ReferenceTo = None,
    as_json: JsonOption = False,
) -> None:
    """Create a monitor of an endpoint: its rules, window, schedule, channels and actions.

    Everything is checked now (each rule, the schedule, channels, actions and reference), so a bad rule is
    refused here with the part that is wrong, never at 3 a.m.
    """
    smtp = {"host": smtp_host, "port": smtp_port, "sender": smtp_sender, "starttls": smtp_starttls,
            "username": smtp_username}  # fmt: skip
    channels = _channels(webhook, webhook_header, email, smtp)
    actions = _actions(action, param)
    ref = _reference(reference, reference_from, reference_to)
    with monitoring() as backend:
        made = backend.create_monitor(
            name, endpoint, rules=rule, window=window, schedule=schedule, reference=ref,
            channels=channels, actions=actions, cooldown=cooldown,
        )  # fmt: skip
    if as_json:
        print_json(made.to_json())
        return
    where = ", ".join(_channel_name(c) for c in made.channels) or "no channel"
    console.print(
        f"Created monitor [bold]{escape(made.name)}[/bold] of endpoint {escape(made.endpoint)}: "
        f"{len(made.rules)} rule(s), window {duration(made.window_s)}, schedule {escape(made.schedule)}; "
        f"alerts to {escape(where)}."
    )


@app.command("list")
def list_monitors(as_json: JsonOption = False) -> None:
    """List the project's monitors with their rules and open alerts."""
    with monitoring() as backend:
        found = backend.list_monitors()
        firing = backend.list_alerts(None, "firing") if found else []
    if as_json:
        print_json([m.to_json() for m in found])
        return
    if not found:
        console.print(
            "No monitors yet. Create one with [bold]steward monitor create NAME --endpoint E "
            '--rule "drift_share > 0.3"[/bold].'
        )
        return
    open_alerts = {m.name: sum(a.monitor == m.name for a in firing) for m in found}
    table = new_table(
        Column("Name", no_wrap=True), "Endpoint", "Rules", "Window", "Enabled",
        Column("Firing", justify="right"), "Last run (UTC)",
    )  # fmt: skip
    for m in found:
        count = open_alerts[m.name]
        table.add_row(
            escape(m.name), escape(m.endpoint), escape("\n".join(m.rules)), duration(m.window_s),
            "yes" if m.enabled else "[dim]no[/dim]", f"[red]{count}[/red]" if count else "0",
            format_time(m.last_run_at),
        )  # fmt: skip
    console.print(table)


def _reference_text(reference: Mapping[str, Any] | None) -> str:
    if reference is None:
        return "the served version's training dataset"
    if "dataset" in reference:
        return f"{reference['dataset']}@{reference.get('version')}"
    return f"the endpoint's log from {reference.get('window_start')} to {reference.get('window_end')}"


def _action_text(monitor: Monitor) -> str:
    return ", ".join(f"{a.kind} {a.target}".strip() for a in monitor.actions) or "-"


@app.command("show")
def show(name: NameArg, as_json: JsonOption = False) -> None:
    """Show a monitor: its rules, window, schedule, reference, channels, actions and latest alerts."""
    with monitoring() as backend:
        monitor = backend.get_monitor(name)
        alerts = backend.list_alerts(name)
    if as_json:
        print_json({**monitor.to_json(), "alerts": [a.to_json() for a in alerts]})
        return
    console.print(f"[bold]Monitor {escape(monitor.name)}[/bold]")
    rows = [
        ("Endpoint", escape(monitor.endpoint)),
        ("Rules", escape("\n".join(monitor.rules))),
        ("Window", duration(monitor.window_s)),
        ("Schedule", escape(monitor.schedule)),
        ("Reference", escape(_reference_text(monitor.reference))),
        ("Channels", escape(", ".join(_channel_name(c) for c in monitor.channels) or "-")),
        ("Actions", escape(_action_text(monitor))),
        ("Cooldown", duration(monitor.cooldown_s)),
        ("Enabled", "yes" if monitor.enabled else "no"),
        ("Created", f"{format_time(monitor.created_at)} UTC by {escape(monitor.created_by)}"),
        ("Last run", f"{format_time(monitor.last_run_at)} UTC" if monitor.last_run_at else "never"),
    ]
    console.print(details_grid(rows))
    if alerts:
        console.print(_alert_table(alerts[:10], title="Latest alerts"))


@app.command("delete")
def delete(name: NameArg) -> None:
    """Delete a monitor and its alerts (the audit trail keeps what happened)."""
    with monitoring() as backend:
        backend.delete_monitor(name)
    console.print(f"Deleted monitor [bold]{escape(name)}[/bold] and its alerts.")


@app.command("enable")
def enable(name: NameArg) -> None:
    """Let the scheduler run a monitor again."""
    with monitoring() as backend:
        backend.set_enabled(name, True)
    console.print(f"Enabled monitor [bold]{escape(name)}[/bold].")


@app.command("disable")
def disable(name: NameArg) -> None:
    """Stop the scheduler running a monitor (steward monitor run still runs it by hand)."""
    with monitoring() as backend:
        backend.set_enabled(name, False)
    console.print(f"Disabled monitor [bold]{escape(name)}[/bold].")


# -- runs -----------------------------------------------------------------------------------------------


@app.command("run")
def run(name: NameArg, now: NowOption = None, as_json: JsonOption = False) -> None:
    """Run a monitor once: its facts, each rule's outcome, and the alerts opened, counted or resolved.

    The alerts it opened are delivered to the monitor's channels (with retries) before it returns.
    """
    with (
        monitoring() as backend,
        err_console.status(f"Running monitor {escape(name)}: gathering the window…"),
    ):
        result = backend.run_monitor(name, now=now)
    if as_json:
        print_json(result.to_json())
        return
    print_run(result)


def _window_line(report: MonitoringReport) -> str:
    served = report.served
    version = f"; served by {served['model']} {served['version']}" if served else ""
    return f"{format_time(report.start)} to {format_time(report.end)} UTC, {report.rows} row(s){version}"


def print_run(result: MonitorRun) -> None:
    """Print a run: the window, the facts, each rule's outcome, the alerts it touched and its notes."""
    report = result.report
    console.print(
        f"[bold]Monitor {escape(result.monitor)}[/bold] on {escape(report.endpoint)}: "
        f"{escape(_window_line(report))}"
    )
    print_facts(report.facts)
    rules = new_table(
        "Rule", Column("Value", justify="right"), "Outcome", Column("Streak", justify="right"), "Alert",
        "Message", title="Rules",
    )  # fmt: skip
    for outcome in result.rules:
        style = OUTCOME_STYLES.get(outcome.outcome, "white")
        rules.add_row(
            escape(outcome.rule), format_number(outcome.value, 4),
            f"[{style}]{escape(outcome.outcome)}[/{style}]", f"{outcome.streak}/{outcome.windows}",
            escape(outcome.alert_id or "-"), escape(outcome.message),
        )  # fmt: skip
    console.print(rules)
    for label, alerts in (
        ("Opened", result.opened),
        ("Counted", result.updated),
        ("Resolved", result.resolved),
    ):
        for alert in alerts:
            console.print(f"{label} alert {escape(alert.id)}: {escape(alert.rule)} ({_delivery(alert)})")
    if not (result.opened or result.updated or result.resolved):
        console.print("No alert opened, counted or resolved.")
    for note in (*report.notes, *result.notes):
        console.print(f"[dim]note: {escape(note)}[/dim]")


def print_facts(facts: Mapping[str, Any]) -> None:
    """Print the facts rules read: whole-window numbers, then one row per column (or attribute)."""
    from steward.monitoring.rules import FEATURE_METRICS

    scalars = {k: v for k, v in facts.items() if not isinstance(v, Mapping)}
    grid = new_table("Fact", Column("Value", justify="right"), title="Facts")
    for key, value in scalars.items():
        grid.add_row(escape(key), format_number(value, 4) if not isinstance(value, str) else escape(value))
    console.print(grid)
    for kind, measures in (
        ("Column", [k for k, v in facts.items() if isinstance(v, Mapping) and k in FEATURE_METRICS]),
        ("Attribute", [k for k, v in facts.items() if isinstance(v, Mapping) and k not in FEATURE_METRICS]),
    ):
        if not measures:
            continue
        names = list(dict.fromkeys(n for m in measures for n in facts[m]))
        table = new_table(Column(kind, no_wrap=True), *[Column(m, justify="right") for m in measures])
        for column in names:
            table.add_row(escape(column), *[format_number(facts[m].get(column), 4) for m in measures])
        console.print(table)


def _delivery(alert: Alert) -> str:
    if alert.delivered is None:
        return "no channel" if not alert.deliveries else "not delivered yet"
    if alert.delivered:
        return "delivered to " + ", ".join(d.channel for d in alert.deliveries)
    failed = [
        d.error if d.error.startswith(d.channel) else f"{d.channel}: {d.error}"
        for d in alert.deliveries
        if not d.ok
    ]
    return "UNDELIVERED: " + "; ".join(failed)


# -- reports and alerts ---------------------------------------------------------------------------------


@app.command("report")
def report(
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    window: WindowOption = "24h",
    output_format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="html (a self-contained page) or json.")
    ] = ReportFormat.html,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it to this file instead of stdout.")
    ] = None,
    reference: ReferenceOption = None,
    reference_from: ReferenceFrom = None,
    reference_to: ReferenceTo = None,
    attribute: Annotated[
        str | None,
        typer.Option("--attribute", "-a", help="A sensitive input column to report fairness over."),
    ] = None,
    now: NowOption = None,
) -> None:
    """Write an endpoint's drift, performance, fairness and operations over a window, as HTML or JSON.

    The HTML page is self-contained (inline style and SVG, a plot per feature, readable offline); the
    JSON holds the same numbers (``MonitoringReport.to_json``).
    """
    from steward.monitoring.report_html import render_html

    ref = _reference(reference, reference_from, reference_to)
    with monitoring() as backend, err_console.status(f"Gathering {escape(endpoint)}'s window…"):
        found = backend.report(endpoint, window=window, reference=ref, now=now, attribute=attribute)
    if output_format is ReportFormat.json:
        text = json.dumps(found.to_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = render_html(found)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    drift = found.drift
    share = f", drift share {format_number(drift.drift_share, 4)}" if drift is not None else ""
    console.print(
        f"Wrote the {output_format.value} report of {escape(endpoint)} to {escape(str(output))} "
        f"({escape(_window_line(found))}{share})."
    )


@app.command("drift")
def dataset_drift(
    reference: Annotated[str, typer.Argument(help="The reference dataset version: name or name@3.")],
    current: Annotated[str, typer.Argument(help="The version compared with it.")],
    column: Annotated[
        list[str] | None, typer.Option("--column", "-c", help="Only this column (repeat).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two dataset versions column by column: each column's test, statistic and verdict, and the
    dataset's drift share. Exits 1 when the dataset drifted."""
    with (
        monitoring() as backend,
        err_console.status(f"Comparing {escape(current)} with {escape(reference)}…"),
    ):
        found = backend.dataset_drift(reference, current, columns=column)
    if as_json:
        print_json(found.to_json())
    else:
        table = new_table(
            "Column", "Kind", "Test", Column("Statistic", justify="right"),
            Column("p-value", justify="right"), Column("Threshold", justify="right"), "Drifted", "Note",
        )  # fmt: skip
        for f in found.features:
            drifted = "[red]yes[/red]" if f.drifted else "no"
            table.add_row(
                escape(f.column), f.kind, f.test, format_number(f.statistic, 4), format_number(f.p_value, 4),
                format_number(f.threshold, 4), drifted, escape(f.note),
            )  # fmt: skip
        console.print(table)
        share = format_number(found.drift_share, 4) if found.drift_share is not None else "n/a"
        verdict = "[red]drifted[/red]" if found.dataset_drift else "no dataset drift"
        console.print(f"Drift share {share} (dataset drift at {format_number(found.share, 4)}): {verdict}.")
        for note in found.notes:
            console.print(f"Note: {escape(note)}")
    if found.dataset_drift:
        raise typer.Exit(code=1)


def _alert_table(alerts: Sequence[Alert], title: str | None = None) -> Any:
    table = new_table(
        Column("ID", no_wrap=True), "Monitor", "Rule", "State", Column("Value", justify="right"),
        Column("Count", justify="right"), "Last (UTC)", "Delivered", "Actions", title=title,
    )  # fmt: skip
    for a in alerts:
        style = STATE_STYLES.get(a.state, "white")
        delivered = {None: "-", True: "yes", False: "[red]no[/red]"}[a.delivered]
        actions = ", ".join(f"{x.get('kind')} {x.get('outcome', '')}".strip() for x in a.actions) or "-"
        table.add_row(
            escape(a.id), escape(a.monitor), escape(a.rule), f"[{style}]{escape(a.state)}[/{style}]",
            format_number(a.value, 4), str(a.count), format_time(a.last_at),
            delivered, escape(actions),
        )  # fmt: skip
    return table


@app.command("alerts")
def alerts(
    monitor: Annotated[str | None, typer.Option("--monitor", "-m", help="Only this monitor's.")] = None,
    state: Annotated[
        AlertState, typer.Option("--state", "-s", help="firing, resolved or all.")
    ] = AlertState.all,
    as_json: JsonOption = False,
) -> None:
    """List alerts, most recent first: what fired, how often, whether it was delivered and what it did."""
    with monitoring() as backend:
        found = backend.list_alerts(monitor, None if state is AlertState.all else state.value)
    if as_json:
        print_json([a.to_json() for a in found])
        return
    if not found:
        which = "" if state is AlertState.all else f"{state.value} "
        console.print(f"No {which}alerts.")
        return
    console.print(_alert_table(found))
