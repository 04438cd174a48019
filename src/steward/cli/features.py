"""``steward features``: apply feature definitions, materialise them online, read and check them.

``apply`` registers a YAML file's entities, views and services (each a new version only if it
changed); ``list`` and ``show`` read them back with what was derived of their sources (region, PII
tags) and their history; ``materialize`` writes the latest values to the online store (incrementally
unless ``--start`` is given) and ``materializations`` lists past runs; ``online`` reads values for
entities; ``push`` writes rows from a file straight to the online store and ``stream`` drains a view's
Redis stream into it; ``skew`` compares offline and online values and exits 1 when they differ.

The commands work embedded and against a server (``STEWARD_URI``): files are read here and what was
read is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from steward.cli.output import (
    JsonOption,
    connection,
    console,
    details_grid,
    err_console,
    format_time,
    new_table,
    print_json,
)
from steward.errors import InvalidInput, NotFound
from steward.features.models import (
    KIND_ENTITY,
    KIND_SERVICE,
    KIND_VIEW,
    STATUS_PRESENT,
    FeatureBackend,
    MaterializationRun,
    StoredDefinition,
)

if TYPE_CHECKING:
    import pyarrow as pa

EXIT_SKEW = 1
"""Exit code of ``skew`` when offline and online values differ (or entities are missing online)."""
MISMATCHES_SHOWN = 20
"""``skew`` lists at most this many differing values (``--json`` gives every one)."""

app = typer.Typer(
    help="Feature definitions, materialisation to the online store, online reads, pushes and skew checks.",
    no_args_is_help=True,
)


class Kind(StrEnum):
    """The kinds of feature definitions."""

    entity = KIND_ENTITY
    feature_view = KIND_VIEW
    feature_service = KIND_SERVICE


class RowsFormat(StrEnum):
    """The file formats ``push`` reads."""

    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


ViewArg = Annotated[str, typer.Argument(help="The feature view's name.")]
_STATUS_STYLES = {STATUS_PRESENT: "green", "NOT_FOUND": "yellow", "OUTSIDE_TTL": "red"}


@contextmanager
def _features() -> Iterator[FeatureBackend]:
    with connection() as conn:
        yield conn.features


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        message = f"{option} {text!r} is not an ISO 8601 time such as 2024-05-01 or 2024-05-01T12:00:00+00:00"
        raise InvalidInput(message, {"field": option.lstrip("-")}) from None


# -- definitions ----------------------------------------------------------------------------------


@app.command("apply")
def apply(
    file: Annotated[
        typer.FileText,
        typer.Argument(help="A YAML file of entities, feature_views and feature_services ('-': stdin)."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Register the file's definitions: each becomes a new version only if it changed.

    Everything is checked first (names, types, TTLs, that each view's entities exist and its dataset
    has the columns it names with compatible types); nothing is stored if one is wrong.
    """
    text = file.read()
    with _features() as features:
        report = features.apply(text)
    if as_json:
        print_json(report.to_json())
        return
    for label, names, style in (
        ("Created", report.created, "green"),
        ("Updated", report.updated, "cyan"),
        ("Unchanged", report.unchanged, "dim"),
    ):
        if names:
            console.print(f"[{style}]{label}[/{style}]: {escape(', '.join(names))}")
    if not (report.created or report.updated or report.unchanged):
        console.print("The file defines nothing.")


def _summary(found: StoredDefinition) -> str:
    spec = found.spec
    if found.kind == KIND_ENTITY:
        return f"keys {', '.join(spec.get('join_keys', []))}"
    if found.kind == KIND_VIEW:
        source = spec.get("source") or {}
        where = source.get("dataset") or source.get("stream") or ("sql" if source.get("sql") else "?")
        online = "" if spec.get("online", True) else ", offline only"
        entities = ", ".join(spec.get("entities", []))
        return f"{len(spec.get('features', []))} feature(s) of {entities} from {where}{online}"
    return f"{len(spec.get('features', []))} reference(s)"


