"""``steward run`` and ``steward pipelines``: run a pipeline with a live view, and list pipeline runs.

``steward run path/to/file.py:name -p C=0.5 --executor processes`` imports the pipeline, converts each
``-p`` value to the type its parameter is annotated with, runs it, and ends with the DAG and a summary;
``steward runs resume`` and ``steward runs show`` (in ``steward.cli.runs``) share the views here. While
it runs, a live view on stderr (when stderr is a terminal) shows the step counts and the running steps;
elsewhere only the final summary is printed. Exit code 0 when the run succeeded, 1 when it failed or on
an error (a file that does not import, an unknown pipeline or parameter: one line, no traceback).
"""

from __future__ import annotations

import inspect
import json
import sys
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Column
from rich.text import Text

from steward.cli.dag import (
    count_text,
    iter_failed,
    last_lines,
    render_dag,
    step_duration,
    steps_table,
    styled_state,
)
from steward.cli.output import (
    JsonOption,
    connection,
    console,
    details_grid,
    format_duration,
    format_size,
    format_time,
    new_table,
    print_error,
    print_json,
)
from steward.core.time import from_ms, now_ms
from steward.errors import InvalidInput
from steward.pipelines.models import PipelineRunInfo, PipelineState, StepState

if TYPE_CHECKING:
    from steward.pipelines.runner import Progress
    from steward.pipelines.sdk import Pipeline, PipelineRun

app = typer.Typer(help="List pipeline runs (run one with 'steward run FILE.py:NAME').", no_args_is_help=True)

ERROR_LINES = 4
"""How many last lines of a failed step's error the summary prints."""

MAX_RESULT_CHARS = 200
"""A pipeline's result is printed when its JSON is at most this long."""

LIVE_DAG_STEPS = 40
"""The live view draws the DAG too for a pipeline of at most this many steps."""

LIVE_RUNNING = 8
"""The live view names at most this many running steps."""

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (the run is recorded as KILLED)."""

ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        "-e",
        help="Where steps run: local, processes, processes:N, ray or ray://host:port.",
        show_default=False,
    ),
]
"""The ``--executor`` option of ``run`` and ``runs resume``."""

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}
_MISSING = object()


# -- parameters -------------------------------------------------------------------------------------


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: use only those that are real types
        params = inspect.signature(fn).parameters.values()
        return {p.name: p.annotation for p in params if isinstance(p.annotation, type)}


def convert_param(name: str, text: str, hint: Any) -> Any:
    """Convert one ``-p`` value to the type its parameter is annotated with.

    ``int``, ``float``, ``bool`` (``true/false``, ``yes/no``, ``on/off``, ``1/0``) and ``str`` are
    converted (``none`` is ``None`` for an optional one); any other annotation, or none, takes the value
    as JSON when it parses (``3``, ``[1, 2]``, ``{"a": 1}``) and as the plain string otherwise.

    Args:
        name: The parameter's name, for the error message.
        text: The value as typed.
        hint: The parameter's annotation, or ``None``.

    Raises:
        InvalidInput: If the value does not fit an ``int``, ``float`` or ``bool`` annotation.
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)) and text.strip().lower() in _NONE:
            return None
        hint = args[0] if len(args) == 1 else None
    if hint is str:
        return text
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise InvalidInput(f"parameter {name}: {text!r} is not a boolean (true or false)", {"field": name})
    if hint is int or hint is float:
        try:
            return hint(text)
        except ValueError:
            kind = "an integer" if hint is int else "a number"
            raise InvalidInput(f"parameter {name}: {text!r} is not {kind}", {"field": name}) from None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(pipeline: Pipeline, raw: Sequence[str]) -> dict[str, Any]:
    """Turn ``-p KEY=VALUE`` options into the pipeline's parameters (see ``convert_param``).

    Args:
        pipeline: The pipeline whose annotations give the types.
        raw: The options as typed.

    Raises:
        InvalidInput: For an option without ``=``, a key given twice, or a value of the wrong type.
    """
    hints = _hints(pipeline.fn)
    out: dict[str, Any] = {}
    for item in raw:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"-p {item!r}: write a parameter as KEY=VALUE", {"field": "params"})
        if key in out:
            raise InvalidInput(f"parameter {key} is given twice", {"field": key})
        out[key] = convert_param(key, text, hints.get(key))
    return out


# -- the live view and the summary ------------------------------------------------------------------


