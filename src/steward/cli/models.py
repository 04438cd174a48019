"""``steward models``: registered models, their versions, aliases, archiving, cards and alias history;
``verify`` checks a version's signature and digests, ``sign`` signs one registered before signing."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli import model_signing
from steward.cli.output import (
    JsonOption,
    connection,
    console,
    details_grid,
    format_time,
    new_table,
    print_error,
    print_json,
    styled_version_status,
)
from steward.registry.cards import CARD_FIELDS
from steward.registry.models import ModelVersion

app = typer.Typer(
    help="Inspect registered models and their versions; move aliases, archive versions, write model cards.",
    no_args_is_help=True,
)

ModelName = Annotated[str, typer.Argument(help="The registered model's name.")]
VersionArg = Annotated[str, typer.Argument(help="The version, e.g. 1.2.0 (see 'steward models versions').")]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why: recorded with the change.")]


class CardFormat(StrEnum):
    """The formats a card is stored in."""

    md = "md"
    html = "html"


def _card_option(field: str, what: str) -> Any:
    return typer.Option(
        "--" + field.replace("_", "-"),
        help=f"Write the card's '{CARD_FIELDS[field]}' section: {what}",
        show_default=False,
    )


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """List registered models with their version count, highest version and aliases."""
    with connection() as conn:
        found = conn.registry.list_models()
    if as_json:
        print_json([model.to_json() for model in found])
        return
    if not found:
        console.print("No registered models yet. Register one with [bold]steward.register_model()[/bold].")
        return
    table = new_table(
        Column("Name", no_wrap=True),
        Column("Versions", justify="right"),
        "Latest",
        "Aliases",
        "Created (UTC)",
        "Description",
    )
    for model in found:
        table.add_row(
            escape(model.name),
            str(model.version_count),
            model.latest_version or "-",
            _aliases(model.aliases) or "-",
            format_time(model.created_at),
            escape(model.description),
        )
    console.print(table)


def _aliases(aliases: Mapping[str, str]) -> str:
    return ", ".join(f"{escape(a)} → {v}" for a, v in sorted(aliases.items()))


@app.command("show")
def show_model(name: ModelName, as_json: JsonOption = False) -> None:
    """Show a registered model: description, creator, highest version, version count and aliases."""
    with connection() as conn:
        model = conn.registry.get_model(name)
    if as_json:
        print_json(model.to_json())
        return
    console.print(f"[bold]Model {escape(model.name)}[/bold] ({model.id})")
    console.print(
        details_grid(
            [
                ("Description", escape(model.description) or "-"),
                ("Created", f"{format_time(model.created_at)} UTC by {escape(model.created_by) or '-'}"),
                ("Latest version", model.latest_version or "-"),
                ("Versions", str(model.version_count)),
                ("Aliases", _aliases(model.aliases) or "[dim]none[/dim]"),
            ]
        )
    )


@app.command("versions")
def list_versions(name: ModelName, as_json: JsonOption = False) -> None:
    """List a model's versions, lowest first: status, flavor, aliases, producing run and creation time."""
    with connection() as conn:
        found = conn.registry.list_versions(name)
    if as_json:
        print_json([version.to_json() for version in found])
        return
    table = new_table(
        Column("Version", no_wrap=True),
        Column("Status", no_wrap=True),
        Column("Flavor", min_width=6),
        Column("Aliases", overflow="fold", min_width=7),
        Column("Run", overflow="fold", min_width=8),
        Column("Created (UTC)", min_width=10),
    )
    for version in found:
        table.add_row(
            version.version,
            styled_version_status(version.status.value),
            escape(version.flavor),
            escape(", ".join(version.aliases)) or "-",
            version.run_id or "-",
            format_time(version.created_at),
        )
    table.caption = f"{len(found)} version(s) of {escape(name)}"
    console.print(table)


