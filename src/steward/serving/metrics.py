"""``/metrics``: the server's Prometheus metrics, on their own ``CollectorRegistry``.

=========================================  =========  ============================================
Metric                                     Type       Labels
=========================================  =========  ============================================
``steward_requests_total``                 counter    endpoint, version, role, code (HTTP status)
``steward_model_errors_total``             counter    endpoint, version
``steward_request_duration_seconds``       histogram  endpoint, version, role
``steward_batch_size``                     histogram  model, version (rows per batch)
``steward_model_version_loaded``           gauge      model, version (workers holding it)
``steward_endpoint_ready``                 gauge      endpoint (1 when its newest plan serves)
``steward_prediction_log_dropped_total``   counter    (records the prediction log had to drop)
``steward_feature_lookups_total``          counter    endpoint, outcome (ok | invalid | error)
``steward_feature_lookup_duration_seconds`` histogram endpoint (one online read per request)
``steward_feature_entities_missing_total`` counter    endpoint, view, status (NOT_FOUND | OUTSIDE_TTL)
=========================================  =========  ============================================

Latency buckets are :data:`steward.serving.models.LATENCY_BUCKETS_MS`, in seconds. Requests refused
before an endpoint is known (an unknown name, a body over the limit) are counted with empty labels, so a
client cannot grow the label set. With several worker processes the metrics use prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``steward.serving.server``), so ``/metrics``
sums every worker whichever one answers the scrape.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from steward.serving.models import LATENCY_BUCKETS_MS

if TYPE_CHECKING:
    from steward.serving.router import Router

CONTENT_TYPE: Final = prometheus_client.CONTENT_TYPE_LATEST
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Upper bounds of the batch-size histogram (rows)."""

# The ``_created`` series would double the text for nothing here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class ServingMetrics:
    """The server's metrics and their text rendering.

    Args:
        multiprocess_dir: prometheus-client's multiprocess directory (several workers); by default
            ``$PROMETHEUS_MULTIPROC_DIR`` if set, else single-process metrics.
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir or os.environ.get(MULTIPROCESS_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = Counter(
            "steward_requests",
            "Requests answered, by endpoint, version, role and HTTP status.",
            ["endpoint", "version", "role", "code"],
            registry=registry,
        )
        self._errors = Counter(
            "steward_model_errors",
            "Requests the model failed on (HTTP 5xx).",
            ["endpoint", "version"],
            registry=registry,
        )
        self._latency = Histogram(
            "steward_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            ["endpoint", "version", "role"],
            buckets=[ms / 1000.0 for ms in LATENCY_BUCKETS_MS],
            registry=registry,
        )
        self._batches = Histogram(
            "steward_batch_size",
            "Rows per model batch.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._loaded = Gauge(
            "steward_model_version_loaded",
            "Model versions loaded (summed over workers).",
            ["model", "version"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._ready = Gauge(
            "steward_endpoint_ready",
            "1 when the endpoint serves its newest plan.",
            ["endpoint"],
            multiprocess_mode="livemin",
            registry=registry,
        )
        self._dropped = Counter(
            "steward_prediction_log_dropped",
            "Prediction records dropped because the log's queue was full.",
            registry=registry,
        )
        self._dropped_seen = 0
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._refusals: dict[int, Any] = {}
        self._batch_children: dict[tuple[str, str], Any] = {}
        self._shown_loaded: set[tuple[str, str]] = set()
        self._shown_ready: set[str] = set()

    def request(self, endpoint: str, version: str, role: str, code: int, seconds: float) -> None:
        """Count one answered request and its latency.

        Args:
            endpoint: The endpoint.
            version: The version that answered.
            role: Its arm's role.
            code: The HTTP status sent.
            seconds: Arrival to answer.
        """
        key = (endpoint, version, role, code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(endpoint, version, role, str(code)),
                self._latency.labels(endpoint, version, role),
            )
        children[0].inc()
        children[1].observe(seconds)

    def refused(self, code: int) -> None:
        """Count a request refused before any endpoint was known (an unknown name, too large a body).

        Args:
            code: The HTTP status sent.
        """
        child = self._refusals.get(code)
        if child is None:
            child = self._refusals[code] = self._requests.labels("", "", "", str(code))
        child.inc()

    def model_error(self, endpoint: str, version: str) -> None:
        """Count a request the model failed on."""
        self._errors.labels(endpoint, version).inc()

    def batch(self, model: str, version: str, rows: int) -> None:
        """Count one batch of ``rows`` rows run by a version."""
        key = (model, version)
        child = self._batch_children.get(key)
        if child is None:
            child = self._batch_children[key] = self._batches.labels(model, version)
        child.observe(rows)

    def track(self, router: Router) -> None:
        """Set the loaded-version and endpoint-readiness gauges from the router's state."""
        loaded = {(key.model, key.version) for key in router.loaded}
        for model, version in loaded:
            self._loaded.labels(model, version).set(1)
        for model, version in self._shown_loaded - loaded:
            self._loaded.labels(model, version).set(0)
        self._shown_loaded |= loaded
        ready = {name: state.ready for name, state in router.endpoints.items()}
        for name, is_ready in ready.items():
            self._ready.labels(name).set(1 if is_ready else 0)
        for name in self._shown_ready - set(ready):
            self._ready.labels(name).set(0)
        self._shown_ready |= set(ready)

    def dropped(self, total: int) -> None:
        """Bring the dropped-records counter up to the prediction log's running ``total``."""
        if total > self._dropped_seen:
            self._dropped.inc(total - self._dropped_seen)
            self._dropped_seen = total

    def render(self) -> bytes:
        """The metrics in Prometheus' text format (every worker's, summed, in multiprocess mode)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        collector = prometheus_multiprocess.MultiProcessCollector
        collector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """In multiprocess mode, retire this process's live gauges (its worker is stopping)."""
        if self.multiprocess_dir is not None:
            dead = prometheus_multiprocess.mark_process_dead
            dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