@app.command("list")
def list_definitions(
    kind: Annotated[Kind | None, typer.Option("--kind", "-k", help="Only definitions of this kind.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the latest version of every definition, by kind and name."""
    with _features() as features:
        found = features.list_definitions(kind.value if kind is not None else None)
    if as_json:
        print_json([d.to_json() for d in found])
        return
    if not found:
        console.print(
            "No feature definitions yet. Register some with [bold]steward features apply FILE[/bold]."
        )
        return
    table = new_table(
        "Kind",
        Column("Name", no_wrap=True),
        Column("Version", justify="right"),
        "Summary",
        "Applied (UTC)",
        "By",
    )
    for item in found:
        table.add_row(
            item.kind,
            escape(item.name),
            str(item.version),
            escape(_summary(item)),
            format_time(item.created_at),
            escape(item.created_by),
        )
    console.print(table)


def _pii_text(pii: Any) -> str:
    if not pii:
        return "none"
    return "; ".join(f"{feature}: {', '.join(tags)}" for feature, tags in sorted(dict(pii).items()))


@app.command("show")
def show(
    kind: Annotated[Kind, typer.Argument(help="entity, feature_view or feature_service.")],
    name: Annotated[str, typer.Argument(help="The definition's name.")],
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="The version (default: the latest).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a definition's spec, what was derived of its source (region, PII tags) and its history."""
    import yaml

    with _features() as features:
        found = features.get_definition(kind.value, name, version)
        history = features.definition_history(kind.value, name)
    if as_json:
        print_json({"definition": found.to_json(), "history": [h.to_json() for h in history]})
        return
    console.print(f"[bold]{found.kind} {escape(found.name)}[/bold] version {found.version} of {len(history)}")
    rows = [
        ("Digest", found.digest[:16]),
        ("Applied", f"{format_time(found.created_at)} UTC by {escape(found.created_by) or '-'}"),
    ]
    derived = found.derived
    if found.kind == KIND_VIEW and derived.get("source") != "sql":
        rows += [
            ("Region", escape(str(derived.get("region") or "-"))),
            ("PII", escape(_pii_text(derived.get("pii")))),
            ("Dataset version", escape(str(derived.get("dataset_version") or "-"))),
        ]
    console.print(details_grid(rows))
    console.print()
    shown = found.to_json()["spec"]  # a password in a source's URL masked
    console.print(escape(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True).rstrip()))
    console.print()
    table = new_table(Column("Version", justify="right"), "Digest", "Applied (UTC)", "By", title="History")
    for item in history:
        table.add_row(
            str(item.version), item.digest[:12], format_time(item.created_at), escape(item.created_by)
        )
    console.print(table)


# -- materialisation ------------------------------------------------------------------------------


def _online_views(features: FeatureBackend) -> list[str]:
    return [d.name for d in features.list_definitions(KIND_VIEW) if d.spec.get("online", True)]


def _runs_table(runs: Sequence[MaterializationRun], title: str | None = None) -> Any:
    table = new_table(
        Column("View", no_wrap=True),
        "From (UTC)",
        "To (UTC)",
        Column("Rows", justify="right"),
        Column("Entities", justify="right"),
        "Store",
        "Finished (UTC)",
        "By",
        title=title,
    )
    for run in runs:
        table.add_row(
            escape(run.view),
            format_time(run.start),
            format_time(run.end),
            f"{run.rows:,}",
            f"{run.entities:,}",
            run.store,
            format_time(run.finished_at),
            escape(run.finished_by),
        )
    return table


@app.command("materialize")
def materialize(
    view: Annotated[
        list[str] | None,
        typer.Option("--view", "-v", help="A view to materialise (repeat; default: every online one)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="ISO time: rows from then (default: where each view's last run ended)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="ISO time: rows before then (default: now).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write each view's latest values per entity to the online store, one view after the other."""
    begin, until = _when(start, "--start"), _when(end, "--end")
    runs: list[MaterializationRun] = []
    with _features() as features:
        names = list(view) if view else _online_views(features)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=as_json or not err_console.is_terminal,
        ) as bar:
            task = bar.add_task("Materialising", total=len(names))
            for name in names:
                bar.update(task, description=f"Materialising {escape(name)}")
                runs.extend(features.materialize([name], begin, until))
                bar.advance(task)
    if as_json:
        print_json([r.to_json() for r in runs])
        return
    if not runs:
        console.print("No online feature views to materialise.")
        return
    console.print(_runs_table(runs))
    total = sum(r.entities for r in runs)
    console.print(f"Materialised {len(runs)} view(s): {total:,} entities took new values.")


@app.command("materializations")
def materializations(
    view: Annotated[str | None, typer.Option("--view", "-v", help="Only this view's runs.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List past materialisation runs, newest first."""
    with _features() as features:
        runs = features.list_materializations(view)
    if as_json:
        print_json([r.to_json() for r in runs])
        return
    if not runs:
        console.print("No materialisation runs yet. Run [bold]steward features materialize[/bold].")
        return
    console.print(_runs_table(runs))


# -- online reads, pushes and streams -------------------------------------------------------------


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        return text


def _entity_rows(entities: Sequence[str]) -> dict[str, list[Any]]:
    rows: list[dict[str, Any]] = []
    for text in entities:
        row: dict[str, Any] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise InvalidInput(
                    f"--entity takes KEY=VALUE[,KEY=VALUE…], not {text!r}", {"field": "entity"}
                )
            row[key.strip()] = _value(value.strip())
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    missing = next(((k, r) for r in rows for k in keys if k not in r), None)
    if missing:
        raise InvalidInput(f"every --entity needs the key {missing[0]!r}", {"field": "entity"})
    return {k: [row[k] for row in rows] for k in keys}


def _wanted(features: FeatureBackend, refs: Sequence[str]) -> Sequence[str] | str:
    """A feature service's name as a string; otherwise the references (a bare name is a whole view)."""
    if len(refs) == 1 and ":" not in refs[0]:
        try:
            features.get_definition(KIND_SERVICE, refs[0])
        except NotFound:
            return list(refs)
        return refs[0]
    return list(refs)


def _styled(status: str) -> str:
    style = _STATUS_STYLES.get(status, "white")
    return f"[{style}]{escape(status)}[/{style}]"


@app.command("online")
def online(
    refs: Annotated[
        list[str],
        typer.Argument(help="A feature service, a view (all its features) or view:feature references."),
    ],
    entity: Annotated[
        list[str],
        typer.Option("--entity", "-e", help="One entity row as KEY=VALUE[,KEY=VALUE…] (repeat for more)."),
    ],
    full_names: Annotated[bool, typer.Option("--full-names", help="Name the columns view__feature.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Read the online values of features for entities, with each view's status per entity.

    A value is quoted to keep it text (--entity "id='007'"); otherwise digits are read as a number.
    """
    rows = _entity_rows(entity)
    with _features() as features:
        found = features.get_online_features(rows, _wanted(features, refs), full_feature_names=full_names)
    if as_json:
        print_json(found.to_json())
        return
    columns = list(found.columns)
    views = list(found.statuses)
    table = new_table(*columns, *(f"{v} status" for v in views))
    for i in range(len(next(iter(rows.values())))):
        values = ["-" if found.columns[c][i] is None else escape(str(found.columns[c][i])) for c in columns]
        table.add_row(*values, *(_styled(found.statuses[v][i]) for v in views))
    console.print(table)


def _read_rows(path: str, fmt: RowsFormat | None) -> pa.Table:
    from steward.data.connectors import connector_for
    from steward.data.inputs import concat_tables

    options = {"format": fmt.value} if fmt is not None else {}
    tables = [batch.table for batch in connector_for(path, **options).batches()]
    if not tables:
        raise InvalidInput(f"{path} holds no rows", {"field": "file"})
    return tables[0] if len(tables) == 1 else concat_tables(tables)


@app.command("push")
def push(
    view: ViewArg,
    file: Annotated[str, typer.Argument(help="Rows to push: a .csv, .parquet or .jsonl file (or a glob).")],
    fmt: Annotated[
        RowsFormat | None,
        typer.Option("--format", "-f", help="Read the file as this format (default: from its name)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write rows (the view's keys, event timestamp and every feature) straight to the online store.

    An entity whose online value has a later event time keeps it.
    """
    table = _read_rows(file, fmt)
    with _features() as features:
        written = features.push(view, table)
    if as_json:
        print_json({"view": view, "rows": table.num_rows, "written": written})
        return
    console.print(
        f"Pushed {table.num_rows:,} row(s) to [bold]{escape(view)}[/bold]: "
        f"{written:,} entities took the new values."
    )


@app.command("stream")
def stream(
    view: ViewArg,
    max_batches: Annotated[
        int | None, typer.Option("--max-batches", min=1, help="Stop after this many micro-batches.")
    ] = None,
    block_ms: Annotated[
        int, typer.Option("--block-ms", min=0, help="Wait this long for new entries before stopping.")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Push what the view's Redis stream holds to the online store, each batch acknowledged once stored."""
    with _features() as features, err_console.status(f"Consuming the stream of {escape(view)} …"):
        pushed = features.consume_stream(view, max_batches=max_batches, block_ms=block_ms)
    if as_json:
        print_json({"view": view, "pushed": pushed})
        return
    console.print(f"Pushed {pushed:,} row(s) from the stream of [bold]{escape(view)}[/bold].")


# -- consistency ----------------------------------------------------------------------------------


@app.command("skew")
def skew(
    view: ViewArg,
    sample: Annotated[int, typer.Option("--sample", "-n", help="Entities to sample.")] = 100,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Relative tolerance for floats.")] = 1e-9,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Compare a sample of the view's offline values with the online ones; exit 1 if they differ."""
    with _features() as features, err_console.status(f"Comparing {escape(view)} offline and online …"):
        report = features.skew(view, sample=sample, tolerance=tolerance, seed=seed)
    if as_json:
        print_json(report.to_json())
    else:
        verdict = "[green]consistent[/green]" if report.consistent else "[bold red]inconsistent[/bold red]"
        console.print(f"[bold]{escape(report.view)}[/bold]: {verdict}")
        console.print(
            details_grid(
                [
                    ("Sampled entities", f"{report.sampled:,}"),
                    ("Values compared", f"{report.compared:,}"),
                    ("Missing online", f"{report.missing_online:,}"),
                    ("Mismatches", f"{len(report.mismatches):,}"),
                    ("Tolerance", f"{report.tolerance:g}"),
                ]
            )
        )
        if report.mismatches:
            table = new_table("Entity", "Feature", "Offline", "Online")
            for m in report.mismatches[:MISMATCHES_SHOWN]:
                table.add_row(*(escape(str(m.get(k))) for k in ("entity", "feature", "offline", "online")))
            if len(report.mismatches) > MISMATCHES_SHOWN:
                table.caption = f"first {MISMATCHES_SHOWN} of {len(report.mismatches)} (all with --json)"
            console.print(table)
    if not report.consistent:
        raise typer.Exit(code=EXIT_SKEW)
