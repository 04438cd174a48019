"""``steward data``: ingest files into validated, versioned datasets; profile, check, scan and compare them.

The commands work on the data service of ``steward.connect().data``: embedded, or the server that
``STEWARD_URI`` names (files are then read here and uploaded). The profiling, validation
and PII modules (which pull in pyarrow and DuckDB) are imported by the commands that need them, so
``steward --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from steward.cli.output import (
    JsonOption,
    connection,
    console,
    details_grid,
    err_console,
    format_number,
    format_percent,
    format_size,
    format_time,
    new_table,
    print_json,
    sparkline,
)
from steward.data.models import DataBackend, DatasetVersion, QuarantineStatus

EXIT_CHECKS_FAILED = 3
"""Exit code of ``ingest`` when every batch was quarantined, and of ``validate`` when a check fails."""

PSI_ALERT = 0.2
"""``diff`` highlights a column whose population stability index exceeds this (a significant shift)."""

app = typer.Typer(
    help="Ingest data into validated, versioned datasets; profile, validate, scan for PII and compare them.",
    no_args_is_help=True,
)
quarantine_app = typer.Typer(
    help="Review batches that failed their dataset's expectations: list, show, release or drop them.",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")

DatasetName = Annotated[str, typer.Argument(help="The dataset's name.")]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="The version number (default: the latest).")
]
BatchId = Annotated[
    str, typer.Argument(help="The quarantined batch's id (see 'steward data quarantine list').")
]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why: recorded with the decision.")]
_STATUS_STYLES = {
    QuarantineStatus.HELD: "yellow",
    QuarantineStatus.RELEASED: "green",
    QuarantineStatus.DROPPED: "dim",
}


class SourceFormat(StrEnum):
    """The file formats ``ingest`` reads."""

    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


@contextmanager
def _data_service() -> Iterator[DataBackend]:
    with connection() as conn:
        yield conn.data


def _policy_option(help_text: str, name: str = "--privacy") -> Any:
    return typer.Option(
        name, "-p", exists=True, dir_okay=False, readable=True, help=help_text, show_default=False
    )


def _read_policy(path: Path) -> Any:
    from steward.data.privacy import PrivacyPolicy

    return PrivacyPolicy.from_yaml(path)


def _expectations_option(help_text: str) -> Any:
    return typer.Option(
        "--expectations", "-e", exists=True, dir_okay=False, readable=True, help=help_text, show_default=False
    )


# -- datasets and versions ------------------------------------------------------------------------


@app.command("ingest")
def ingest(
    source: Annotated[str, typer.Argument(help="A file or URL to read: .csv, .parquet, .jsonl, s3://…")],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="The dataset to add a version to (created if new).")
    ],
    expectations: Annotated[
        Path | None,
        _expectations_option("A YAML file of checks; it becomes the dataset's expectations from now on."),
    ] = None,
    fmt: Annotated[
        SourceFormat | None,
        typer.Option("--format", "-f", help="Read the source as this format (default: from its name)."),
    ] = None,
    privacy: Annotated[
        Path | None,
        _policy_option(
            "A YAML privacy policy; it becomes the dataset's, and each version gets a protected copy."
        ),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Describes a new dataset.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Ingest a source as a new version of a dataset, or quarantine it if it fails the expectations.

    The data is checked against the dataset's expectations; if it passes it becomes an immutable,
    profiled version (the same content ingested again is the same version). If not, it is kept whole
    in quarantine with its report. Exit code 0 when a version was published, 3 when everything was
    quarantined, 1 on an error.
    """
    options: dict[str, Any] = {"format": fmt.value} if fmt is not None else {}
    with _data_service() as data, err_console.status(f"Ingesting {escape(source)} …"):
        result = data.ingest(
            source,
            dataset,
            expectations=expectations,
            privacy=_read_policy(privacy) if privacy is not None else None,
            description=description,
            **options,
        )
    if as_json:
        print_json(
            {
                "dataset": dataset,
                "versions": [
                    {**v.to_json(), "reused": r} for v, r in zip(result.versions, result.reused, strict=True)
                ],
                "quarantined": [batch.to_json() for batch in result.quarantined],
                "raw": [v.to_json() for v in result.raw],
            }
        )
    else:
        for version, reused in zip(result.versions, result.reused, strict=True):
            _print_published(version, reused)
        for batch in result.quarantined:
            console.print(
                f"[bold yellow]Quarantined[/bold yellow] {batch.rows:,} rows of {escape(batch.dataset)} "
                f"as batch [bold]{batch.id}[/bold]: {escape(_report_summary(batch.report))}"
            )
            console.print(f"See the failures with: steward data quarantine show {batch.id}")
    if not result.versions:
        raise typer.Exit(code=EXIT_CHECKS_FAILED)


