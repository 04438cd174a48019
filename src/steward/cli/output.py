"""What every command shares for output: rich tables on stdout, ``--json``, and one-line errors on stderr.

Tables and messages go to ``console`` (stdout) and errors to ``err_console`` (stderr). A command called
with ``--json`` prints only ``print_json``'s output to stdout, with no markup, so it can be piped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from steward.config import Settings, load_settings
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.store.platform import Platform
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

import steward
from steward.errors import StewardError
from steward.tracking.models import Artifact, RunStatus

console = Console(highlight=False, soft_wrap=True)
"""Human-readable output (stdout)."""

err_console = Console(stderr=True, highlight=False)
"""Errors and progress that must not mix with machine-readable stdout."""

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
"""The ``--json`` flag every listing takes."""

STATUS_STYLES: Mapping[str, str] = {
    RunStatus.RUNNING: "cyan",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "yellow",
}


@contextmanager
def connection() -> Iterator[steward.Connection]:
    """Open Steward's services (embedded, or the server ``STEWARD_URI`` names) for one command.

    Yields:
        The connection; it is closed when the block ends.
    """
    with closing(steward.connect()) as conn:
        yield conn


def refuse_remote(what: str, instead: str) -> Settings:
    """Return the settings of a command that works on the stores directly, refusing ``STEWARD_URI``.

    Args:
        what: What the command does, for the message (``steward audit reads the trail from the database``).
        instead: What to do instead (``ask the server (GET /api/v1/audit)``).

    Raises:
        InvalidInput: If ``STEWARD_URI`` points at a server.
    """
    settings = load_settings()
    if settings.uri:
        raise InvalidInput(
            f"{what} directly, but STEWARD_URI points at a server ({settings.uri}); {instead}, or run it "
            "where the stores are reachable, without STEWARD_URI",
            {"field": "uri"},
        )
    return settings


@contextmanager
def embedded_platform(what: str, instead: str) -> Iterator[Platform]:
    """Open the local platform for one command that must not go through a server (``refuse_remote``)."""
    from steward.store.platform import Platform

    platform = Platform.from_settings(refuse_remote(what, instead))
    try:
        yield platform
    finally:
        platform.close()


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON to stdout, with no markup (datetimes become ISO 8601).

    Args:
        data: Anything ``json`` can write; other objects are written with ``str``.
    """
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def print_error(message: str) -> None:
    """Print ``error: <message>`` in red, on one line, to stderr.

    Args:
        message: What went wrong; newlines are folded so the message stays on one line.
    """
    line = " ".join(message.split())
    err_console.print(f"[bold red]error:[/bold red] [red]{escape(line)}[/red]", soft_wrap=True)


def print_steward_error(exc: StewardError) -> None:
    """Print a Steward error the way every command reports one (``error: <message>``).

    Args:
        exc: The error.
    """
    print_error(exc.message)


def new_table(*columns: str | Column, title: str | None = None) -> Table:
    """Return a rich table with Steward's look and the given columns.

    Args:
        *columns: Column headers (wrapped when space is short) or ``rich.table.Column`` objects
            (e.g. ``Column("Run ID", no_wrap=True)`` for values that must stay whole), left to right.
        title: An optional title above the table.
    """
    made = [column if isinstance(column, Column) else Column(column, overflow="fold") for column in columns]
    return Table(
        *made, title=title, title_justify="left", header_style="bold", show_edge=False, pad_edge=False
    )


def key_value_table(rows: Mapping[str, str], title: str | None = None) -> Table:
    """Return a two-column ``key  value`` table (e.g. a run's params), keys sorted.

    Args:
        rows: The keys and values.
        title: An optional title above the table.
    """
    table = new_table("Key", "Value", title=title)
    for key in sorted(rows):
        table.add_row(escape(key), escape(rows[key]))
    return table


def artifact_table(artifacts: Sequence[Artifact], title: str | None = None) -> Table:
    """Return a table of a run's artifacts (path, size, digest) with the total size as caption.

    Args:
        artifacts: The artifacts, in the order to show them.
        title: An optional title above the table.
    """
    table = new_table("Path", Column("Size", justify="right", no_wrap=True), "Digest", title=title)
    for artifact in artifacts:
        table.add_row(escape(artifact.path), format_size(artifact.size), artifact.digest[:16])
    table.caption = f"{len(artifacts)} file(s), {format_size(sum(a.size for a in artifacts))}"
    return table


def styled_status(status: str) -> str:
    """Return the run status as rich markup, coloured by state."""
    style = STATUS_STYLES.get(status, "white")
    return f"[{style}]{escape(status)}[/{style}]"


def format_time(moment: datetime | None) -> str:
    """Format a time as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-`` for none."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration_seconds(start: datetime, end: datetime | None) -> float:
    """Return seconds from ``start`` to ``end`` (or to now, for a run still going)."""
    return ((end or datetime.now(UTC)) - start).total_seconds()


def format_duration(seconds: float) -> str:
    """Format seconds as ``850ms``, ``12.3s``, ``4m 05s`` or ``2h 03m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_size(size: int) -> str:
    """Format a byte count: ``512 B``, ``12.4 KiB``, ``3.1 MiB``."""
    if size < 1024:
        return f"{size} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    value, index = size / 1024, 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{value:.1f} {units[index]}"


def format_number(value: float | None, digits: int = 6) -> str:
    """Format a metric value with up to ``digits`` significant digits, or ``-`` when absent."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


VERSION_STATUS_STYLES: Mapping[str, str] = {"READY": "green", "ARCHIVED": "dim"}
"""Colours of model version statuses (``steward.registry.models.VersionStatus``)."""


def styled_version_status(status: str) -> str:
    """Return a model version's status as rich markup: READY green, ARCHIVED dimmed."""
    style = VERSION_STATUS_STYLES.get(status, "white")
    return f"[{style}]{escape(status)}[/{style}]"


def details_grid(rows: Sequence[tuple[str, str]]) -> Table:
    """Return a borderless ``label  value`` grid for one object's details, labels in bold.

    Args:
        rows: ``(label, value)`` pairs, in order; values are rich markup (escape user text first).
    """
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
"""The block characters ``sparkline`` draws with, lowest to highest."""


def sparkline(counts: Sequence[float]) -> str:
    """Draw counts as a one-line bar chart (``▁▃█▅``), scaled to the largest; an empty bin is a space.

    Args:
        counts: The heights, e.g. a histogram's bin counts, left to right.
    """
    top = max(counts, default=0)
    steps = len(SPARK_BLOCKS)
    return "".join(
        SPARK_BLOCKS[max(math.ceil(count / top * steps) - 1, 0)] if count > 0 else " " for count in counts
    )


def format_percent(share: float | None, digits: int = 1) -> str:
    """Format a share in [0, 1] as a percentage (``12.5%``), or ``-`` when absent."""
    if share is None:
        return "-"
    return f"{share * 100:.{digits}f}%"
