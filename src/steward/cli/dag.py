"""Draw a pipeline run's DAG in the terminal, each step marked with its state.

Nodes are laid out in layers by topological depth (a root is depth 0, any other node one more than its
deepest upstream). Edges are shown three ways, whichever says it with the least ink:

- a chain of single nodes, each reading only from the one before, is one line: ``✓ load → ✓ split``;
- a line under ``↓`` reads from exactly the nodes of the line above (fan-out and fan-in both look so);
- any other line ends with its sources: ``← split, load``.

Nodes of one layer with the same sources share a line. A line with many nodes is collapsed into one
summary per step name (``inc``, 498 times: 497 SUCCEEDED, 1 FAILED) that names its failed nodes, so a
500-node fan-out stays a few lines high. ``steps_table`` lists the same steps with durations, attempts
and cache sources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from steward.cli.output import format_duration, new_table
from steward.core.time import now_ms
from steward.pipelines.models import PipelineRunInfo, PipelineState, StepRun, StepState

TIMES = "\u00d7"
"""The multiplication sign of a collapsed summary (``inc`` then it then ``498``)."""

SYMBOLS: Mapping[StepState, str] = {
    StepState.SUCCEEDED: "✓",
    StepState.CACHED: "↺",
    StepState.FAILED: "✗",
    StepState.SKIPPED: "\u2013",  # an en dash
    StepState.RUNNING: "●",
    StepState.PENDING: "○",
}
"""The mark of each step state."""

STYLES: Mapping[StepState, str] = {
    StepState.SUCCEEDED: "green",
    StepState.CACHED: "blue",
    StepState.FAILED: "bold red",
    StepState.SKIPPED: "yellow",
    StepState.RUNNING: "bold cyan",
    StepState.PENDING: "dim",
}
"""The colour of each step state."""

PIPELINE_STYLES: Mapping[PipelineState, str] = {
    PipelineState.RUNNING: "cyan",
    PipelineState.SUCCEEDED: "green",
    PipelineState.FAILED: "red",
    PipelineState.KILLED: "yellow",
}
"""The colour of each pipeline run state."""

MAX_GROUP = 8
"""A line of more nodes than this is collapsed into one summary per step name."""

MAX_SOURCES = 4
"""An edge annotation names at most this many sources (more are summarised by step name)."""

MAX_NAMED_FAILURES = 3
"""A collapsed summary names at most this many of its failed nodes."""

# The order in which a collapsed summary lists states, and picks its mark: the most urgent first.
_URGENCY = (
    StepState.FAILED,
    StepState.RUNNING,
    StepState.SKIPPED,
    StepState.PENDING,
    StepState.CACHED,
    StepState.SUCCEEDED,
)


def styled_state(state: StepState | PipelineState) -> str:
    """Return a step or pipeline state as rich markup, coloured (a step's with its mark)."""
    if isinstance(state, StepState):
        return f"[{STYLES[state]}]{SYMBOLS[state]} {state.value}[/{STYLES[state]}]"
    style = PIPELINE_STYLES.get(state, "white")
    return f"[{style}]{escape(state.value)}[/{style}]"


def step_duration(step: StepRun) -> float | None:
    """Seconds a step took, or has been running for; ``None`` if it never started."""
    if step.start_time is None:
        return None
    end = step.end_time if step.end_time is not None else now_ms()
    return max(end - step.start_time, 0) / 1000


def depths(steps: Sequence[StepRun]) -> dict[str, int]:
    """Each step's topological depth: 0 for a root, else one more than its deepest upstream.

    Args:
        steps: The nodes of a run; any order works, topological order (as recorded) takes one pass.
    """
    known = {s.key for s in steps}
    out: dict[str, int] = {}
    remaining = list(steps)
    while remaining:
        later: list[StepRun] = []
        for s in remaining:
            ups = [u for u in s.upstream if u in known]
            if all(u in out for u in ups):
                out[s.key] = 1 + max((out[u] for u in ups), default=-1)
            else:
                later.append(s)
        if len(later) == len(remaining):  # a cycle cannot be recorded; draw what is left at the bottom
            bottom = 1 + max(out.values(), default=-1)
            out.update({s.key: bottom for s in later})
            break
        remaining = later
    return out


@dataclass
class _Block:
    """One line of the drawing: a chain, or nodes of one layer that share their sources."""

    steps: list[StepRun]
    sources: frozenset[str]
    chain: bool = False
    implicit: bool = False
    source_keys: list[str] = field(default_factory=list)


def _blocks(steps: Sequence[StepRun]) -> list[_Block]:
    depth = depths(steps)
    layers: dict[int, list[StepRun]] = {}
    for s in steps:
        layers.setdefault(depth[s.key], []).append(s)
    blocks: list[_Block] = []
    for level in sorted(layers):
        groups: dict[frozenset[str], list[StepRun]] = {}
        for s in layers[level]:
            groups.setdefault(frozenset(s.upstream), []).append(s)
        for sources, members in groups.items():
            previous = blocks[-1] if blocks else None
            if (
                previous is not None
                and len(groups) == 1
                and len(members) == 1
                and (previous.chain or len(previous.steps) == 1)
                and sources == {previous.steps[-1].key}
            ):
                previous.steps.append(members[0])
                previous.chain = True
                continue
            block = _Block(list(members), sources, source_keys=list(members[0].upstream))
            if previous is not None and sources and not previous.chain:
                block.implicit = sources == {s.key for s in previous.steps}
            blocks.append(block)
    return blocks


def _node(step: StepRun, details: bool) -> Text:
    style = STYLES[step.state]
    text = Text(f"{SYMBOLS[step.state]} {step.key}", style=style)
    if details:
        notes: list[str] = []
        seconds = step_duration(step)
        if seconds is not None and step.state is not StepState.CACHED:
            notes.append(format_duration(seconds))
        if step.attempts > 1:
            notes.append(f"{step.attempts} tries")
        if notes:
            text.append(" " + " ".join(notes), style="dim")
    return text


def _summary(name: str, members: Sequence[StepRun]) -> Text:
    counts: dict[StepState, int] = {}
    for s in members:
        counts[s.state] = counts.get(s.state, 0) + 1
    mark = next(state for state in _URGENCY if state in counts)
    text = Text(f"{SYMBOLS[mark]} {name} {TIMES}{len(members)}", style=STYLES[mark])
    text.append(" (")
    for i, state in enumerate(state for state in SYMBOLS if state in counts):
        if i:
            text.append(", ")
        text.append(f"{counts[state]} {state.value}", style=STYLES[state])
    text.append(")")
    failed = [s.key for s in members if s.state is StepState.FAILED]
    if failed:
        shown = ", ".join(failed[:MAX_NAMED_FAILURES])
        more = f" +{len(failed) - MAX_NAMED_FAILURES} more" if len(failed) > MAX_NAMED_FAILURES else ""
        text.append(f" ✗ {shown}{more}", style=STYLES[StepState.FAILED])
    return text


def _collapsed(steps: Sequence[StepRun]) -> list[Text]:
    """One summary per step name that has several nodes here; single nodes stay as they are."""
    by_name: dict[str, list[StepRun]] = {}
    for s in steps:
        by_name.setdefault(s.step, []).append(s)
    return [
        _summary(name, members) if len(members) > 1 else _node(members[0], False)
        for name, members in by_name.items()
    ]


def describe_sources(keys: Sequence[str], step_names: Mapping[str, str]) -> str:
    """Name a node's sources briefly: ``a, b``, or by step name (``inc``, 498 times) when there are many.

    Args:
        keys: The upstream node keys, in order.
        step_names: Each node key's step name.
    """
    if len(keys) <= MAX_SOURCES:
        return ", ".join(keys)
    counts: dict[str, int] = {}
    for key in keys:
        name = step_names.get(key, key)
        counts[name] = counts.get(name, 0) + 1
    parts = [name if n == 1 else f"{name} {TIMES}{n}" for name, n in counts.items()]
    if len(parts) > MAX_SOURCES:
        parts = [*parts[: MAX_SOURCES - 1], f"… ({len(keys)} steps)"]
    return ", ".join(parts)


def _wrap(items: Sequence[Text], separator: str, width: int, indent: str, tail: Text | None) -> list[Text]:
    """Lay ``items`` out on lines of at most ``width`` cells, wrapping between items.

    A continuation line starts with ``indent`` and the visible part of ``separator`` (``→`` for a chain).
    """
    lead = separator.lstrip()
    lines: list[Text] = []
    line = Text()
    for i, item in enumerate(items):
        piece = Text(separator) + item if i else item
        if i and line.cell_len + piece.cell_len > width:
            lines.append(line)
            line = Text(indent + lead) + item
        else:
            line.append_text(piece)
    if tail is not None:
        if line.cell_len + tail.cell_len > width:
            lines.append(line)
            line = Text(indent) + Text(tail.plain.lstrip(), style=tail.style)
        else:
            line.append_text(tail)
    lines.append(line)
    return lines


class DagView:
    """A rich renderable of a pipeline run's DAG (see the module's docstring for how it reads).

    Args:
        info: The run (or its state so far, during a run).
        details: Add each node's duration and, after a retry, its attempts.
        legend: End with a line explaining the marks that appear.
        max_group: Collapse a line of more nodes than this into summaries by step name.
    """

    def __init__(
        self, info: PipelineRunInfo, *, details: bool = True, legend: bool = True, max_group: int = MAX_GROUP
    ) -> None:
        self.info = info
        self.details = details
        self.legend = legend
        self.max_group = max_group

    def lines(self, width: int = 100) -> list[Text]:
        """The drawing as lines of at most ``width`` cells (a long chain or layer wraps)."""
        steps = list(self.info.steps)
        if not steps:
            return [Text("(no steps)", style="dim")]
        names = {s.key: s.step for s in steps}
        out: list[Text] = []
        for block in _blocks(steps):
            if block.implicit:
                out.append(Text("↓", style="dim"))
            if block.chain:
                items = [_node(s, self.details) for s in block.steps]
                sources = None if block.implicit else self._sources(block, names)
                if sources is not None:  # in brackets on the chain's head, which alone reads from them
                    items[0] = items[0] + Text(f" ({sources.plain.strip()})", style="dim")
                out.extend(_wrap(items, " → ", width, "  ", None))
                continue
            many = len(block.steps) > self.max_group
            items = _collapsed(block.steps) if many else [_node(s, self.details) for s in block.steps]
            tail = None if block.implicit else self._sources(block, names)
            out.extend(_wrap(items, "  ", width, "  ", tail))
        if self.legend:
            present = {s.state for s in steps}
            marks = [f"{SYMBOLS[state]} {state.value.lower()}" for state in SYMBOLS if state in present]
            out.append(Text("   ".join(marks), style="dim"))
        return out

    def _sources(self, block: _Block, names: Mapping[str, str]) -> Text | None:
        if not block.source_keys:
            return None
        return Text(f"   ← {describe_sources(block.source_keys, names)}", style="dim")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)