class LiveView:
    """The progress callback of a run and the live view of it: counts, running steps, a small DAG.

    The runner calls it with the run's state after each batch of changes; rich renders it (from its
    refresh thread) whenever the screen is redrawn, so the clocks keep moving between batches.
    """

    def __init__(self) -> None:
        self.info: PipelineRunInfo | None = None
        self.started = time.monotonic()

    def __call__(self, info: PipelineRunInfo) -> None:
        """Take the run's latest state (the ``progress`` callback)."""
        self.info = info

    def __rich__(self) -> RenderableType:
        """Render the latest state."""
        elapsed = format_duration(time.monotonic() - self.started)
        info = self.info
        if info is None:
            return Spinner("dots", text=f"starting the pipeline … {elapsed}")
        head = Text.from_markup(
            f"[bold]{escape(info.pipeline)}[/bold] {info.run_id} {elapsed}   {count_text(info.counts())}"
        )
        parts: list[RenderableType] = [Spinner("dots", text=head)]
        running = [s for s in info.steps if s.state is StepState.RUNNING]
        for s in running[:LIVE_RUNNING]:
            seconds = step_duration(s)
            tries = f" (attempt {s.attempts})" if s.attempts > 1 else ""
            clock = format_duration(seconds) if seconds is not None else ""
            parts.append(Text.from_markup(f"  [bold cyan]●[/bold cyan] {escape(s.key)} {clock}{tries}"))
        if len(running) > LIVE_RUNNING:
            parts.append(Text(f"  … {len(running) - LIVE_RUNNING} more running", style="dim"))
        if len(info.steps) <= LIVE_DAG_STEPS:
            parts.extend([Text(), render_dag(info, details=False, legend=False)])
        return Group(*parts)


def run_seconds(info: PipelineRunInfo) -> float:
    """Seconds from a pipeline run's start to its end (or to now, while it runs)."""
    end = info.end_time if info.end_time is not None else now_ms()
    return max(end - info.start_time, 0) / 1000


def _inline(value: Any) -> Any:
    """What a pipeline returned, from the values carried inline in its outputs; ``_MISSING`` if stored."""
    if not isinstance(value, Mapping):
        return _MISSING
    if "ref" in value:
        return value["ref"].get("inline", _MISSING)
    if "list" in value:
        items = [_inline(v) for v in value["list"]]
        return _MISSING if any(i is _MISSING for i in items) else items
    if "dict" in value:
        found = {k: _inline(v) for k, v in value["dict"].items()}
        return _MISSING if any(v is _MISSING for v in found.values()) else found
    return value.get("value")


def small_result(info: PipelineRunInfo) -> tuple[bool, Any]:
    """``(True, value)`` when the run's result is recorded inline and short to print, else ``(False, None)``.

    Args:
        info: A succeeded pipeline run.
    """
    value = _inline(info.outputs)
    if value is _MISSING:
        return False, None
    if len(json.dumps(value, default=str)) > MAX_RESULT_CHARS:
        return False, None
    return True, value


def _result_line(info: PipelineRunInfo) -> str | None:
    if info.state is not PipelineState.SUCCEEDED or info.outputs is None:
        return None
    shown, value = small_result(info)
    if shown:
        return f"[bold]Result:[/bold] {escape(json.dumps(value, default=str))}"
    ref = info.outputs.get("ref") if isinstance(info.outputs, Mapping) else None
    if ref:
        return f"[bold]Result:[/bold] {escape(ref.get('type', ''))} ({format_size(int(ref.get('size', 0)))})"
    return "[bold]Result:[/bold] [dim]stored (too large to print)[/dim]"


def run_json(info: PipelineRunInfo) -> dict[str, Any]:
    """The ``--json`` form of a run: ``PipelineRunInfo.to_json()`` with counts, duration and small result.

    Args:
        info: The pipeline run.
    """
    shown, value = small_result(info) if info.state is PipelineState.SUCCEEDED else (False, None)
    return {
        **info.to_json(),
        "counts": info.counts(),
        "duration_ms": int(run_seconds(info) * 1000),
        "result": value if shown else None,
    }


def headline(info: PipelineRunInfo) -> str:
    """One line of rich markup: pipeline, run id, state, duration and step counts."""
    return (
        f"[bold]{escape(info.pipeline)}[/bold] run {info.run_id}: {styled_state(info.state)} "
        f"in {format_duration(run_seconds(info))}   {count_text(info.counts())}"
    )


def print_failures(info: PipelineRunInfo) -> None:
    """Print each failed step with the last lines of its error."""
    for s in iter_failed(info):
        tries = f" after {s.attempts} attempts" if s.attempts > 1 else ""
        console.print(f"[bold red]✗ {escape(s.key)}[/bold red] failed{tries}:")
        for line in last_lines(s.error, ERROR_LINES):
            console.print(f"    {escape(line)}", style="red", soft_wrap=True)


def print_outcome(info: PipelineRunInfo) -> None:
    """Print the end of a run: the DAG, the headline, failures or the result, and what to do next."""
    console.print(render_dag(info))
    console.print()
    console.print(headline(info))
    if info.resumed_from:
        reused = sum(1 for s in info.steps if s.state is StepState.CACHED)
        console.print(f"Resumed from {info.resumed_from}: {reused} step(s) reused")
    if info.params:
        params = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in info.params.items())
        console.print(f"[bold]Params:[/bold] {escape(params)}")
    print_failures(info)
    result = _result_line(info)
    if result is not None:
        console.print(result)
    if info.state is not PipelineState.SUCCEEDED:
        console.print(f"Rerun what did not succeed with: [bold]steward runs resume {info.run_id}[/bold]")
    console.print(f"Show it again with: [bold]steward runs show {info.run_id}[/bold]")