@app.command("list")
def list_datasets(as_json: JsonOption = False) -> None:
    """List datasets with their version count, latest version, region and creation time."""
    with _data_service() as data:
        found = data.list_datasets()
    if as_json:
        print_json([dataset.to_json() for dataset in found])
        return
    if not found:
        console.print(
            "No datasets yet. Ingest one with [bold]steward data ingest FILE --dataset NAME[/bold]."
        )
        return
    table = new_table(
        Column("Name", no_wrap=True),
        Column("Versions", justify="right"),
        Column("Latest", justify="right"),
        "Region",
        "Created (UTC)",
        "Description",
    )
    for dataset in found:
        table.add_row(
            escape(dataset.name),
            str(dataset.version_count),
            str(dataset.latest_version or "-"),
            escape(dataset.region),
            format_time(dataset.created_at),
            escape(dataset.description),
        )
    console.print(table)


@app.command("show")
def show_version(name: DatasetName, version: VersionOption = None, as_json: JsonOption = False) -> None:
    """Show a dataset version: ref, rows, content digest, source, region, creation, then its schema."""
    with _data_service() as data:
        found = data.get_version(name, version)
    if as_json:
        print_json(found.to_json())
        return
    console.print(f"[bold]Dataset version {escape(found.ref)}[/bold] ({found.id})")
    console.print(
        details_grid(
            [
                ("Rows", f"{found.rows:,}"),
                ("Content digest", found.content_digest),
                ("Files", f"{len(found.files)}, {format_size(sum(f.size for f in found.files))}"),
                ("Source", escape(_source_text(found.source))),
                ("Region", escape(found.region)),
                ("Derived from", found.parent_id or "-"),
                ("Created", f"{format_time(found.created_at)} UTC by {escape(found.created_by) or '-'}"),
            ]
        )
    )
    console.print()
    schema = new_table("Column", "Type", "Nullable", title="Schema")
    for column in found.arrow_schema:
        schema.add_row(escape(column["name"]), escape(column["type"]), "yes" if column["nullable"] else "no")
    console.print(schema)


@app.command("versions")
def list_versions(name: DatasetName, as_json: JsonOption = False) -> None:
    """List a dataset's versions, oldest first: rows, content digest, source and creation time."""
    with _data_service() as data:
        found = data.list_versions(name)
    if as_json:
        print_json([version.to_json() for version in found])
        return
    table = new_table(
        Column("Version", no_wrap=True),
        Column("Rows", justify="right"),
        Column("Digest", no_wrap=True),
        "Source",
        "Created (UTC)",
    )
    for version in found:
        table.add_row(
            escape(version.ref),
            f"{version.rows:,}",
            version.content_digest[:12],
            escape(_source_text(version.source)),
            format_time(version.created_at),
        )
    table.caption = f"{len(found)} version(s) of {escape(name)}"
    console.print(table)


# -- looking inside a version ----------------------------------------------------------------------


@app.command("profile")
def profile(name: DatasetName, version: VersionOption = None, as_json: JsonOption = False) -> None:
    """Show per-column statistics of a version, with a small histogram (or the top values) of each."""
    from steward.data.profile import DatasetProfile

    with _data_service() as data:
        found = data.get_version(name, version)
    stats = DatasetProfile.from_dict(found.profile)
    if as_json:
        print_json({"ref": found.ref, **stats.to_dict()})
        return
    table = new_table(
        Column("Column", no_wrap=True),
        "Type",
        Column("Nulls", justify="right"),
        Column("Distinct", justify="right"),
        Column("Min", justify="right"),
        Column("Max", justify="right"),
        Column("Mean", justify="right"),
        Column("Std", justify="right"),
        Column("Distribution", no_wrap=True),
        title=f"Profile of {escape(found.ref)} ({found.rows:,} rows)",
    )
    for column in stats.columns:
        histogram = column.histogram
        if histogram and histogram.get("counts"):
            shape = f"[cyan]{sparkline(histogram['counts'])}[/cyan]"
        else:
            shape = escape(_top_values(column.top_k))
        table.add_row(
            escape(column.name),
            escape(column.type),
            format_percent(column.null_share),
            _format_count(column.distinct),
            escape(_format_value(column.min)),
            escape(_format_value(column.max)),
            format_number(column.mean, digits=4),
            format_number(column.std, digits=4),
            shape,
        )
    console.print(table)


