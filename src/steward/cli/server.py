"""``steward server``: run the REST API (and its OpenAPI docs) on the configured stores."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from steward.cli.output import err_console
from steward.config import load_settings


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
) -> None:
    """Start the Steward API server on the configured database and artifact store."""
    from sqlalchemy.engine import make_url

    from steward.api.server import serve

    settings = load_settings()
    database = make_url(settings.db_url).render_as_string(hide_password=True)
    err_console.print(
        f"Steward API on [bold]http://{host}:{port}[/bold] (docs at http://{host}:{port}/docs), "
        f"metadata in {database}; Ctrl-C stops it.",
        soft_wrap=True,
    )
    serve(settings, host=host, port=port, workers=workers, log_level=log_level.value)
