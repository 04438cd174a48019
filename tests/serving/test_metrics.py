"""``/metrics``: Prometheus text with requests, errors, latency and batch-size histograms, versions."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from steward.serving.app import ServingApp
from steward.serving.models import LATENCY_BUCKETS_MS
from tests.serving.conftest import Models, make_app, serving


@pytest.fixture(scope="module")
def server(models: Models) -> Iterator[tuple[ServingApp, str]]:
    app = make_app(models, references=("bc@production",), log_sample_rate=1.0)
    with serving(app) as url:
        yield app, url


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_latency_batches_and_versions(
    server: tuple[ServingApp, str], models: Models
) -> None:
    _app, url = server
    with httpx.Client(base_url=url, timeout=30) as http:
        for row in range(5):
            assert http.post("/predict/bc", json={"records": models.records([row])}).status_code == 200
        assert http.post("/predict/bc", json={"records": [{"mean radius": "x"}]}).status_code == 422
        assert http.post("/predict/unknown", json={"records": []}).status_code == 404
        answer = http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.text)
    stable = {("endpoint", "bc"), ("version", "1.0.0"), ("role", "stable")}
    assert samples[("steward_requests_total", frozenset(stable | {("code", "200")}))] == 5
    assert samples[("steward_requests_total", frozenset(stable | {("code", "422")}))] == 1
    nobody = {("endpoint", ""), ("version", ""), ("role", ""), ("code", "404")}
    assert samples[("steward_requests_total", frozenset(nobody))] == 1
    assert samples[("steward_request_duration_seconds_count", frozenset(stable))] == 6
    buckets = [labels for name, labels in samples if name == "steward_request_duration_seconds_bucket"]
    bounds = sorted(float(dict(labels)["le"]) for labels in buckets if stable <= set(labels))
    assert bounds == [ms / 1000 for ms in LATENCY_BUCKETS_MS] + [float("inf")]
    batch = frozenset({("model", "bc"), ("version", "1.0.0")})
    assert (
        samples[("steward_batch_size_count", batch)] == 5 and samples[("steward_batch_size_sum", batch)] == 5
    )
    assert samples[("steward_model_version_loaded", batch)] == 1
    assert samples[("steward_endpoint_ready", frozenset({("endpoint", "bc")}))] == 1
    assert samples[("steward_prediction_log_dropped_total", frozenset())] == 0


def test_answered_requests_reach_the_prediction_log(server: tuple[ServingApp, str], models: Models) -> None:
    app, url = server
    sink = app.sink
    assert sink is not None
    before = sink.stats()["offered"]  # type: ignore[attr-defined]
    with httpx.Client(base_url=url, timeout=30) as http:
        for row in range(3):
            http.post("/predict/bc", json={"records": models.records([row, row + 1])})
        http.post("/predict/bc", json={"records": [{"mean radius": "x"}]})  # refused: not logged
    assert sink.stats()["offered"] - before == 3  # type: ignore[attr-defined]