def render_dag(info: PipelineRunInfo, *, details: bool = True, legend: bool = True) -> DagView:
    """Return the DAG of ``info`` as a rich renderable (``console.print(render_dag(info))``).

    Args:
        info: The pipeline run, finished or in progress.
        details: Show durations and retries on the nodes.
        legend: End with the meaning of the marks used.
    """
    return DagView(info, details=details, legend=legend)


def dag_text(info: PipelineRunInfo, width: int = 100, *, details: bool = True, legend: bool = True) -> str:
    """Return the DAG of ``info`` as plain text (no colours), ``width`` cells wide at most.

    Args:
        info: The pipeline run.
        width: The widest line.
        details: Show durations and retries on the nodes.
        legend: End with the meaning of the marks used.
    """
    view = DagView(info, details=details, legend=legend)
    return "\n".join(line.plain.rstrip() for line in view.lines(width))


def _interesting_first(steps: Sequence[StepRun], limit: int) -> list[StepRun]:
    """At most ``limit`` steps in recorded order: failed and running ones first, then the rest."""
    if len(steps) <= limit:
        return list(steps)
    urgent = {StepState.FAILED, StepState.RUNNING}
    chosen = {s.key for s in steps if s.state in urgent}
    for s in steps:
        if len(chosen) >= limit:
            break
        chosen.add(s.key)
    return [s for s in steps if s.key in chosen][: max(limit, 1)]


