"""Building the inference server from its options, and running it on uvicorn (one or several workers).

:class:`ServeOptions` says what to serve (model references, a config file, or deployed endpoints) and
how. :func:`build_app` turns it into a :class:`~steward.serving.app.ServingApp` on the stores named by
the settings; :func:`run` serves it with uvicorn (httptools, uvloop, no access log). With several
workers, each worker process builds its own app from ``STEWARD_SERVE_OPTIONS`` (this process's options
as JSON) and the ``STEWARD_*`` settings variables, and the Prometheus metrics go to a temporary
multiprocess directory that ``run`` creates and removes.

Endpoints behind a feature service read their inputs from the online store: each app (each worker
process) opens its own ``FeatureStore`` on the settings' stores, on first use
(``steward.serving.features``).

Parts that live in higher layers are named by import path (``module:function``), so this module never
imports them: ``source_factory`` builds the traffic source of deployed endpoints (``steward.deploy``),
``authoriser`` the ``authorise`` callable (``steward.api``'s identity checks). Both are called with the
platform and the options.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from steward.config import Settings, load_settings
from steward.core.acting import Acting, acting
from steward.errors import InvalidInput
from steward.features.models import KIND_SERVICE, FeatureBackend
from steward.registry.service import RegistryService
from steward.serving.app import DEFAULT_MAX_REQUEST_BYTES, Authorise, ServingApp
from steward.serving.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS
from steward.serving.features import OnlineFeatureReader
from steward.serving.metrics import MULTIPROCESS_ENV, ServingMetrics
from steward.serving.models import PredictionSink, TrafficSource
from steward.serving.router import DEFAULT_POLL_INTERVAL, Router
from steward.serving.runtime import RuntimeOptions, ServedVersion, VersionKey, load_served
from steward.serving.sources import ConfigSource, ReferenceSource
from steward.serving.stats import DEFAULT_WINDOW_SECONDS, WindowRecorder
from steward.store.platform import Platform

log = logging.getLogger("steward.serving")

OPTIONS_ENV: Final = "STEWARD_SERVE_OPTIONS"
ACTOR: Final = "steward-serve"
KEEP_ALIVE_SECONDS: Final = 65
SWITCH_INTERVAL_S: Final = 0.0005
"""How often (seconds) a thread holding the GIL is asked to release it, in a server process."""


@dataclass(frozen=True)
class ServeOptions:
    """What ``steward serve`` serves and how.

    Args:
        references: Model references (``churn@production``), one endpoint each.
        config: A YAML/JSON file naming endpoints (``steward.serving.sources``).
        endpoints: Deployed endpoints to serve (needs ``source_factory``); an empty tuple means all.
        use_endpoints: Serve deployed endpoints (``endpoints``) rather than references or a config.
        host: Address to listen on.
        port: TCP port (0: any free port).
        workers: Worker processes.
        max_batch_size: The most rows a batch gathers.
        max_wait_ms: The longest a batch gathers.
        max_request_bytes: Larger request bodies get 413.
        log_sample_rate: The share of answered requests written to the prediction log (0: none).
        poll_interval: Seconds between reads of the traffic plans.
        window_seconds: The length of the ``serving_windows`` windows (whole seconds, at least 1): the
            statistics canary analysis reads.
        project: The project of references and config endpoints (the settings' if None).
        feature_service: The feature service whose online features complete requests to the
            references' endpoints (requests then carry entity keys); with references only.
        trust: Allow code-bearing model formats to load.
        prefer_onnx: Run a version's ONNX format when it has one.
        source_factory: ``module:function`` building the source of deployed endpoints.
        authoriser: ``module:function`` building the ``authorise`` callable (None: no auth).
        log_level: uvicorn's log level.
        environment: Variables the worker processes need (``STEWARD_*`` settings).
    """

    references: tuple[str, ...] = ()
    config: str | None = None
    endpoints: tuple[str, ...] = ()
    use_endpoints: bool = False
    host: str = "127.0.0.1"
    port: int = 9000
    workers: int = 1
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    log_sample_rate: float = 1.0
    poll_interval: float = DEFAULT_POLL_INTERVAL
    window_seconds: int = DEFAULT_WINDOW_SECONDS
    project: str | None = None
    feature_service: str | None = None
    trust: bool = False
    prefer_onnx: bool = True
    source_factory: str | None = None
    authoriser: str | None = None
    log_level: str = "info"
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InvalidInput("--workers must be at least 1", {"field": "workers"})
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise InvalidInput("--log-sample-rate must be in [0, 1]", {"field": "log_sample_rate"})
        if self.max_request_bytes < 1024:
            raise InvalidInput("--max-request-bytes must be at least 1024", {"field": "max_request_bytes"})
        if self.poll_interval <= 0:
            raise InvalidInput("the poll interval must be positive", {"field": "poll_interval"})
        window = self.window_seconds
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidInput(
                f"--window-seconds must be a positive whole number of seconds, not {window!r}",
                {"field": "window_seconds"},
            )
        RuntimeOptions(self.max_batch_size, self.max_wait_ms)  # its own checks

    def to_json(self) -> str:
        """The options as JSON (what worker processes read from ``STEWARD_SERVE_OPTIONS``)."""
        data = dataclasses.asdict(self)
        data["environment"] = {}  # the workers get these as real environment variables
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        """Read options written by :meth:`to_json`."""
        data = json.loads(text)
        for name in ("references", "endpoints"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)


def _imported(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    function = getattr(importlib.import_module(module), name, None)
    if not callable(function):
        raise InvalidInput(f"{path!r} does not name a function (module:function)", {"field": "factory"})
    return function  # type: ignore[no-any-return]


def build_source(options: ServeOptions, platform: Platform, registry: RegistryService) -> TrafficSource:
    """The traffic source the options name.

    Raises:
        InvalidInput: For malformed references or config, or ``--endpoint`` without a source factory.
        NotFound: If the config file does not exist.
    """
    project = options.project or platform.settings.project
    chosen = sum([bool(options.references), options.config is not None, options.use_endpoints])
    if chosen != 1:
        raise InvalidInput(
            "serve model references, or --config FILE, or --endpoint NAME: exactly one of them",
            {"field": "references"},
        )
    if options.feature_service is not None and not options.references:
        raise InvalidInput(
            "--feature-service goes with model references; a config file names it per endpoint "
            "(feature_service: NAME) and a deployed endpoint has its own (steward deploy create "
            "--feature-service)",
            {"field": "feature_service"},
        )
    if options.references:
        return ReferenceSource(registry, options.references, project, ACTOR, options.feature_service)
    if options.config is not None:
        return ConfigSource(registry, Path(options.config), project, ACTOR)
    if options.source_factory is None:
        raise InvalidInput(
            "serving deployed endpoints needs the deploy package (steward.deploy)", {"field": "endpoint"}
        )
    source: TrafficSource = _imported(options.source_factory)(platform, options.endpoints or None)
    return source


def _sink(options: ServeOptions, settings: Settings) -> PredictionSink | None:
    if options.log_sample_rate <= 0:
        return None
    try:
        from steward.serving.prediction_log import PredictionLog
    except ImportError:
        log.warning("the prediction log is not available in this installation; requests are not logged")
        return None
    sink: PredictionSink = PredictionLog.from_settings(settings, sample_rate=options.log_sample_rate)
    return sink


def _feature_reader(settings: Settings, platform: Platform, metrics: ServingMetrics) -> OnlineFeatureReader:
    """The reader of online features, on a ``FeatureStore`` this process opens on first use."""

    def open_store() -> FeatureBackend:
        from steward.features.service import FeatureStore

        return FeatureStore(platform)

    embedded = settings.online_store.startswith("sqlite") and settings.db_url.startswith("sqlite")
    return OnlineFeatureReader(open_store, metrics.registry, actor=ACTOR, inline=embedded)


def build_app(
    options: ServeOptions, settings: Settings | None = None, source: TrafficSource | None = None
) -> ServingApp:
    """Build the inference server's app on the stores named by ``settings``.

    Args:
        options: What to serve and how.
        settings: Where the metadata and models live (from the environment if omitted).
        source: The traffic source to follow instead of the one the options name.

    Raises:
        InvalidInput: For bad options, references or config.
        ServiceUnavailable: If the metadata store cannot be reached.
    """
    settings = settings or load_settings()
    platform = Platform.from_settings(settings)
    registry = RegistryService(platform)
    source = source or build_source(options, platform, registry)
    metrics = ServingMetrics()
    runtime = RuntimeOptions(options.max_batch_size, options.max_wait_ms, options.prefer_onnx, options.trust)
    cache_root = Path(settings.home) / "cache" / "models"

    def on_batch(served: ServedVersion, rows: int, _requests: int) -> None:
        metrics.batch(served.key.model, served.key.version, rows)

    def load(key: VersionKey) -> ServedVersion:
        with acting(Acting(ACTOR, key.project)):
            version = registry.get_version(key.model, key.version)
            return load_served(registry, version, cache_root, key.project, runtime, on_batch)

    router = Router(source, load, poll_interval=options.poll_interval)
    recorder = WindowRecorder(platform.metadata, options.window_seconds)
    sink = _sink(options, settings)
    features = _feature_reader(settings, platform, metrics)
    authorise: Authorise | None = None
    if options.authoriser is not None:
        authorise = _imported(options.authoriser)(platform, options)
    closers: list[Callable[[], None]] = []
    close_sink = getattr(sink, "close", None)
    if callable(close_sink):
        closers.append(close_sink)
    closers.append(features.close)
    closers.append(platform.close)
    return ServingApp(
        router,
        metrics=metrics,
        recorder=recorder,
        sink=sink,
        authorise=authorise,
        features=features,
        max_request_bytes=options.max_request_bytes,
        on_shutdown=closers,
    )


def app_from_environment() -> ServingApp:
    """The app of one worker process: options from ``STEWARD_SERVE_OPTIONS``, settings from ``STEWARD_*``
    (``uvicorn --factory`` calls this in each worker)."""
    text = os.environ.get(OPTIONS_ENV)
    if not text:
        raise InvalidInput(
            f"{OPTIONS_ENV} is not set: start workers with steward serve", {"field": OPTIONS_ENV}
        )
    _share_the_interpreter()
    return build_app(ServeOptions.from_json(text))


def _share_the_interpreter() -> None:
    """Make a background thread (the prediction log's writer, the statistics recorder) hand the GIL back
    to the event loop within half a millisecond rather than Python's default five: otherwise each of its
    bursts stalls every request in flight and shows in the 99th percentile."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def check_source(options: ServeOptions, settings: Settings) -> list[str]:
    """Read the plans once before starting, so that a bad reference or feature service fails at once;
    return the endpoints.

    Raises:
        StewardError: What the source raised (a missing model, alias or file).
        NotFound: A plan names a feature service that is not defined.
    """
    platform = Platform.from_settings(settings)
    try:
        plans = build_source(options, platform, RegistryService(platform)).plans()
        services = {(plan.project, plan.feature_service) for plan in plans if plan.feature_service}
        if services:
            from steward.features.service import FeatureStore

            store = FeatureStore(platform)
            for project, service in sorted(services):
                with acting(Acting(ACTOR, project)):
                    store.get_definition(KIND_SERVICE, service)
    finally:
        platform.close()
    return [plan.endpoint for plan in plans]


def run(
    options: ServeOptions, settings: Settings | None = None, sockets: Sequence[Any] | None = None
) -> None:
    """Serve until interrupted.

    Args:
        options: What to serve and how.
        settings: Where the metadata and models live (from the environment if omitted).
        sockets: Already bound sockets to serve on (tests bind port 0 themselves); one worker only.

    Raises:
        InvalidInput: For bad options.
        ServiceUnavailable: If the metadata store cannot be reached.
    """
    import uvicorn

    settings = settings or load_settings()
    _share_the_interpreter()
    common: dict[str, Any] = {
        "host": options.host, "port": options.port, "log_level": options.log_level, "access_log": False,
        "loop": "uvloop", "http": "httptools", "ws": "none", "lifespan": "on",
        "timeout_keep_alive": KEEP_ALIVE_SECONDS, "timeout_graceful_shutdown": 10,
    }  # fmt: skip
    if options.workers <= 1:
        config = uvicorn.Config(build_app(options, settings), **common)
        uvicorn.Server(config).run(sockets=list(sockets) if sockets else None)
        return
    metrics_dir = tempfile.mkdtemp(prefix="steward-metrics-")
    saved = {name: os.environ.get(name) for name in (MULTIPROCESS_ENV, OPTIONS_ENV, *options.environment)}
    os.environ.update(options.environment)
    os.environ[MULTIPROCESS_ENV] = metrics_dir
    os.environ[OPTIONS_ENV] = options.to_json()
    try:
        uvicorn.run(
            "steward.serving.server:app_from_environment", factory=True, workers=options.workers, **common
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
