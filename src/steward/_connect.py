"""``connect`` and ``configure``: choose embedded (direct store access) or remote (HTTP) mode."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from steward.config import Settings, load_settings
from steward.data import sdk as data_sdk
from steward.data.models import DataBackend
from steward.deploy import sdk as deploy_sdk
from steward.deploy.models import DeployBackend
from steward.features import sdk as features_sdk
from steward.features.models import FeatureBackend
from steward.monitoring import sdk as monitoring_sdk
from steward.monitoring.sdk import MonitoringBackend
from steward.pipelines import sdk as pipelines_sdk
from steward.pipelines.models import PipelineBackend
from steward.registry import sdk as registry_sdk
from steward.registry.models import RegistryBackend
from steward.serving import sdk as serving_sdk
from steward.serving.sdk import PredictionsBackend
from steward.tracking import fluent
from steward.tracking.models import TrackingBackend


@dataclass
class Connection:
    """Steward's services, embedded or over HTTP; what ``steward.connect`` returns.

    Attributes:
        settings: The resolved settings.
        tracking: Experiments, runs, metrics, artifacts.
        registry: Registered models, versions, aliases, lineage and cards.
        data: Datasets, versions, checks, privacy and quarantine.
        remote: Whether the services speak HTTP to a Steward server.
    """

    settings: Settings
    tracking: TrackingBackend
    registry: RegistryBackend
    _data_factory: Callable[[], DataBackend]
    remote: bool
    _closer: Any = None
    _data: DataBackend | None = None
    _pipelines_factory: Callable[[], PipelineBackend] | None = None
    _pipelines: PipelineBackend | None = None
    _predictions_factory: Callable[[], PredictionsBackend] | None = None
    _predictions: PredictionsBackend | None = None
    _deploy_factory: Callable[[], DeployBackend] | None = None
    _deploy: DeployBackend | None = None
    _features_factory: Callable[[], FeatureBackend] | None = None
    _features: FeatureBackend | None = None
    _monitoring_factory: Callable[[], MonitoringBackend] | None = None
    _monitoring: MonitoringBackend | None = None

    @property
    def data(self) -> DataBackend:
        """The data service, made on first use: it pulls in pyarrow and DuckDB, which runs alone need not
        (their imports would also slow every later garbage collection of a training loop)."""
        if self._data is None:
            self._data = self._data_factory()
        return self._data

    @property
    def pipelines(self) -> PipelineBackend:
        """Pipeline runs: the store's in embedded mode (which can also run pipelines), the server's
        (read-only) in remote mode."""
        if self._pipelines is None:
            assert self._pipelines_factory is not None
            self._pipelines = self._pipelines_factory()
        return self._pipelines

    @property
    def predictions(self) -> PredictionsBackend:
        """Logged predictions and late labels: the artifact root's in embedded mode, the server's
        ``/predictions`` routes in remote mode."""
        if self._predictions is None:
            assert self._predictions_factory is not None
            self._predictions = self._predictions_factory()
        return self._predictions

    @property
    def deploy(self) -> DeployBackend:
        """Endpoints and rollouts: the store's in embedded mode, the server's ``/endpoints`` routes in
        remote mode."""
        if self._deploy is None:
            assert self._deploy_factory is not None
            self._deploy = self._deploy_factory()
        return self._deploy

    @property
    def features(self) -> FeatureBackend:
        """The feature store, made on first use (it opens the online store when first read)."""
        if self._features is None:
            assert self._features_factory is not None
            self._features = self._features_factory()
        return self._features

    @property
    def monitoring(self) -> MonitoringBackend:
        """Monitors, their runs, alerts and reports."""
        if self._monitoring is None:
            assert self._monitoring_factory is not None
            self._monitoring = self._monitoring_factory()
        return self._monitoring

    def close(self) -> None:
        """Release connections (database pool or HTTP client)."""
        closing = getattr(self._features, "close", None)
        if closing is not None:
            closing()
        if self._closer is not None:
            self._closer()


def connect(uri: str | None = None, **settings: Any) -> Connection:
    """Open Steward: embedded by default, remote when ``uri`` (or ``STEWARD_URI``) is ``http(s)://…``.

    Args:
        uri: A Steward server URL, for remote mode.
        **settings: Overrides of ``steward.config.Settings`` (``home``, ``db``, ``artifacts``, …).

    Raises:
        InvalidInput: For malformed settings.
        ServiceUnavailable: If the database cannot be reached.
    """
    resolved = load_settings(uri=uri, **settings)
    if resolved.uri:
        from steward.client.http import HttpClient
        from steward.client.registry import RemoteRegistryService
        from steward.client.tracking import RemoteTrackingService

        http = HttpClient.from_settings(resolved)
        return Connection(
            resolved,
            RemoteTrackingService(http),
            RemoteRegistryService(http),
            partial(_remote_data, http),
            remote=True,
            _closer=http.close,
            _pipelines_factory=partial(_remote_pipelines, http),
            _predictions_factory=partial(_remote_predictions, http),
            _deploy_factory=partial(_remote_deploy, http),
            _features_factory=partial(_remote_features, http),
            _monitoring_factory=partial(_remote_monitoring, http),
        )
    from steward.registry.service import RegistryService
    from steward.store.platform import Platform
    from steward.tracking.service import TrackingService

    platform = Platform.from_settings(resolved)
    tracking = TrackingService(platform)
    registry = RegistryService(platform, tracking)
    return Connection(
        resolved,
        tracking,
        registry,
        partial(_embedded_data, platform),
        False,
        platform.close,
        _pipelines_factory=partial(_embedded_pipelines, platform, tracking),
        _predictions_factory=partial(_embedded_predictions, platform),
        _deploy_factory=partial(_embedded_deploy, platform, registry),
        _features_factory=partial(_embedded_features, platform),
        _monitoring_factory=partial(_embedded_monitoring, platform, registry),
    )


def _remote_data(http: Any) -> DataBackend:
    from steward.client.data import RemoteDataService

    return RemoteDataService(http)


def _remote_pipelines(http: Any) -> PipelineBackend:
    from steward.client.pipelines import RemotePipelineService

    return RemotePipelineService(http)


def _embedded_pipelines(platform: Any, tracking: Any) -> PipelineBackend:
    from steward.pipelines.service import PipelineService

    return PipelineService(platform, tracking)


def _remote_predictions(http: Any) -> PredictionsBackend:
    from steward.client.predictions import RemotePredictionService

    return RemotePredictionService(http)


def _embedded_predictions(platform: Any) -> PredictionsBackend:
    from steward.serving.prediction_service import PredictionService

    return PredictionService(platform)


def _remote_deploy(http: Any) -> DeployBackend:
    from steward.client.deploy import RemoteDeployService

    return RemoteDeployService(http)


def _embedded_deploy(platform: Any, registry: Any) -> DeployBackend:
    from steward.deploy.service import DeployService

    return DeployService(platform, registry)


def _remote_features(http: Any) -> FeatureBackend:
    from steward.client.features import RemoteFeatureStore

    return RemoteFeatureStore(http)


def _embedded_features(platform: Any) -> FeatureBackend:
    from steward.features.service import FeatureStore

    return FeatureStore(platform)


def _remote_monitoring(http: Any) -> MonitoringBackend:
    from steward.client.monitoring import RemoteMonitoringService

    return RemoteMonitoringService(http)


def _embedded_monitoring(platform: Any, registry: Any) -> MonitoringBackend:
    from steward.monitoring.service import MonitoringService

    return MonitoringService(platform, registry)


def _embedded_data(platform: Any) -> DataBackend:
    from steward.data.service import DataService

    return DataService(platform)


_default: Connection | None = None
_default_lock = threading.Lock()


def configure(**settings: Any) -> Connection:
    """Replace the connection the SDK functions (``steward.start_run`` …) use.

    Args:
        **settings: As for ``connect``: ``uri=``, ``home=``, ``db=``, ``artifacts=`` …

    Returns:
        The new default connection.
    """
    global _default
    new = connect(**settings)
    with _default_lock:
        old, _default = _default, new
    if old is not None:
        old.close()
    return new


def default_connection() -> Connection:
    """Return the SDK's connection, opening it from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = connect()
    return _default


def _resolve() -> tuple[TrackingBackend, Settings]:
    conn = default_connection()
    return conn.tracking, conn.settings


def _resolve_registry() -> tuple[RegistryBackend, Settings]:
    conn = default_connection()
    return conn.registry, conn.settings


def _resolve_data() -> tuple[DataBackend, Settings]:
    conn = default_connection()
    return conn.data, conn.settings


def _resolve_pipelines() -> PipelineBackend:
    return default_connection().pipelines


def _resolve_predictions() -> PredictionsBackend:
    return default_connection().predictions


fluent.set_backend_resolver(_resolve)
serving_sdk.set_predictions_resolver(_resolve_predictions)
deploy_sdk.set_deploy_resolver(lambda: default_connection().deploy)
pipelines_sdk.set_pipeline_resolver(_resolve_pipelines)
data_sdk.set_data_resolver(_resolve_data)
registry_sdk.set_registry_resolver(_resolve_registry)
features_sdk.set_features_resolver(lambda: default_connection().features)
monitoring_sdk.set_monitoring_resolver(lambda: default_connection().monitoring)