def last_lines(text: str | None, count: int = 1) -> list[str]:
    """The last ``count`` lines of ``text`` that say something; of a traceback, from its last frame on.

    Blank lines and the ``^^^^`` markers under a traceback's source lines are left out, and so are the
    frames before the last (Steward's own, which called the step).
    """
    lines = [line for line in (text or "").splitlines() if line.strip(" \t^~")]
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if frames:
        lines = lines[frames[-1] :]
    return lines[-count:]


def steps_table(info: PipelineRunInfo, limit: int = 50) -> Table:
    """Return a table of a run's steps: state, duration, attempts and sources of each.

    A column for the cache source, the host and the error is added only when a step has one to show
    (the host when steps ran on more than one), so the table stays narrow for the common run.

    Args:
        info: The pipeline run.
        limit: Show at most this many steps (failed and running ones first); the caption says so.
    """
    names = {s.key: s.step for s in info.steps}
    shown = _interesting_first(info.steps, limit)
    cached = any(s.cached_from for s in shown)
    hosts = len({s.host for s in shown if s.host}) > 1
    failed = any(s.state is StepState.FAILED for s in shown)
    columns: list[Column] = [
        Column("Step", no_wrap=True),
        Column("State", no_wrap=True),
        Column("Duration", justify="right", no_wrap=True),
        Column("Tries", justify="right", no_wrap=True),
        Column("From", overflow="fold"),
    ]
    if cached:
        columns.append(Column("Cached from", no_wrap=True))
    if hosts:
        columns.append(Column("Host", overflow="fold"))
    if failed:
        columns.append(Column("Error", overflow="fold", ratio=1))
    table = new_table(*columns)
    for s in shown:
        seconds = step_duration(s)
        row = [
            escape(s.key),
            styled_state(s.state),
            format_duration(seconds) if seconds is not None and s.state is not StepState.CACHED else "-",
            str(s.attempts) if s.attempts else "-",
            escape(describe_sources(list(s.upstream), names)) or "-",
        ]
        if cached:
            row.append(s.cached_from or "-")
        if hosts:
            row.append(escape(s.host) or "-")
        if failed:
            error = last_lines(s.error) if s.state is StepState.FAILED else []
            row.append(f"[red]{escape(error[0])}[/red]" if error else "")
        table.add_row(*row)
    if len(shown) < len(info.steps):
        table.caption = f"showing {len(shown)} of {len(info.steps)} steps: use --json for all"
    return table


def count_text(counts: Mapping[str, int], *, compact: bool = False) -> str:
    """Return step counts as rich markup, e.g. ``✓ 4 succeeded  ✗ 1 failed`` (states with none left out).

    Args:
        counts: Steps per state value (``PipelineRunInfo.counts()``).
        compact: Marks and numbers only (``✓ 4 ✗ 1``), for a table cell.
    """
    parts = []
    for state in SYMBOLS:
        if counts.get(state.value):
            label = "" if compact else f" {state.value.lower()}"
            parts.append(f"[{STYLES[state]}]{SYMBOLS[state]} {counts[state.value]}{label}[/{STYLES[state]}]")
    return (" " if compact else "  ").join(parts) or "[dim]no steps[/dim]"


def iter_failed(info: PipelineRunInfo) -> Iterator[StepRun]:
    """The failed steps of a run, in recorded order."""
    return (s for s in info.steps if s.state is StepState.FAILED)
