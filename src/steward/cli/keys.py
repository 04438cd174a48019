"""``steward keys``: which keys protect the blob store's data keys, and rotation to the newest key.

Keys come from ``STEWARD_ENCRYPTION_KEY`` (comma-separated, newest first) and/or
``STEWARD_ENCRYPTION_KEY_FILE`` (one a line, newest first). To rotate: put a new key first, run
``steward keys rotate``, then remove the old key. These commands work on the blob store directly, so
they refuse to run against a server (``STEWARD_URI``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from steward.cli.output import JsonOption, console, err_console, new_table, print_error, print_json
from steward.config import load_settings
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from steward.store.blobs import BlobStore

app = typer.Typer(
    help="Encryption at rest: show which keys wrap the blobs' data keys, rotate them to the newest key.",
    no_args_is_help=True,
)

WorkersOption = Annotated[
    int, typer.Option("--workers", min=1, max=64, help="Data keys read (and rewrapped) at once.")
]


def _store() -> BlobStore:
    settings = load_settings()
    if settings.uri:
        raise InvalidInput(
            f"steward keys works on the blob store directly, but STEWARD_URI points at a server "
            f"({settings.uri}); run it where the artifact store and keys are, without STEWARD_URI",
            {"field": "uri"},
        )
    from steward.store.blobs import BlobStore

    return BlobStore.from_settings(settings)


def _audit_rotation(root: str, report: Any) -> None:
    """Record the rotation in the audit trail: the new key's id and the counts, never key material."""
    from steward.governance import audit
    from steward.store.platform import Platform

    platform = Platform.from_settings(load_settings())
    try:
        with platform.metadata.transaction() as conn:
            audit.append(
                conn, actor=platform.actor, action="keys.rotate", resource_kind="blob_store",
                resource_id=root,
                outcome="ok" if not report.failed else "failed",
                details={"key_id": report.key_id, "rewrapped": report.rewrapped, "current": report.current,
                         "failed": report.failed},
                checkpoint=audit.checkpointer_for(platform.settings),
            )  # fmt: skip
    finally:
        platform.close()


@contextmanager
def _progress(title: str, counts: Callable[[Any], str]) -> Iterator[Callable[[Any], None]]:
    """A progress bar over the store's 256 key prefixes (on stderr), and the callback that moves it."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=256, counts="")

        def update(report: Any) -> None:
            bar.update(task, completed=report.prefixes_done, counts=counts(report))

        yield update


@app.command("status")
def status(workers: WorkersOption = 8, as_json: JsonOption = False) -> None:
    """Count the blobs stored in the clear and the data keys under each key id."""
    store = _store()
    with _progress("Reading data keys", lambda s: f"{s.encrypted} encrypted, {s.unencrypted} clear") as cb:
        result = store.key_status(progress=cb, workers=workers)
    if as_json:
        print_json(
            {
                "store": store.root_url,
                "key_id": result.key_id,
                "encrypted": result.encrypted,
                "unencrypted": result.unencrypted,
                "data_keys": result.data_keys,
                "orphaned": result.orphaned,
                "unreadable": result.unreadable,
            }
        )
        return
    console.print(f"store:       {escape(store.root_url)}")
    console.print(f"newest key:  {result.key_id or '(none: new blobs are stored in the clear)'}")
    console.print(f"encrypted:   {result.encrypted} blob(s)")
    console.print(f"unencrypted: {result.unencrypted} blob(s)")
    if result.data_keys:
        table = new_table("Key id", "Data keys", "")
        for key_id, count in sorted(result.data_keys.items(), key=lambda item: -item[1]):
            note = "newest" if key_id == result.key_id else "[yellow]rotate[/yellow]"
            table.add_row(escape(key_id), str(count), note)
        console.print(table)
    if result.orphaned:
        console.print(f"{result.orphaned} data key(s) without their blob (left by interrupted writes).")
    if result.unreadable:
        console.print(f"[red]{result.unreadable} data key sidecar(s) could not be read.[/red]")
    if result.key_id and any(key_id != result.key_id for key_id in result.data_keys):
        console.print("Run [bold]steward keys rotate[/bold] to wrap every data key under the newest key.")


_ROTATE_HELP = (
    "Wrap every blob's data key under the newest key; the encrypted data is not rewritten.\n\n"
    "Each data key is unwrapped with the key it names (which must still be configured) and wrapped again "
    "under the first key of STEWARD_ENCRYPTION_KEY / STEWARD_ENCRYPTION_KEY_FILE. Data keys already under "
    "it are left alone, so running it again is harmless; once it reports no failures, the older keys can "
    "be removed."
)


@app.command("rotate", help=_ROTATE_HELP)
def rotate(workers: WorkersOption = 8, as_json: JsonOption = False) -> None:
    """Wrap every blob's data key under the newest key (see ``_ROTATE_HELP``); exit 1 if any failed."""
    store = _store()
    with _progress("Rewrapping data keys", lambda r: f"{r.rewrapped} rewrapped, {r.current} current") as cb:
        report = store.rotate_keys(progress=cb, workers=workers)
    _audit_rotation(store.root_url, report)
    if as_json:
        print_json(
            {
                "store": store.root_url,
                "key_id": report.key_id,
                "rewrapped": report.rewrapped,
                "current": report.current,
                "failed": report.failed,
                "failures": [{"sidecar": key, "error": message} for key, message in report.failures],
            }
        )
    else:
        console.print(
            f"Rewrapped {report.rewrapped} data key(s) under [bold]{escape(report.key_id)}[/bold]; "
            f"{report.current} already were."
        )
    if report.failed:
        for key, message in report.failures:
            print_error(f"{key}: {message}")
        more = report.failed - len(report.failures)
        print_error(
            f"{report.failed} data key(s) could not be rewrapped"
            + (f" ({more} more not shown)" if more else "")
            + "; keep the old keys until they are"
        )
        raise typer.Exit(code=1)