@app.command("validate")
def validate_version(
    name: DatasetName,
    expectations: Annotated[Path, _expectations_option("The YAML file of checks to run.")],
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a stored version against a YAML file of expectations, without publishing anything.

    Prints every check with its failing rows and examples. Exit code 0 when all pass, 3 when one
    fails, 1 on an error.
    """
    from steward.data.validation import DatasetSchema

    schema = DatasetSchema.from_yaml(expectations)
    with _data_service() as data, err_console.status(f"Validating {escape(name)} …"):
        found = data.get_version(name, version)
        report = data.validate_version(name, schema, found.number)
    if as_json:
        print_json({"ref": found.ref, **report.to_dict()})
    else:
        console.print(_checks_table(report.to_dict()["results"], title=f"Checks of {escape(found.ref)}"))
        style = "green" if report.passed else "red"
        console.print(f"[{style}]{escape(report.summary())}[/{style}]")
    if not report.passed:
        raise typer.Exit(code=EXIT_CHECKS_FAILED)


@app.command("scan")
def scan(name: DatasetName, version: VersionOption = None, as_json: JsonOption = False) -> None:
    """Scan a version for personal data: which columns hold it, found by name or by value, with examples.

    The findings become the version's PII tags, which privacy policies act on (``steward data protect``).
    """
    with _data_service() as data, err_console.status(f"Scanning {escape(name)} …"):
        found, findings = data.scan(name, version)
    if as_json:
        print_json({"ref": found.ref, "findings": [finding.to_dict() for finding in findings]})
        return
    if not findings:
        console.print(f"No personal data found in the columns of {escape(found.ref)}.")
        return
    table = new_table(
        Column("Column", no_wrap=True),
        "Tags",
        "Found by",
        Column("Match share", justify="right"),
        "Examples (masked)",
        title=f"Personal data in {escape(found.ref)}",
    )
    for finding in findings:
        table.add_row(
            escape(finding.column),
            escape(", ".join(finding.tags)),
            _found_by(finding.by_name, finding.match_share),
            format_percent(finding.match_share),
            escape(", ".join(str(example) for example in finding.examples[:3])) or "-",
        )
    console.print(table)


@app.command("protect")
def protect(
    name: DatasetName,
    policy: Annotated[
        Path | None, _policy_option("A YAML privacy policy (default: the dataset's own).", "--policy")
    ] = None,
    version: VersionOption = None,
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="Publish the copy in this dataset (default: the same)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Apply a privacy policy to a version: drop, mask, pseudonymise or generalise its personal data.

    The protected copy is a new version whose lineage points to the raw one. Pseudonyms are keyed
    (HMAC-SHA-256 with this installation's secret): stable and joinable, not reversible.
    """
    with _data_service() as data, err_console.status(f"Protecting {escape(name)} …"):
        raw = data.get_version(name, version)
        found = data.protect(name, raw.number, _read_policy(policy) if policy else None, target=target)
    if as_json:
        print_json({"from": raw.ref, "version": found.to_json()})
        return
    actions: dict[str, str] = dict(found.source.get("actions") or {})
    ref = f"[bold green]{escape(found.ref)}[/bold green]"
    console.print(f"Protected [bold]{escape(raw.ref)}[/bold] as {ref}.")
    rows = [(escape(column), escape(action)) for column, action in actions.items()]
    console.print(
        details_grid([*rows, ("Rows", f"{found.rows:,}")]) if rows else "No column needed a change."
    )


@app.command("kanon")
def kanon(
    name: DatasetName,
    quasi_identifiers: Annotated[
        list[str], typer.Option("--quasi", "-q", help="A quasi-identifier column (repeat the option).")
    ],
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure k-anonymity: the size of the smallest group of rows sharing the quasi-identifiers' values."""
    with _data_service() as data, err_console.status(f"Grouping {escape(name)} …"):
        found = data.get_version(name, version)
        report = data.k_anonymity(name, quasi_identifiers, found.number)
    if as_json:
        print_json({"ref": found.ref, **report.to_dict()})
        return
    style = "green" if report.k >= 5 else "yellow" if report.k >= 2 else "red"
    console.print(
        f"{escape(found.ref)} is [{style}]{report.k}-anonymous[/{style}] over "
        f"{escape(', '.join(report.quasi_identifiers))}: {report.groups:,} groups"
    )
    smallest = ", ".join(f"{k}={v}" for k, v in report.smallest_group.items())
    console.print(details_grid([("Smallest group", escape(smallest) or "-")]))
    for threshold, rows in report.rows_below.items():
        console.print(f"  rows in groups smaller than {threshold}: {rows:,}")


@app.command("diff")
def diff(
    name: DatasetName,
    old: Annotated[int, typer.Argument(metavar="A", min=1, help="The version to compare from.")],
    new: Annotated[int, typer.Argument(metavar="B", min=1, help="The version to compare to.")],
    as_json: JsonOption = False,
) -> None:
    """Compare two versions: schema changes and per-column shifts (PSI, mean shift, null-share change).

    A population stability index above 0.2 is highlighted: the column's distribution moved a lot.
    """
    with _data_service() as data:
        before, after = data.get_version(name, old), data.get_version(name, new)
        changes = data.diff(name, old, new)
    if as_json:
        print_json({"from": before.ref, "to": after.ref, **changes.to_dict()})
        return
    schema = "[yellow]changed[/yellow]" if changes.schema_changed else "unchanged"
    console.print(f"[bold]{escape(before.ref)} → {escape(after.ref)}[/bold]: schema {schema}")
    table = new_table(
        Column("Column", no_wrap=True),
        "Change",
        "Type",
        Column("PSI", justify="right"),
        Column("Mean shift (std)", justify="right"),
        Column("Null share Δ", justify="right"),
    )
    for shift in changes.columns:
        psi = format_number(shift.psi, digits=3)
        if shift.psi is not None and shift.psi > PSI_ALERT:
            psi = f"[bold red]{psi}[/bold red]"
        types = shift.new_type or shift.old_type or "-"
        if shift.old_type and shift.new_type and shift.old_type != shift.new_type:
            types = f"{shift.old_type} → {shift.new_type}"
        delta = shift.null_share_delta
        table.add_row(
            escape(shift.name),
            escape(shift.change),
            escape(types),
            psi,
            format_number(shift.mean_shift_std, digits=3),
            "-" if delta is None else f"{delta * 100:+.1f} pts",
        )
    table.caption = f"PSI above {PSI_ALERT} (in red) marks a significant shift in a column's distribution"
    console.print(table)


# -- quarantine ------------------------------------------------------------------------------------


@quarantine_app.command("list")
def list_quarantine(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Only this dataset's batches.")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include released and dropped batches, not only HELD ones.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List quarantined batches (those still HELD, unless --all), oldest first."""
    with _data_service() as data:
        found = data.list_quarantine(dataset, status=None if show_all else QuarantineStatus.HELD)
    if as_json:
        print_json([batch.to_json() for batch in found])
        return
    if not found:
        console.print("No batches in quarantine.")
        return
    table = new_table(
        Column("Batch", no_wrap=True),
        "Dataset",
        "Status",
        Column("Rows", justify="right"),
        "Failed checks",
        "Source",
        "Created (UTC)",
    )
    for batch in found:
        table.add_row(
            batch.id,
            escape(batch.dataset),
            _styled_status(batch.status),
            f"{batch.rows:,}",
            escape(_report_summary(batch.report)),
            escape(_source_text(batch.source)),
            format_time(batch.created_at),
        )
    console.print(table)


@quarantine_app.command("show")
def show_quarantined(batch_id: BatchId, as_json: JsonOption = False) -> None:
    """Show a quarantined batch: its source, rows, status, and each failed check with examples."""
    with _data_service() as data:
        batch = data.get_quarantined(batch_id)
    if as_json:
        print_json(batch.to_json())
        return
    console.print(f"[bold]Quarantined batch {batch.id}[/bold] of {escape(batch.dataset)}")
    rows = [
        ("Status", _styled_status(batch.status)),
        ("Rows", f"{batch.rows:,}"),
        ("Source", escape(_source_text(batch.source))),
        ("Created", f"{format_time(batch.created_at)} UTC by {escape(batch.created_by) or '-'}"),
    ]
    if batch.resolved_at is not None:
        who = f"{format_time(batch.resolved_at)} UTC by {escape(batch.resolved_by or '-')}"
        rows.append(("Resolved", who + (f": {escape(batch.resolution)}" if batch.resolution else "")))
    console.print(details_grid(rows))
    console.print()
    failures = [result for result in batch.report.get("results", ()) if not result.get("passed")]
    console.print(_checks_table(failures, title="Failed checks"))
    if batch.status is QuarantineStatus.HELD:
        console.print(
            f"Publish it anyway with [bold]steward data quarantine release {batch.id} --reason …[/bold], "
            f"or discard it with [bold]steward data quarantine drop {batch.id}[/bold]."
        )


@quarantine_app.command("release")
def release(batch_id: BatchId, reason: ReasonOption = "", as_json: JsonOption = False) -> None:
    """Publish a HELD batch as a new version despite its failed checks, recording who and why."""
    with _data_service() as data:
        version = data.release(batch_id, reason)
        batch = data.get_quarantined(batch_id)
    if as_json:
        print_json({"batch": batch.to_json(), "version": version.to_json()})
        return
    console.print(f"Released batch {batch.id} as [bold green]{escape(version.ref)}[/bold green].")


@quarantine_app.command("drop")
def drop(batch_id: BatchId, reason: ReasonOption = "", as_json: JsonOption = False) -> None:
    """Discard a HELD batch: its data is never published; who dropped it and why are recorded."""
    with _data_service() as data:
        batch = data.drop(batch_id, reason)
    if as_json:
        print_json(batch.to_json())
        return
    console.print(f"Dropped batch {batch.id} of {escape(batch.dataset)}.")


# -- rendering -------------------------------------------------------------------------------------


def _print_published(version: DatasetVersion, reused: bool) -> None:
    verb = "Already published as" if reused else "Published"
    console.print(f"{verb} [bold green]{escape(version.ref)}[/bold green]")
    columns = ", ".join(f"{escape(c['name'])} [dim]{escape(c['type'])}[/dim]" for c in version.arrow_schema)
    rows = [
        ("Rows", f"{version.rows:,}"),
        ("Content digest", version.content_digest[:16]),
        ("Columns", columns),
    ]
    console.print(details_grid(rows))


def _checks_table(results: Sequence[Mapping[str, Any]], title: str) -> Table:
    table = new_table(
        Column("", no_wrap=True),
        Column("Check", no_wrap=True),
        "Column",
        Column("Failing rows", justify="right"),
        "Examples",
        "Message",
        title=title,
    )
    for result in results:
        mark = "[green]✓[/green]" if result.get("passed") else "[red]✗[/red]"
        failing = result.get("failing_rows")
        table.add_row(
            mark,
            escape(str(result.get("check", ""))),
            escape(str(result.get("column") or "-")),
            "-" if failing is None else f"{failing:,}",
            escape(_examples(result.get("examples") or ())),
            escape(str(result.get("message") or "")),
        )
    return table


def _report_summary(report: Mapping[str, Any]) -> str:
    results = report.get("results") or ()
    failed = [r for r in results if not r.get("passed")]
    names = ", ".join(
        f"{r.get('check')}({r.get('column')})" if r.get("column") else str(r.get("check")) for r in failed
    )
    return f"failed {len(failed)} of {len(results)} checks: {names}" if failed else "no failed checks"


def _source_text(source: Mapping[str, Any]) -> str:
    kind = str(source.get("kind", "source"))
    if kind == "quarantine":
        return f"released from quarantine batch {source.get('batch')}"
    if kind == "privacy":
        return f"protected from {source.get('from')}"
    where = source.get("url") or source.get("path") or source.get("stream") or source.get("query")
    if where is None:
        where = json.dumps({k: v for k, v in source.items() if k != "kind"}, default=str)
    return f"{kind}: {where}"


def _found_by(by_name: bool, match_share: float | None) -> str:
    by_value = bool(match_share)
    return "name and values" if by_name and by_value else "name" if by_name else "values"


def _styled_status(status: QuarantineStatus) -> str:
    style = _STATUS_STYLES.get(status, "white")
    return f"[{style}]{status.value}[/{style}]"


def _examples(values: Sequence[Any], limit: int = 3) -> str:
    shown = ", ".join(json.dumps(v, default=str, ensure_ascii=False) for v in list(values)[:limit])
    return shown + (", …" if len(values) > limit else "")


def _top_values(top_k: Sequence[tuple[Any, int]] | None, limit: int = 3, width: int = 12) -> str:
    def cut(text: str) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    return "  ".join(f"{cut(_format_value(value))} ({count})" for value, count in list(top_k or ())[:limit])


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value, digits=4)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _format_count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
