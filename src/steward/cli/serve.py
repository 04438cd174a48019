"""``steward serve``: the inference server (Open Inference Protocol v2, ``/predict``, ``/metrics``).

``steward serve churn@production`` serves one model (moving the alias swaps the version, blue-green);
``--config models.yaml`` serves several (``steward.serving.sources``); ``--feature-service NAME`` makes
the references' requests carry entity keys, their inputs read from the online store; ``--endpoint NAME``
serves deployed endpoints and follows their rollouts (``steward.deploy``). With ``--auth`` model routes
need a bearer token holding ``serving:predict`` in the endpoint's project, checked by the API's own
gatekeeper.

The server names two factories by import path, because they reach into higher layers than
``steward.serving`` may import: :func:`endpoint_source` here, and
``steward.api.serving_auth.build_authorise``. With ``--endpoint``, this process also runs the rollout
controller (``steward.deploy.controller``), which analyses each step and promotes or rolls back, every
``--controller-interval`` seconds, over the ``--window-seconds`` windows the server writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from steward.cli.output import err_console
from steward.cli.server import LogLevel
from steward.config import load_settings
from steward.errors import InvalidInput, StewardError

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.deploy.controller import Controller
    from steward.serving.models import TrafficSource
    from steward.serving.server import ServeOptions
    from steward.store.platform import Platform

AUTHORISER: Final = "steward.api.serving_auth:build_authorise"
ENDPOINT_SOURCE: Final = "steward.cli.serve:endpoint_source"
WINDOW_SECONDS: Final = 10
"""The default of ``--window-seconds``: ``steward.serving.stats.DEFAULT_WINDOW_SECONDS`` (the CLI does not
import the server to show its help)."""
CONTROLLER_INTERVAL_S: Final = 5.0
"""The default of ``--controller-interval``: ``steward.deploy.controller.DEFAULT_INTERVAL_S``."""


def _positive_seconds(value: float | None) -> float | None:
    """Refuse a ``--controller-interval`` that is not a positive, finite number of seconds."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive number of seconds, not {value:g}")
    return value


def _whole_seconds(value: int) -> int:
    """Refuse a ``--window-seconds`` under one second."""
    if value < 1:
        raise typer.BadParameter(f"must be a positive whole number of seconds, not {value}")
    return value


def serve(
    references: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to serve: NAME@ALIAS, NAME/VERSION or NAME (newest); ENDPOINT=REF renames."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", dir_okay=False, help="A YAML/JSON file naming endpoints.")
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint", "-e", help="Serve this deployed endpoint (repeat for more; 'all' for all)."
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for all.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="TCP port.")] = 9000,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="The most rows one model batch gathers.")
    ] = 64,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", min=0.0, help="The longest a batch gathers requests (ms).")
    ] = 2.0,
    max_request_bytes: Annotated[
        int, typer.Option("--max-request-bytes", min=1024, help="Larger request bodies get 413.")
    ] = 16 * 1024 * 1024,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth", help="Model routes need a token with serving:predict (default: STEWARD_AUTH)."
        ),
    ] = None,
    log_sample_rate: Annotated[
        float,
        typer.Option(
            "--log-sample-rate",
            min=0.0,
            max=1.0,
            help="Share of requests written to the prediction log (0: none).",
        ),
    ] = 1.0,
    window_seconds: Annotated[
        int,
        typer.Option(
            "--window-seconds",
            callback=_whole_seconds,
            help="Length (seconds) of the serving statistics windows that canary analysis reads.",
        ),
    ] = WINDOW_SECONDS,
    controller_interval: Annotated[
        float | None,
        typer.Option(
            "--controller-interval",
            callback=_positive_seconds,
            help="Seconds between rollout controller steps, with --endpoint "
            f"(default: {CONTROLLER_INTERVAL_S:g}).",
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="The models' project (default: STEWARD_PROJECT).")
    ] = None,
    feature_service: Annotated[
        str | None,
        typer.Option(
            "--feature-service",
            help="Requests carry this feature service's entity keys; the models' inputs are read from its "
            "online features (with model references).",
        ),
    ] = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow code-bearing model formats (pyfunc) you have reviewed.")
    ] = False,
    onnx: Annotated[
        bool, typer.Option("--onnx/--no-onnx", help="Run a version's ONNX format when it has one.")
    ] = True,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="How much the server logs.")
    ] = LogLevel.INFO,
) -> None:
    """Serve models over the Open Inference Protocol v2 (/v2/...), plain JSON (/predict/NAME) and /metrics.

    Each version is verified and warmed up before it takes traffic. Moving an alias, editing the config or
    a rollout moves traffic without dropping a request.
    """
    from steward.api.server import settings_environment
    from steward.serving.server import ServeOptions, check_source, run

    settings = load_settings(auth=auth, project=project)
    names = tuple(endpoint or ())
    if controller_interval is not None and not names:
        raise InvalidInput(
            "--controller-interval goes with --endpoint: the rollout controller runs beside deployed "
            "endpoints only",
            {"field": "controller_interval"},
        )
    options = ServeOptions(
        references=tuple(references or ()),
        config=str(config) if config is not None else None,
        endpoints=() if names == ("all",) else names,
        use_endpoints=bool(names),
        host=host,
        port=port,
        workers=workers,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_request_bytes=max_request_bytes,
        log_sample_rate=log_sample_rate,
        window_seconds=window_seconds,
        project=settings.project,
        feature_service=feature_service,
        trust=trust,
        prefer_onnx=onnx,
        source_factory=ENDPOINT_SOURCE if names else None,
        authoriser=AUTHORISER if settings.auth else None,
        log_level=log_level.value,
        environment=settings_environment(settings),
    )
    served = check_source(options, settings)
    err_console.print(
        f"Serving {', '.join(served) or 'no endpoint yet'} on [bold]http://{host}:{port}[/bold] "
        f"(/v2/models/NAME/infer, /predict/NAME, /metrics); auth {'on' if settings.auth else 'off'}, "
        f"{workers} worker{'s' if workers > 1 else ''}; Ctrl-C stops it.",
        soft_wrap=True,
    )
    interval = CONTROLLER_INTERVAL_S if controller_interval is None else controller_interval
    controller = _rollout_controller(settings, options, interval) if names else None
    try:
        run(options, settings)
    finally:
        if controller is not None:
            controller.stop()


