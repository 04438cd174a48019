"""``steward experiments``: list and create experiments."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from steward.cli.output import JsonOption, connection, console, format_time, new_table, print_json

app = typer.Typer(help="List and create experiments (named groups of runs).", no_args_is_help=True)


@app.command("list")
def list_experiments(
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted experiments.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List experiments, oldest first."""
    with connection() as conn:
        found = conn.tracking.list_experiments(include_deleted=deleted)
    if as_json:
        print_json([experiment.to_json() for experiment in found])
        return
    if not found:
        console.print(
            "No experiments yet. Start a run with [bold]steward.start_run()[/bold] or try "
            "[bold]steward quickstart[/bold]."
        )
        return
    table = new_table("Name", "ID", "Created (UTC)", "Description")
    for experiment in found:
        name = escape(experiment.name) + (" [dim](deleted)[/dim]" if experiment.deleted else "")
        table.add_row(name, experiment.id, format_time(experiment.created_at), escape(experiment.description))
    console.print(table)


@app.command("create")
def create_experiment(
    name: Annotated[str, typer.Argument(help="The new experiment's name (letters, digits, '.', '_', '-').")],
    description: Annotated[
        str, typer.Option("--description", "-d", help="A sentence saying what the experiment is for.")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an experiment."""
    with connection() as conn:
        experiment = conn.tracking.create_experiment(name, description)
    if as_json:
        print_json(experiment.to_json())
        return
    console.print(f"Created experiment [bold]{escape(experiment.name)}[/bold] ({experiment.id}).")
