"""``steward audit``: read, verify and export the audit trail.

The trail is read from the metadata database directly (the commands refuse to run with ``STEWARD_URI``;
a server answers ``GET /api/v1/audit`` and ``GET /api/v1/audit/verify``). ``verify`` checks every hash
and every signed checkpoint against the platform's public key (or ``--public-key``) and exits 1 at the
first bad entry; ``export`` writes JSON lines that ``verify --file`` (or a SIEM) can check again.

Times (``--since``, ``--until``) are ISO 8601 dates or times (``2026-12-01``, ``2026-12-01T10:00Z``;
without a zone, UTC) or a span back from now: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.output import (
    JsonOption,
    console,
    embedded_platform,
    err_console,
    format_time,
    new_table,
    print_json,
)
from steward.config import load_settings
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.governance.audit import AuditEntry, AuditService, VerifyReport

app = typer.Typer(
    help="Read, verify and export the audit trail: every state change, hash-chained and signed.",
    no_args_is_help=True,
)

_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_OUTCOME_STYLES = {"ok": "green", "denied": "yellow", "failed": "red"}


class ExportFormat(StrEnum):
    """The formats ``export`` writes."""

    jsonl = "jsonl"


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """Parse an ISO 8601 date or time (UTC unless it says otherwise) or a span back from now (``24h``).

    Raises:
        typer.BadParameter: It is neither.
    """
    span = _SPAN.match(value)
    if span:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a time: give an ISO date or time (2026-12-01, 2026-12-01T10:00Z) "
            "or a span back from now (30m, 24h, 7d)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _time_option(name: str, help_text: str) -> Any:
    return typer.Option(name, parser=parse_time, metavar="TIME", help=help_text, show_default=False)


def _file_option(name: str, help_text: str, *short: str) -> Any:
    return typer.Option(
        name, *short, exists=True, dir_okay=False, readable=True, show_default=False, help=help_text
    )


@contextmanager
def _audit() -> Iterator[AuditService]:
    from steward.governance.audit import AuditService

    with embedded_platform(
        "steward audit reads the trail from the database", "ask the server (GET /api/v1/audit)"
    ) as platform:
        yield AuditService(platform)


# -- log ---------------------------------------------------------------------------------------------


@app.command("log")
def log(
    actor: Annotated[str | None, typer.Option("--actor", help="Only entries by this actor.")] = None,
    resource: Annotated[
        str | None,
        typer.Option(
            "--resource", metavar="KIND[:ID]", help="Only entries about this kind of resource (or one)."
        ),
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action (dataset.publish …).")
    ] = None,
    since: Annotated[datetime | None, _time_option("--since", "Only entries at or after TIME.")] = None,
    until: Annotated[datetime | None, _time_option("--until", "Only entries at or before TIME.")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="Show the newest N entries.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the newest entries of the audit trail, oldest of them first, filtered by every option given."""
    kind, _, resource_id = (resource or "").partition(":")
    with _audit() as audit:
        found = audit.log(
            actor=actor, resource_kind=kind or None, resource_id=resource_id or None, action=action,
            since=since, until=until, limit=limit,
        )  # fmt: skip
    found.reverse()
    if as_json:
        print_json([entry.to_json() for entry in found])
        return
    if not found:
        console.print("No audit entries match.")
        return
    console.print(_entries_table(found))


def _entries_table(found: list[AuditEntry]) -> Any:
    from steward.core.time import from_ms

    table = new_table(
        Column("Seq", justify="right", no_wrap=True), Column("Time (UTC)", no_wrap=True), "Actor",
        Column("Action", no_wrap=True), "Resource", Column("Outcome", no_wrap=True), "Details",
    )  # fmt: skip
    for entry in found:
        style = _OUTCOME_STYLES.get(entry.outcome, "white")
        details = json.dumps(dict(entry.details), ensure_ascii=False, default=str) if entry.details else ""
        table.add_row(
            str(entry.seq),
            format_time(from_ms(entry.at)),
            escape(entry.actor),
            escape(entry.action),
            escape(f"{entry.resource_kind}:{entry.resource_id}"),
            f"[{style}]{escape(entry.outcome)}[/{style}]",
            escape(details[:120]),
        )
    return table


# -- verify ------------------------------------------------------------------------------------------