def execute(start: Callable[[Progress | None], PipelineRun], as_json: bool) -> None:
    """Run a pipeline through ``start`` with the live view (on a terminal), then print how it ended.

    Args:
        start: Starts the run with the given progress callback and returns the finished run.
        as_json: Print ``run_json`` instead of the summary.

    Raises:
        typer.Exit: With code 1 if the run did not succeed, 130 after Ctrl-C.
    """
    view = LiveView()
    # Bound to the stream itself: a step run in this process redirects sys.stdout and sys.stderr.
    live_console = Console(file=sys.stderr, highlight=False)
    try:
        if live_console.is_terminal:
            with Live(
                view,
                console=live_console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            ):
                run = start(view)
        else:
            run = start(None)
    except KeyboardInterrupt:
        which = f"pipeline run {view.info.run_id}" if view.info is not None else "the pipeline run"
        print_error(f"interrupted: {which} was recorded as KILLED")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    info = run.info
    if as_json:
        print_json(run_json(info))
    else:
        print_outcome(info)
    if info.state is not PipelineState.SUCCEEDED:
        raise typer.Exit(code=1)


def print_pipeline_details(info: PipelineRunInfo) -> None:
    """Print a pipeline run's section of ``steward runs show``: what ran, where, the DAG and the steps."""
    rows = [
        ("Pipeline", f"{escape(info.pipeline)} [dim]({escape(info.reference)})[/dim]"),
        ("State", f"{styled_state(info.state)}   {count_text(info.counts())}"),
        ("Executor", escape(info.executor) or "-"),
        ("Hosts", escape(", ".join(sorted({s.host for s in info.steps if s.host}))) or "-"),
        ("Duration", format_duration(run_seconds(info)) + ("" if info.end_time else " (still running)")),
    ]
    if info.resumed_from:
        rows.append(("Resumed from", info.resumed_from))
    if info.error:
        rows.append(("Error", f"[red]{escape(info.error)}[/red]"))
    result = _result_line(info)
    if result is not None:
        rows.append(("Result", result.removeprefix("[bold]Result:[/bold] ")))
    console.print("[bold]Pipeline[/bold]")
    console.print(details_grid(rows))
    console.print()
    console.print(render_dag(info))
    console.print()
    console.print(steps_table(info))
    console.print()
    if any(s.state is StepState.FAILED for s in info.steps):
        print_failures(info)
        console.print()


# -- commands ---------------------------------------------------------------------------------------


def run_pipeline(
    reference: Annotated[
        str, typer.Argument(help="The pipeline: path/to/file.py:name or package.module:name.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="A parameter as KEY=VALUE (repeatable), converted to the type it is annotated with.",
            show_default=False,
        ),
    ] = None,
    executor: ExecutorOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, even those whose outputs are cached.")
    ] = False,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", help="Record the run in this experiment (default: the pipeline's name)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline: steps in dependency order, unchanged ones reused from the cache.

    Shows a live view of the running steps, then the DAG with each step's state and a summary. Exit
    code 0 when every step succeeded, 1 when one failed (its dependants are skipped) or on an error.
    """
    from steward.pipelines.sdk import load_pipeline

    found = load_pipeline(reference)
    params = parse_params(found, param or [])
    chosen = executor or "local"
    execute(
        lambda progress: found.run(
            executor=chosen, cache=not no_cache, experiment=experiment, progress=progress, **params
        ),
        as_json,
    )


@app.command("list")
def list_pipeline_runs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.", show_default=False)
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max-results", "-n", min=1, max=1000, help="Show at most this many runs.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """List pipeline runs, newest first: state, executor, steps per state, start and duration."""
    with connection() as conn:
        runs = conn.pipelines
        found = runs.list_runs(pipeline, max_results)
    if as_json:
        print_json([{**info.to_json(), "counts": info.counts()} for info in found])
        return
    if not found:
        which = f" of [bold]{escape(pipeline)}[/bold]" if pipeline else ""
        console.print(f"No pipeline runs{which} yet. Run one with [bold]steward run FILE.py:NAME[/bold].")
        return
    table = new_table(
        Column("Run ID", no_wrap=True),
        Column("Pipeline", overflow="fold", min_width=8),
        Column("State", no_wrap=True),
        Column("Executor", overflow="fold", min_width=5),
        Column("Steps", no_wrap=True),
        Column("Started (UTC)", min_width=10),
        Column("Duration", justify="right", no_wrap=True),
    )
    for info in found:
        resumed = " [dim](resumed)[/dim]" if info.resumed_from else ""
        table.add_row(
            info.run_id,
            escape(info.pipeline) + resumed,
            styled_state(info.state),
            escape(info.executor),
            count_text(info.counts(), compact=True),
            format_time(from_ms(info.start_time)),
            format_duration(run_seconds(info)),
        )
    if len(found) == max_results:
        table.caption = f"showing the newest {max_results} runs: raise --max-results for more"
    console.print(table)