@app.command("alias")
def alias(
    name: ModelName,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias, e.g. production.")],
    version: Annotated[
        str | None, typer.Argument(help="The version to point the alias at (omit with --delete).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead of moving it.")] = False,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (moving it if it exists), or remove it with --delete; both are recorded."""
    if delete == (version is not None):
        raise typer.BadParameter(
            "give a VERSION to point the alias at, or --delete to remove it (not both)", param_hint="VERSION"
        )
    with connection() as conn:
        if version is None:
            conn.registry.delete_alias(name, alias_name, reason)
            moved: ModelVersion | None = None
        else:
            moved = conn.registry.set_alias(name, alias_name, version, reason)
    if as_json:
        print_json({"model": name, "alias": alias_name, "version": moved.to_json() if moved else None})
    elif moved is None:
        console.print(f"Removed alias [bold]{escape(alias_name)}[/bold] of {escape(name)}.")
    else:
        console.print(f"[bold]{escape(alias_name)}[/bold] now points at {escape(moved.uri)}.")


@app.command("archive")
def archive(
    name: ModelName,
    version: VersionArg,
    reason: ReasonOption = "",
    restore: Annotated[
        bool, typer.Option("--restore", help="Make an archived version READY again instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Archive a version (it stays loadable but takes no alias), or make it READY again with --restore."""
    if restore and reason:
        raise typer.BadParameter("--reason is recorded when archiving only", param_hint="--reason")
    with connection() as conn:
        if restore:
            changed = conn.registry.restore_version(name, version)
        else:
            changed = conn.registry.archive_version(name, version, reason)
    if as_json:
        print_json(changed.to_json())
        return
    console.print(f"{escape(changed.uri)} is now {styled_version_status(changed.status.value)}.")


@app.command("card")
def card(
    name: ModelName,
    version: VersionArg,
    fmt: Annotated[
        CardFormat, typer.Option("--format", "-f", help="md (Markdown) or html (a self-contained page).")
    ] = CardFormat.md,
    intended_use: Annotated[
        str | None, _card_option("intended_use", "what the model is for, by whom.")
    ] = None,
    out_of_scope_use: Annotated[
        str | None, _card_option("out_of_scope_use", "uses it must not be put to.")
    ] = None,
    training_data: Annotated[
        str | None, _card_option("training_data", "what it learned from and how that was chosen.")
    ] = None,
    evaluation: Annotated[
        str | None, _card_option("evaluation", "how, and on what data, it was evaluated.")
    ] = None,
    limitations: Annotated[str | None, _card_option("limitations", "where it is known to fail.")] = None,
    ethical_considerations: Annotated[
        str | None, _card_option("ethical_considerations", "risks to people, fairness, privacy.")
    ] = None,
    caveats: Annotated[str | None, _card_option("caveats", "what users should know or do.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the card to this file instead of stdout.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Render a version's model card, store it with the version, and print (or write) it.

    The card joins what people write (intended use, limitations …) with what the registry recorded
    (metrics, signature, requirements, run and git commit, datasets, file digests). Section options
    save those sections first; sections not given keep their saved text; an empty text clears one.
    Each rendering is kept (content-addressed) with the version.
    """
    given = {
        "intended_use": intended_use,
        "out_of_scope_use": out_of_scope_use,
        "training_data": training_data,
        "evaluation": evaluation,
        "limitations": limitations,
        "ethical_considerations": ethical_considerations,
        "caveats": caveats,
    }
    fields = {key: text for key, text in given.items() if text is not None}
    with connection() as conn:
        saved = conn.registry.save_card(name, version, fields)  # stored with the version, every time
        text = conn.registry.get_card(name, version, fmt.value)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            print_error(f"cannot write the card to {output}: {exc.strerror or exc}")
            raise typer.Exit(code=1) from None
    if as_json:
        print_json(
            {
                "model": name,
                "version": version,
                "format": fmt.value,
                "saved": saved,
                "output": str(output) if output is not None else None,
                "card": text if output is None else None,
            }
        )
    elif output is not None:
        console.print(
            f"Wrote the {fmt.value} card of {escape(name)} {escape(version)} to {escape(str(output))}."
        )
    else:
        typer.echo(text, nl=not text.endswith("\n"))


@app.command("history")
def history(
    name: ModelName,
    alias_name: Annotated[
        str | None, typer.Option("--alias", "-a", help="Only the moves of this alias.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show every move of a model's aliases, oldest first: when, who, from which version to which, and why."""
    with connection() as conn:
        events = conn.registry.alias_history(name, alias_name)
    if as_json:
        print_json([event.to_json() for event in events])
        return
    if not events:
        console.print(f"No alias of [bold]{escape(name)}[/bold] has moved yet.")
        return
    table = new_table("When (UTC)", "Alias", Column("From → to", no_wrap=True), "Who", "Why")
    for event in events:
        target = event.to_version or "[dim](removed)[/dim]"
        table.add_row(
            format_time(event.at),
            escape(event.alias),
            f"{event.from_version or '-'} → {target}",
            escape(event.actor) or "-",
            escape(event.reason) or "[dim]-[/dim]",
        )
    console.print(table)


app.command("verify")(model_signing.verify_version)
app.command("sign")(model_signing.sign_version)
