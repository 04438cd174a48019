"""Window statistics: per worker, endpoint, version and window in ``serving_windows``, read back summed."""

from __future__ import annotations

import time

import httpx

from steward.serving.stats import WindowRecorder, read_windows
from steward.store.platform import Platform
from tests.serving.conftest import Models, make_app, serving


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_rows_are_written_per_worker_and_summed_on_read(models: Models) -> None:
    platform = Platform.from_settings(models.settings)
    since = _now_ms() - 60_000
    first = WindowRecorder(platform.metadata, worker="host-a:1")
    second = WindowRecorder(platform.metadata, worker="host-b:2")
    for latency in (0.2, 0.4, 30.0):
        first.observe("default", "stats-a", "1.0.0", "stable", latency)
    first.observe("default", "stats-a", "1.1.0", "canary", 3.0, error=True)
    second.observe("default", "stats-a", "1.0.0", "stable", 1.0)
    second.compared("default", "stats-a", "1.2.0", agreed=True)
    second.compared("default", "stats-a", "1.2.0", agreed=False)
    second.observe("other", "stats-a", "1.0.0", "stable", 1.0)  # another project's endpoint
    assert first.flush() == 2 and second.flush() == 3
    assert first.flush() == 0  # nothing changed
    first.observe("default", "stats-a", "1.0.0", "stable", 0.2)
    assert first.flush() == 1  # the window's row rewritten with its new totals, not added to
    totals = read_windows(platform.metadata, "default", "stats-a", since)
    assert set(totals) == {"1.0.0", "1.1.0", "1.2.0"}
    stable = totals["1.0.0"]
    assert stable.requests == 5 and stable.errors == 0 and sum(stable.buckets) == 5
    assert abs(stable.latency_sum_ms - 31.8) < 1e-9
    assert totals["1.1.0"].error_rate == 1.0
    assert (totals["1.2.0"].shadow_compared, totals["1.2.0"].shadow_agreed) == (2, 1)
    assert read_windows(platform.metadata, "other", "stats-a", since)["1.0.0"].requests == 1
    assert read_windows(platform.metadata, "default", "stats-a", since, until_ms=since + 1) == {}
    platform.close()


def test_a_server_writes_its_windows_off_the_request_path(models: Models) -> None:
    since = _now_ms() - 60_000
    app = make_app(models, references=("stats=bc@production",))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        for row in range(7):
            assert http.post("/predict/stats", json={"records": models.records([row])}).status_code == 200
        assert http.post("/predict/stats", json={"records": [{"x": 1}]}).status_code == 422  # not the model's
    # stopping the server wrote what was left
    platform = Platform.from_settings(models.settings)
    totals = read_windows(platform.metadata, "default", "stats", since)
    platform.close()
    assert totals["1.0.0"].requests == 7 and totals["1.0.0"].errors == 0
    assert 0 < totals["1.0.0"].quantile_ms(0.5) < 1000