@app.command("verify")
def verify(
    public_key: Annotated[
        Path | None,
        _file_option(
            "--public-key", "Check the checkpoints against this PEM public key (default: the platform's)."
        ),
    ] = None,
    file: Annotated[
        Path | None,
        _file_option("--file", "Verify this export (steward audit export) instead of the database.", "-f"),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also fail where a signed checkpoint is due but missing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify every entry's hash and every signed checkpoint; exit 1 at the first bad entry.

    An edited, deleted, reordered or inserted entry, or a forged checkpoint, is named with the reason.
    Entries after the last checkpoint are protected by the hash chain alone: keep the last checkpoint
    it prints somewhere else to detect a trail cut back later.
    """
    from steward.governance import signing

    settings = load_settings()
    key = signing.load_public_key(public_key.read_bytes()) if public_key is not None else None
    with err_console.status("Verifying the audit trail …"):
        if file is not None:
            from steward.governance.audit import verify_records

            if key is None and not settings.uri:
                key = signing.platform_public_key(settings)
            with file.open(encoding="utf-8") as lines:
                every = settings.audit_checkpoint_every if strict else None
                report = verify_records(_records(lines, file), key, every=every)
        else:
            with _audit() as audit:
                report = audit.verify(key, strict=strict)
    due = (report.last_seq or 0) // settings.audit_checkpoint_every
    if as_json:
        print_json({**report.to_json(), "checkpoints_due": due})
    else:
        print_report(report, due, settings.audit_checkpoint_every, strict)
    if not report.ok:
        raise typer.Exit(code=1)


def _records(lines: Any, path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{number} is not JSON: {exc.msg}", {"field": "file"}) from None


def print_report(report: VerifyReport, due: int, every: int, strict: bool) -> None:
    """Print a verification as ``steward audit verify`` does: OK or BROKEN, the counts and the first bad
    entry; ``due`` is how many checkpoints the trail's length calls for at one per ``every`` entries."""
    rate = f"{report.rate:,.0f} entries/s" if report.seconds > 0 and report.entries else "-"
    if report.first_bad is not None:
        bad = report.first_bad
        console.print(
            f"[bold red]BROKEN[/bold red] at entry {bad.seq} ([red]{bad.reason}[/red]): {escape(bad.message)}"
        )
        console.print(
            f"{report.entries:,} entries and {report.checkpoints:,} signed checkpoints before it verified."
        )
        return
    console.print(
        f"[bold green]OK[/bold green]: {report.entries:,} entries, {report.checkpoints:,} signed "
        f"checkpoints; verified in {report.seconds:.2f} s ({rate})"
    )
    if report.last_checkpoint is not None:
        cp = report.last_checkpoint
        console.print(
            f"last checkpoint: entry {cp.seq:,}, hash {cp.hash}, key {cp.key_id}; "
            f"{report.unsigned_tail:,} entries after it are covered by the hash chain only"
        )
    if report.checkpoints < due and not strict:
        console.print(
            f"[yellow]warning: {due - report.checkpoints:,} of the {due:,} checkpoints due (every {every:,} "
            "entries) are missing; run with --strict to fail on them[/yellow]"
        )


# -- export and the public key -----------------------------------------------------------------------


@app.command("export")
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="The output format.")] = ExportFormat.jsonl,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, show_default=False, help="Write here (default: stdout)."
        ),
    ] = None,
    after: Annotated[
        int,
        typer.Option("--after", min=0, help="Only entries after this seq (to feed a SIEM incrementally)."),
    ] = 0,
) -> None:
    """Stream the trail as JSON lines, one entry per line, with its hash-chain fields and checkpoint.

    Each line is the entry (as ``steward audit log --json`` shows it), plus ``details_json`` (the text
    its hash covers) and, for a checkpointed entry, ``checkpoint`` with the key id and signature: enough
    to re-verify the chain (``steward audit verify --file``) with the platform's public key
    (``steward audit public-key``).
    """
    assert fmt is ExportFormat.jsonl
    count = 0
    with _audit() as audit, _sink(output) as out:
        for record in audit.export(after=after):
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    if output is not None:
        err_console.print(f"Exported {count:,} audit entries to {escape(str(output))}.")


@contextmanager
def _sink(output: Path | None) -> Iterator[Any]:
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with output.open("w", encoding="utf-8") as out:
        yield out


@app.command("public-key")
def public_key(as_json: JsonOption = False) -> None:
    """Print the platform's public key (PEM) that checkpoints are signed with, and its key id."""
    from steward.governance import signing

    settings = load_settings()
    key = signing.platform_public_key(settings)
    if key is None:
        raise InvalidInput(
            f"this platform has no signing key yet ({signing.key_path(settings)}): one is made with the "
            "first signed checkpoint",
            {"field": "signing_key_file"},
        )
    pem = signing.public_key_pem(key).decode()
    if as_json:
        print_json({"key_id": signing.key_id(key), "public_key_pem": pem})
        return
    typer.echo(pem, nl=False)
    err_console.print(f"key id {signing.key_id(key)}")