def _rollout_controller(settings: Settings, options: ServeOptions, interval: float) -> Controller:
    """The controller of the served endpoints' rollouts, stepping every ``interval`` seconds and asking this
    server whether a version is ready."""
    from steward.deploy.controller import Controller, HttpReadiness
    from steward.store.platform import Platform

    host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    readiness = HttpReadiness([f"http://{host}:{options.port}"]) if options.port else None
    return Controller(
        Platform.from_settings(settings), options.endpoints or None, interval=interval, readiness=readiness
    ).start()


def endpoint_source(platform: Platform, endpoints: Sequence[str] | None) -> TrafficSource:
    """The traffic source of deployed endpoints (``steward.deploy``), for ``steward serve --endpoint``.

    Args:
        platform: The server's platform.
        endpoints: The endpoints to serve (None: all of the project's).

    Raises:
        InvalidInput: If this installation has no deploy package yet.
    """
    try:
        from steward.deploy.source import EndpointSource
    except ImportError:
        raise InvalidInput(
            "steward serve --endpoint serves deployed endpoints, which needs steward.deploy; this "
            "installation does not have it: serve a model reference (NAME@ALIAS) or --config FILE",
            {"field": "endpoint"},
        ) from None
    source: TrafficSource = EndpointSource(platform, endpoints)
    return source


def main(args: Sequence[str] | None = None) -> None:
    """Run ``serve`` on its own (``python -m steward.cli.serve``); ``steward serve`` is the usual way.

    Args:
        args: The command line (``sys.argv[1:]`` if None).

    Raises:
        SystemExit: With 1 after printing a Steward error, 2 for a usage error.
    """
    import click

    from steward.cli.output import print_steward_error

    single = typer.Typer(add_completion=False)
    single.command()(serve)
    command = typer.main.get_command(single)
    # Newer typer releases carry their own copy of click, whose exceptions are not click's: catch both.
    exits: tuple[type[Exception], ...] = (click.exceptions.Exit, typer.Exit)
    vendored = [c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"]
    usage: tuple[type[Exception], ...] = (click.ClickException, *vendored)
    try:
        command.main(
            args=list(args) if args is not None else None, prog_name="steward serve", standalone_mode=False
        )
    except StewardError as exc:
        print_steward_error(exc)
        raise SystemExit(1) from None
    except exits as exc:
        raise SystemExit(getattr(exc, "exit_code", 1)) from None
    except usage as exc:
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(getattr(exc, "exit_code", 2)) from None


if __name__ == "__main__":
    main()
