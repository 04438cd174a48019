"""``steward triggers``: schedules and data-arrival triggers that start pipelines.

``create`` makes one: ``--cron "0 * * * *"`` (UTC), ``--every 15m`` or ``--on-dataset NAME`` (each new
version of the dataset), and the ``--pipeline package.module:attribute`` it runs with ``--param KEY=VALUE``
(converted to the types the pipeline's parameters are annotated with). The pipeline is imported to check
it, which runs its module's code: name only code you trust. ``list`` shows them with their next due
time, ``firings`` what each firing did, ``delete`` removes one. ``steward scheduler`` fires them.

The commands work on the database directly (embedded mode), or through the Steward server ``STEWARD_URI``
names (``create`` still imports the pipeline here to convert ``--param`` values, so its code must be
installed on this machine too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.output import JsonOption, console, format_time, new_table, print_json
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.automation.models import Trigger
    from steward.automation.service import AutomationService
    from steward.client.automation import RemoteAutomationService

app = typer.Typer(
    help="Triggers that start pipelines: cron and interval schedules, new dataset versions.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The trigger's name.")]
OUTCOME_STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "abandoned": "yellow"}


@contextmanager
def automation() -> Iterator[AutomationService | RemoteAutomationService]:
    """Open the trigger operations for one command: embedded, or the ``STEWARD_URI`` server."""
    from steward.config import load_settings

    settings = load_settings()
    if settings.uri:
        from steward.client.automation import RemoteAutomationService
        from steward.client.http import HttpClient

        with HttpClient.from_settings(settings) as http:
            yield RemoteAutomationService(http)
        return
    from steward.automation.service import AutomationService
    from steward.store.platform import Platform

    platform = Platform.from_settings(settings)
    try:
        yield AutomationService(platform)
    finally:
        platform.close()


def _when(trigger: Trigger) -> str:
    if trigger.kind.value == "dataset":
        return f"version > {trigger.cursor or 0}"
    if trigger.kind.value == "monitor":
        return "the monitor's schedule"
    return format_time(trigger.next_due_at)


def _outcome(outcome: str) -> str:
    style = OUTCOME_STYLES.get(outcome, "white")
    return f"[{style}]{escape(outcome)}[/{style}]"


@app.command("list")
def list_triggers(as_json: JsonOption = False) -> None:
    """List the project's triggers (the scheduler's monitor triggers too) with when they are next due."""
    with automation() as service:
        found = service.list_triggers()
    if as_json:
        print_json([t.to_json() for t in found])
        return
    if not found:
        console.print("No triggers. Create one with steward triggers create.")
        return
    table = new_table(
        Column("Name", no_wrap=True), "Kind", "Spec", "Pipeline", "Next due", "Last fired", "Enabled"
    )
    for t in found:
        table.add_row(
            escape(t.name),
            t.kind.value,
            escape(t.spec),
            escape(t.action.target) if t.action else "-",
            escape(_when(t)),
            format_time(t.last_fired_at),
            "yes" if t.enabled else "[dim]no[/dim]",
        )
    console.print(table)


@app.command("create")
def create(
    name: NameArg,
    pipeline: Annotated[
        str, typer.Option("--pipeline", help="The @pipeline to run: package.module:attribute.")
    ],
    cron: Annotated[
        str | None, typer.Option("--cron", help='A cron expression, in UTC: "0 * * * *" is every hour.')
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="An interval: seconds (900) or 90s, 15m, 2h, 1d.")
    ] = None,
    on_dataset: Annotated[
        str | None, typer.Option("--on-dataset", help="Run on each new version of this dataset.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A pipeline parameter as KEY=VALUE (repeatable)."),
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", "-e", help="Where its steps run: local, processes[:N], ray.")
    ] = "local",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a trigger: exactly one of --cron, --every and --on-dataset, and the --pipeline it runs."""
    from steward.automation.actions import load_target
    from steward.cli.pipelines import parse_params

    chosen = [
        (k, v) for k, v in (("cron", cron), ("interval", every), ("dataset", on_dataset)) if v is not None
    ]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of --cron, --every and --on-dataset", {"field": "kind"})
    kind, spec = chosen[0]
    params = parse_params(load_target(pipeline), param or [])
    with automation() as service:
        made = service.create_trigger(
            name, kind, spec, pipeline, params=params, executor=executor, enabled=not disabled
        )
    if as_json:
        print_json(made.to_json())
        return
    console.print(
        f"Created trigger [bold]{escape(made.name)}[/bold] ({made.kind.value} {escape(made.spec)}): runs "
        f"{escape(pipeline)}; next due {escape(_when(made))}."
    )


@app.command("delete")
def delete(
    name: NameArg,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why: recorded with the change.")] = "",
) -> None:
    """Delete a trigger and its firings (the audit trail keeps what they did)."""
    with automation() as service:
        service.delete_trigger(name, reason)
    console.print(f"Deleted trigger [bold]{escape(name)}[/bold].")


@app.command("firings")
def firings(
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show a trigger's latest firings: when each was due, who fired it and what it did."""
    with automation() as service:
        found = service.list_firings(name, limit)
    if as_json:
        print_json([f.to_json() for f in found])
        return
    if not found:
        console.print(f"Trigger {escape(name)} has not fired yet.")
        return
    table = new_table(
        Column("Due", no_wrap=True),
        "Fired by",
        Column("Outcome", no_wrap=True),
        Column("Run", no_wrap=True),
        "Result",
    )
    for f in found:
        details = (f.details.get("result") or {}).get("details") or {}
        table.add_row(
            format_time(f.due_at), escape(f.fired_by), _outcome(f.outcome.value),
            escape(str(details.get("run_id") or "-")), escape(_result(details)),
        )  # fmt: skip
    console.print(table)


def _result(details: Mapping[str, Any]) -> str:
    """A line on what a firing's action did besides its pipeline run: the alerts, the error."""
    parts = [f"{len(details['fired'])} alert(s) fired" if details.get("fired") else ""]
    if details.get("error"):
        parts.append(str(details["error"]))
    return "; ".join(p for p in parts if p) or "-"
