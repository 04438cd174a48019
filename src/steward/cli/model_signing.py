"""``steward models verify`` and ``steward models sign``: check and (for old versions) add a version's
platform signature.

Every version registered since signing was introduced carries an Ed25519 signature by the platform key
over its id, name, number and manifest digests (``steward.registry.signatures``). ``verify`` checks it
and re-hashes every file, printing one line per check, and exits 1 if any fails; it works embedded and
against a server (``STEWARD_URI``). ``sign`` is for versions registered before signing (which do not
load until signed): it checks every digest first and signs only what passes. It needs the platform key,
so it works on the database and key directly and refuses to run with ``STEWARD_URI``.

These are plain functions; ``steward.cli.models`` registers them on its group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Column

from steward.cli.output import (
    JsonOption,
    connection,
    console,
    embedded_platform,
    err_console,
    new_table,
    print_json,
)

if TYPE_CHECKING:
    from steward.registry.service import RegistryService
    from steward.registry.signatures import VerificationReport

ModelName = Annotated[str, typer.Argument(help="The registered model's name.")]
VersionArg = Annotated[str, typer.Argument(help="The version, e.g. 1.2.0 (see 'steward models versions').")]


def verify_version(name: ModelName, version: VersionArg, as_json: JsonOption = False) -> None:
    """Check a version's platform signature and re-hash every file it records; exit 1 if a check fails.

    One line per check: the signing key is the platform's, the signature is valid over the version's
    manifest digests, each steward-model.yaml matches its digest and the version's record, and every
    file (of every format) matches its sha256 and size. Serving and loading refuse a version that fails.
    """
    with connection() as conn, err_console.status(f"Verifying models:/{escape(name)}/{escape(version)} …"):
        report = conn.registry.verify_version(name, version)
    _show(report, as_json)
    if not report.ok:
        raise typer.Exit(code=1)


@contextmanager
def _embedded_registry() -> Iterator[RegistryService]:
    from steward.registry.service import RegistryService

    with embedded_platform(
        "steward models sign needs the platform's signing key", "run it on the server's host"
    ) as platform:
        yield RegistryService(platform)


def sign_version(name: ModelName, version: VersionArg, as_json: JsonOption = False) -> None:
    """Sign a version registered before signing, after checking every digest it records (admins only).

    Nothing is signed if a digest check fails, or if the version already carries a platform signature
    that does not verify (its record was altered). A version already signed is left as it is. The
    signing is recorded in the audit trail.
    """
    with (
        _embedded_registry() as registry,
        err_console.status(f"Checking models:/{escape(name)}/{escape(version)} …"),
    ):
        report = registry.sign_version(name, version)
    _show(report, as_json)


def _show(report: VerificationReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    table = new_table(Column("Check", overflow="fold"), Column("Result", no_wrap=True), "Detail")
    for check in report.checks:
        result = "[green]ok[/green]" if check.ok else "[bold red]FAILED[/bold red]"
        table.add_row(escape(check.name), result, escape(check.detail))
    console.print(table)
    uri = escape(report.uri)
    if report.signed_now:
        console.print(f"[bold green]SIGNED[/bold green]: {uri} is now signed with key {report.key_id}.")
    elif report.ok:
        console.print(f"[bold green]OK[/bold green]: {uri} is signed with key {report.key_id} and intact.")
    else:
        failed = ", ".join(escape(c.name) for c in report.failures)
        console.print(f"[bold red]FAILED[/bold red]: {uri} does not verify ({failed}); it will not load.")
