"""``steward runs``: list, show, compare, delete and restore runs; resume a pipeline run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from steward.cli.output import (
    JsonOption,
    artifact_table,
    connection,
    console,
    duration_seconds,
    format_duration,
    format_number,
    format_time,
    key_value_table,
    new_table,
    print_json,
    styled_status,
)
from steward.cli.pipelines import (
    ExecutorOption,
    execute,
    print_pipeline_details,
)
from steward.errors import NotFound
from steward.pipelines.models import PipelineRunInfo
from steward.tracking.models import Run

app = typer.Typer(
    help="Find, inspect, compare, delete and restore runs; resume a pipeline run.", no_args_is_help=True
)

PIPELINE_TAG = "steward.pipeline"
"""The tag a pipeline's own run carries (its value: the pipeline's name)."""
PIPELINE_RUN_TAG = "steward.pipeline_run"
"""The tag a step's child run carries: the pipeline run's id (the child run's name is the step's key)."""

MAX_METRIC_COLUMNS = 6
"""``runs list`` shows at most this many metric columns (as many as fit) unless ``--metric`` picks them."""

_BASE_WIDTH = 84  # run id, name, status, started and duration, at their narrowest, with separators
_METRIC_WIDTH = 11

RunId = Annotated[str, typer.Argument(help="The run's id (as printed by 'steward runs list').")]


@app.command("list")
def list_runs(
    experiment: Annotated[str, typer.Argument(help="The experiment's name or id.")],
    filter_: Annotated[
        str,
        typer.Option(
            "--filter",
            "-f",
            help="Only runs matching this, e.g. \"metrics.auc > 0.9 and params.model = 'lr'\"",
        ),
    ] = "",
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by", "-o", help="Sort key, e.g. 'metrics.auc DESC'; repeat for ties. Newest first."
        ),
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max-results", "-n", min=1, help="Show at most this many runs.")
    ] = 100,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include soft-deleted runs.")] = False,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", "-m", help="Show this metric as a column (repeatable); default: as many as fit."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the runs of an experiment, optionally filtered and sorted."""
    with connection() as conn:
        found = conn.tracking.search_runs([experiment], filter_, order_by or [], max_results, deleted)
    if as_json:
        print_json([run.to_json() for run in found])
        return
    if not found:
        console.print(f"No runs in [bold]{escape(experiment)}[/bold] match.")
        return
    all_keys = sorted({key for run in found for key in run.metrics})
    fit = max(console.width - _BASE_WIDTH, 0) // _METRIC_WIDTH
    keys = list(metrics) if metrics else all_keys[: min(MAX_METRIC_COLUMNS, fit)]
    table = new_table(
        Column("Run ID", no_wrap=True, min_width=len(found[0].id)),
        Column("Name", overflow="fold", min_width=8),
        Column("Status", no_wrap=True),
        Column("Started (UTC)", min_width=10),
        Column("Duration", no_wrap=True),
        *(Column(key, justify="right", overflow="fold", min_width=7) for key in keys),
    )
    for run in found:
        name = escape(run.name) + (" [dim](deleted)[/dim]" if run.deleted else "")
        table.add_row(
            run.id,
            name,
            styled_status(run.status),
            format_time(run.start_time),
            format_duration(duration_seconds(run.start_time, run.end_time)),
            *(format_number(run.metrics.get(key), digits=4) for key in keys),
        )
    notes = []
    hidden = len(all_keys) - len(keys) if not metrics else 0
    if hidden > 0:
        notes.append(f"{hidden} more metric(s): pick columns with --metric, or use --json")
    if len(found) == max_results:
        notes.append(f"showing the first {max_results} runs: raise --max-results for more")
    table.caption = "; ".join(notes) or None
    console.print(table)


@app.command("show")
def show_run(run_id: RunId, as_json: JsonOption = False) -> None:
    """Show a run: status, times, where it ran, params, tags, latest metrics and artifacts.

    A pipeline's run also shows its DAG with each step's state, duration, attempts and cache source; a
    step's run names the pipeline run and step it belongs to.
    """
    pipeline: PipelineRunInfo | None = None
    with connection() as conn:
        run = conn.tracking.get_run(run_id)
        experiment = conn.tracking.get_experiment(run.experiment_id)
        artifacts = conn.tracking.list_artifacts(run_id)
        if PIPELINE_TAG in run.tags:
            try:
                pipeline = conn.pipelines.get_run(run_id)
            except NotFound:  # tagged by hand, not recorded by a pipeline
                pipeline = None
    seconds = duration_seconds(run.start_time, run.end_time)
    step_of = run.tags.get(PIPELINE_RUN_TAG)
    if as_json:
        extra: dict[str, Any] = {}
        if pipeline is not None:
            extra["pipeline"] = pipeline.to_json()
        if step_of:
            extra["pipeline_step"] = {"pipeline_run": step_of, "key": run.name}
        print_json(
            {
                **run.to_json(),
                "experiment_name": experiment.name,
                "duration_seconds": seconds,
                "artifacts": [artifact.to_json() for artifact in artifacts],
                **extra,
            }
        )
        return
    console.print(f"[bold]Run {escape(run.name)}[/bold] ({run.id})")
    if step_of:
        console.print(
            f"Step [bold]{escape(run.name)}[/bold] of pipeline run {escape(step_of)} "
            f"(see it with [bold]steward runs show {escape(step_of)}[/bold])"
        )
    console.print(_run_summary(run, experiment.name, seconds))
    console.print()
    if pipeline is not None:
        print_pipeline_details(pipeline)
    _print_section("Params", key_value_table(run.params) if run.params else None)
    _print_section("Tags", key_value_table(run.tags) if run.tags else None)
    metrics = {key: format_number(value) for key, value in run.metrics.items()}
    _print_section("Metrics (latest)", key_value_table(metrics) if metrics else None)
    _print_section("Artifacts", artifact_table(artifacts) if artifacts else None)


