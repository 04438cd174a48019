"""``steward server``: run the REST API (and its OpenAPI docs) on the configured stores."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from steward.cli.output import err_console
from steward.config import Settings, load_settings
from steward.errors import InvalidInput


class LogLevel(StrEnum):
    """The server's log levels (uvicorn's names)."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"


def server(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for all.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Number of worker processes.")] = 1,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="How much the server logs.")
    ] = LogLevel.INFO,
    auth: Annotated[
        bool | None,
        typer.Option("--auth/--no-auth", help="Make every request authenticate (default: STEWARD_AUTH)."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", exists=True, dir_okay=False, help="PEM certificate: serve HTTPS."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", exists=True, dir_okay=False, help="The certificate's PEM key.")
    ] = None,
) -> None:
    """Start the Steward API server on the configured database and artifact store.

    With --auth, requests need a bearer token. On the first start no admin exists: the server prints a
    one-time bootstrap token, and nothing can act until `steward login --bootstrap <token> --admin <name>`
    has used it to make the first admin.
    """
    from sqlalchemy.engine import make_url

    from steward.api.server import serve

    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput(
            "--tls-cert and --tls-key go together", {"field": "tls_key" if tls_cert else "tls_cert"}
        )
    settings = load_settings(auth=auth)
    database = make_url(settings.db_url).render_as_string(hide_password=True)
    scheme = "https" if tls_cert else "http"
    err_console.print(
        f"Steward API on [bold]{scheme}://{host}:{port}[/bold] (docs at {scheme}://{host}:{port}/docs), "
        f"metadata in {database}; auth {'on' if settings.auth else 'off'}; Ctrl-C stops it.",
        soft_wrap=True,
    )
    if settings.auth:
        _announce_bootstrap(settings)
    serve(
        settings, host=host, port=port, workers=workers, log_level=log_level.value,
        tls_cert=str(tls_cert) if tls_cert else None, tls_key=str(tls_key) if tls_key else None,
    )  # fmt: skip


def _announce_bootstrap(settings: Settings) -> None:
    """Print a one-time bootstrap token when no admin exists yet (made here, once, before the workers)."""
    from steward.governance.identity import IdentityService
    from steward.store.platform import Platform

    platform = Platform.from_settings(settings)
    try:
        secret = IdentityService(platform).start_bootstrap()
    finally:
        platform.close()
    if secret is None:
        return
    err_console.print(
        "No admin exists yet. This one-time bootstrap token makes the first one; it is shown only now:",
        soft_wrap=True,
    )
    typer.echo(secret)
    err_console.print(
        "Use it with: steward login --uri <this server> --bootstrap <token> --admin <your name>",
        soft_wrap=True,
    )
