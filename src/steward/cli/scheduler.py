"""``steward scheduler``: the process that fires due triggers and monitors (``automation.scheduler``).

It makes a pass every ``--interval`` seconds, prints a line per firing above a status line, and stops
cleanly on Ctrl-C (or SIGTERM): the pass under way finishes, its leases are given up. A second Ctrl-C
interrupts the action under way (its firing is recorded as failed). Run as many as you like against one
database: each due time fires once. ``--once`` makes one pass and exits.

It works on the stores directly (embedded mode): the pipelines it starts run here, with this machine's
access to the metadata database and the artifact store.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from steward.cli.output import JsonOption, console, embedded_platform, format_time, print_json

if TYPE_CHECKING:
    from steward.automation.models import Firing
    from steward.automation.scheduler import Scheduler

STYLES = {"succeeded": "green", "failed": "red", "abandoned": "yellow", "running": "cyan"}


def _firing_line(firing: Firing) -> str:
    result = firing.details.get("result") or {}
    details = result.get("details") or {}
    style = STYLES.get(firing.outcome.value, "white")
    what = f"run {details['run_id']}" if details.get("run_id") else ""
    if details.get("fired"):
        what = f"{len(details['fired'])} alert(s) fired"
    error = f" - {details['error']}" if details.get("error") else ""
    outcome = f"[{style}]{firing.outcome.value}[/{style}]"
    return (
        f"{format_time(firing.fired_at)} [bold]{escape(firing.trigger)}[/bold] "
        f"(due {format_time(firing.due_at)}) {outcome} {escape(what)}{escape(error)}"
    )


def _status_line(scheduler: Scheduler) -> str:
    status = scheduler.status
    line = (
        f"scheduler {escape(status.holder)}: watching {status.watching}, fired {status.fired} "
        f"({status.failed} failed), last pass {format_time(status.last_tick_at)}"
    )
    return line + (f" [red]- {escape(status.last_error)}[/red]" if status.last_error else "")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM sets ``stop``; a second Ctrl-C interrupts (KeyboardInterrupt)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("Stopping after the pass under way (Ctrl-C again to interrupt it) ...")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def scheduler(
    interval: Annotated[
        float, typer.Option("--interval", "-i", min=0.0, help="Seconds between passes.")
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Make one pass and exit.")] = False,
    lease: Annotated[
        float,
        typer.Option("--lease", min=1.0, help="Seconds a lease on a running trigger lasts unless renewed."),
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Fire due triggers (cron, interval, new dataset versions) and monitors until Ctrl-C."""
    from steward.automation.scheduler import Scheduler

    with embedded_platform(
        "steward scheduler works on the stores", "run it where the metadata database is reachable"
    ) as platform:
        running = Scheduler(platform, interval=interval, lease_s=lease)
        if once:
            fired = running.tick()
            if as_json:
                print_json([f.to_json() for f in fired])
                return
            for firing in fired:
                console.print(_firing_line(firing))
            console.print(_status_line(running))
            return
        stop = threading.Event()
        try:
            with _stop_on_signals(stop), console.status(_status_line(running)) as line:

                def on_tick(fired: list[Firing]) -> None:
                    for firing in fired:
                        console.print(_firing_line(firing))
                    line.update(_status_line(running))

                running.run_forever(stop, on_tick)
        except KeyboardInterrupt:
            console.print("Scheduler interrupted.")
            raise typer.Exit(code=130) from None
    console.print(f"Scheduler stopped: {running.status.fired} firing(s), {running.status.failed} failed.")
