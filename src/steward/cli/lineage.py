"""``steward lineage``: what a model version was built from, and what was built on a dataset version."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column
from rich.tree import Tree

from steward.cli.output import (
    JsonOption,
    connection,
    console,
    format_time,
    new_table,
    print_json,
    styled_version_status,
)

app = typer.Typer(
    help="Follow lineage: from a model version back to its run and datasets, or from a dataset forward.",
    no_args_is_help=True,
)


@app.command("model")
def model_lineage(
    name: Annotated[str, typer.Argument(help="The registered model's name.")],
    version: Annotated[str, typer.Argument(help="The version, e.g. 1.2.0.")],
    as_json: JsonOption = False,
) -> None:
    """Show what a model version was built from: its run (experiment, params, git commit) and datasets."""
    with connection() as conn:
        found = conn.registry.model_lineage(name, version)
    if as_json:
        print_json(found)
        return
    console.print(lineage_tree(found))


def lineage_tree(lineage: Mapping[str, Any]) -> Tree:
    """Draw a model version's lineage (run, params, git commit, datasets) as a rich tree."""
    aliases = ", ".join(lineage.get("aliases") or ())
    root = Tree(
        f"[bold]{escape(lineage['model'])} {escape(lineage['version'])}[/bold] "
        f"{styled_version_status(lineage['status'])} {escape(lineage['flavor'])}"
        + (f" [cyan]@ {escape(aliases)}[/cyan]" if aliases else "")
    )
    run = lineage.get("run")
    if run is None:
        root.add("[dim]run: none recorded[/dim]")
    else:
        branch = root.add(
            f"run [bold]{escape(run['name'])}[/bold] ({run['id']}) in experiment "
            f"[bold]{escape(run['experiment'])}[/bold], {escape(run['status'])}"
        )
        commit = run.get("git_commit")
        dirty = " [yellow](dirty)[/yellow]" if run.get("git_dirty") else ""
        branch.add(f"git commit {escape(commit)}{dirty}" if commit else "[dim]git commit: not recorded[/dim]")
        if run.get("entry_point"):
            branch.add(f"entry point {escape(run['entry_point'])}")
        params = run.get("params") or {}
        if params:
            node = branch.add(f"params ({len(params)})")
            for key in sorted(params):
                node.add(f"{escape(key)} = {escape(str(params[key]))}")
        else:
            branch.add("[dim]params: none logged[/dim]")
    datasets = lineage.get("datasets") or []
    node = root.add(f"datasets ({len(datasets)})" if datasets else "[dim]datasets: none recorded[/dim]")
    for dataset in datasets:
        label = f"{escape(dataset['role'])}: {escape(dataset['id'])}"
        if dataset.get("ref"):
            label = (
                f"{escape(dataset['role'])}: [bold]{escape(dataset['ref'])}[/bold] ({escape(dataset['id'])})"
            )
        branch = node.add(label)
        for step in (dataset.get("chain") or [])[1:]:  # what it was derived from, back to the source
            branch = branch.add(f"from [bold]{escape(step['ref'])}[/bold] ({escape(step['id'])})")
        chain = dataset.get("chain") or []
        if chain:
            branch.add(f"[dim]source: {escape(_source_text(chain[-1]['source']))}[/dim]")
    return root


def _source_text(source: Mapping[str, Any]) -> str:
    kind = str(source.get("kind", "source"))
    where = source.get("url") or source.get("stream") or source.get("query") or source.get("from") or ""
    return f"{kind} {where}".strip()


@app.command("dataset")
def dataset_lineage(
    dataset_version_id: Annotated[str, typer.Argument(metavar="ID", help="The dataset version's id.")],
    as_json: JsonOption = False,
) -> None:
    """List every model version trained on a dataset version, or on a version derived from it (such as
    its protected copy): what erasing that data forces to retrain."""
    with connection() as conn:
        found = conn.registry.dataset_lineage(dataset_version_id)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(
            f"No model version was trained on dataset version [bold]{escape(dataset_version_id)}[/bold]: "
            "erasing it requires no retraining."
        )
        return
    table = new_table(
        Column("Model", no_wrap=True),
        Column("Version", no_wrap=True),
        Column("Status", no_wrap=True),
        Column("Role", overflow="fold", min_width=4),
        Column("Aliases", overflow="fold", min_width=7),
        Column("Run", overflow="fold", min_width=8),
        Column("Created (UTC)", min_width=10),
    )
    for row in found:
        cells = [
            escape(row["model"]),
            escape(row["version"]),
            styled_version_status(row["status"]),
            escape(row["role"]),
            escape(", ".join(row["aliases"])) or "-",
            row["run_id"] or "-",
            format_time(datetime.fromisoformat(row["created_at"])),
        ]
        table.add_row(*cells)
    console.print(table)
    for row in found:  # trained on a copy derived from this version (its protected copy …)
        if row.get("via"):
            console.print(
                f"{escape(row['model'])} {escape(row['version'])} was trained on "
                f"[bold]{escape(row['via']['ref'])}[/bold], derived from this version."
            )
    console.print(
        f"These {len(found)} model version(s) were trained on dataset version "
        f"[bold]{escape(dataset_version_id)}[/bold]: a GDPR erasure of that dataset would require "
        "retraining them (and re-pointing any alias that holds one)."
    )
