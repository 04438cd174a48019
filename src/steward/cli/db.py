"""``steward db``: migrate the metadata database and say which revision it is at.

These commands work on the database itself, so they open the metadata store directly (without the
migrate-on-open that ``steward.connect()`` does) and refuse to run against a server (``STEWARD_URI``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from steward.cli.output import JsonOption, console, print_json
from steward.config import load_settings
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.store.metadata import MetadataStore

app = typer.Typer(
    help="Manage the metadata database: apply migrations, show the revision.", no_args_is_help=True
)


@contextmanager
def _store() -> Iterator[MetadataStore]:
    settings = load_settings()
    if settings.uri:
        raise InvalidInput(
            f"steward db works on the database directly, but STEWARD_URI points at a server "
            f"({settings.uri}); run it where the database is reachable, without STEWARD_URI",
            {"field": "uri"},
        )
    from steward.store.metadata import MetadataStore  # Alembic loads only for these commands

    store = MetadataStore(settings.db_url, migrate=False)
    try:
        yield store
    finally:
        store.dispose()


@app.command("upgrade")
def upgrade(
    revision: Annotated[
        str, typer.Option("--revision", "-r", help="Migrate up to this revision instead of the newest.")
    ] = "head",
) -> None:
    """Apply pending migrations to the configured database and print its revision."""
    with _store() as store:
        before = store.current_revision()
        store.upgrade(revision)
        after = store.current_revision()
        url = store.safe_url
    if before == after:
        console.print(f"{url} is already at revision [bold]{after}[/bold].")
    else:
        console.print(f"Upgraded {url} from revision {before or '(empty)'} to [bold]{after}[/bold].")


@app.command("current")
def current(as_json: JsonOption = False) -> None:
    """Print the database's current revision and the newest (head) revision."""
    with _store() as store:
        now = store.current_revision()
        url = store.safe_url
    from steward.store.metadata import head_revision

    head = head_revision()
    if as_json:
        print_json({"database": url, "current": now, "head": head, "up_to_date": now == head})
        return
    console.print(f"database: {url}")
    console.print(f"current:  {now or '(empty: no migrations applied)'}")
    console.print(f"head:     {head}")
    if now != head:
        console.print("[yellow]The database is behind: run [bold]steward db upgrade[/bold].[/yellow]")