def _run_summary(run: Run, experiment: str, seconds: float) -> Table:
    git = "-"
    if run.git_commit:
        git = run.git_commit + (" [yellow](dirty)[/yellow]" if run.git_dirty else "")
    rows: list[tuple[str, str]] = [
        ("Experiment", f"{escape(experiment)} ({run.experiment_id})"),
        ("Status", styled_status(run.status) + (" [dim](deleted)[/dim]" if run.deleted else "")),
        ("Started", format_time(run.start_time) + " UTC"),
        ("Ended", format_time(run.end_time) + (" UTC" if run.end_time else "")),
        ("Duration", format_duration(seconds) + ("" if run.end_time else " (still running)")),
        ("Parent run", run.parent_run_id or "-"),
        ("User", escape(run.user) or "-"),
        ("Host", escape(run.host) or "-"),
        ("Entry point", escape(run.entry_point) or "-"),
        ("Git commit", git),
        ("Python", escape(run.python_version) or "-"),
        ("Environment", run.environment_digest or "-"),
    ]
    if run.error:
        rows.insert(5, ("Error", f"[red]{escape(run.error)}[/red]"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def _print_section(title: str, table: Table | None) -> None:
    console.print(f"[bold]{title}[/bold]" + ("" if table is not None else ": [dim]none[/dim]"))
    if table is not None:
        console.print(table)
        console.print()


@app.command("compare")
def compare_runs(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side: params and final metrics, one column per run; differences marked."""
    if len(run_ids) < 2:
        raise typer.BadParameter("give at least two run ids to compare", param_hint="RUN_IDS")
    with connection() as conn:
        found = [conn.tracking.get_run(run_id) for run_id in run_ids]
    params = _side_by_side([run.params for run in found])
    metrics = _side_by_side([run.metrics for run in found])
    differs = [f"params.{key}" for key, values in params.items() if _differ(values)]
    differs += [f"metrics.{key}" for key, values in metrics.items() if _differ(values)]
    if as_json:
        print_json(
            {
                "runs": [{"id": run.id, "name": run.name, "status": run.status.value} for run in found],
                "params": params,
                "metrics": metrics,
                "differs": differs,
            }
        )
        return
    headers = [f"{escape(run.name)}\n[dim]{run.id}[/dim]" for run in found]
    table = new_table("", "Field", *headers)
    table.add_row("", "status", *(styled_status(run.status) for run in found))
    for kind, rows in (("params", params), ("metrics", metrics)):
        table.add_section()
        for key, values in rows.items():
            changed = _differ(values)
            cells = [_cell(value) for value in values]
            table.add_row(
                "*" if changed else "",
                f"{kind}.{escape(key)}",
                *cells,
                style="bold yellow" if changed else None,
            )
    table.caption = f"* {len(differs)} field(s) differ" if differs else "no differences in params or metrics"
    console.print(table)


def _side_by_side(per_run: Sequence[Any]) -> dict[str, list[Any]]:
    keys = sorted({key for mapping in per_run for key in mapping})
    return {key: [mapping.get(key) for mapping in per_run] for key in keys}


def _differ(values: Sequence[Any]) -> bool:
    return any(value != values[0] for value in values[1:])


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]-[/dim]"
    if isinstance(value, float):
        return format_number(value)
    return escape(str(value))


@app.command("delete")
def delete_run(run_id: RunId) -> None:
    """Soft-delete a run: it leaves listings but keeps its data until restored."""
    with connection() as conn:
        conn.tracking.delete_run(run_id)
    console.print(f"Deleted run {run_id}. Undo with: [bold]steward runs restore {run_id}[/bold]")


@app.command("restore")
def restore_run(run_id: RunId) -> None:
    """Restore a soft-deleted run."""
    with connection() as conn:
        conn.tracking.restore_run(run_id)
    console.print(f"Restored run {run_id}.")


@app.command("resume")
def resume_pipeline_run(
    run_id: Annotated[str, typer.Argument(help="The pipeline run's id (as printed by 'steward run').")],
    executor: ExecutorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rerun only what did not succeed in a pipeline run, as a new run.

    The new run reuses the outputs of the steps that succeeded (they show as CACHED) and runs the failed
    and skipped ones, with the same parameters, on the same executor unless --executor says otherwise.
    Exit code 0 when every step succeeded, 1 when one failed or on an error.
    """
    from steward.pipelines.sdk import resume_run

    execute(lambda progress: resume_run(run_id, executor, progress), as_json)
