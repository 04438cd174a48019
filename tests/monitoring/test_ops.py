"""Operations: percentiles read off a latency histogram, and per-version figures from the serving
statistics a real recorder wrote."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from steward.core.time import now_ms
from steward.errors import InvalidInput
from steward.monitoring.models import OpsReport
from steward.monitoring.ops import ops_report, percentile_from_histogram
from steward.serving.models import LATENCY_BUCKETS_MS, WindowStats
from steward.serving.stats import WindowRecorder
from steward.store.metadata import MetadataStore

BOUNDS = [10.0, 20.0, 50.0]


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([100, 0, 0, 0], 0.5, 5.0),  # half of the first bucket, which starts at 0
        ([50, 50, 0, 0], 0.5, 10.0),  # exactly at a bound
        ([50, 50, 0, 0], 0.75, 15.0),  # halfway into (10, 20]
        ([0, 0, 10, 0], 0.9, 47.0),  # 20 + 30 * 9/10
        ([0, 90, 0, 10], 0.95, 50.0),  # in the open bucket: its lower bound
        ([0, 40, 60], 0.0, 10.0),  # the lowest: the start of the first non-empty bucket
        ([0, 40, 60], 1.0, 50.0),  # the highest: the end of the last non-empty bucket
        ([0, 0, 0, 0], 0.5, None),  # nothing observed
    ],
)
def test_percentiles_interpolate_inside_the_bucket(
    counts: list[int], q: float, expected: float | None
) -> None:
    assert percentile_from_histogram(counts, BOUNDS, q) == pytest.approx(expected)


def test_percentiles_agree_with_the_serving_histogram() -> None:
    stats = WindowStats()
    for latency in [0.05, 0.3, 0.3, 0.7, 1.2, 3.0, 3.0, 8.0, 40.0, 180.0]:
        stats.observe(latency)
    for q in (0.1, 0.5, 0.9, 0.99):
        assert percentile_from_histogram(stats.buckets, LATENCY_BUCKETS_MS, q) == pytest.approx(
            stats.quantile_ms(q)
        )


@pytest.mark.parametrize(
    ("counts", "bounds", "q", "field"),
    [
        ([1, 2], [1.0, 2.0], 1.5, "q"),
        ([1, 2], [1.0, 2.0], -0.1, "q"),
        ([1, 2], [2.0, 1.0], 0.5, "bounds"),
        ([1, 2], [], 0.5, "bounds"),
        ([1, 2, 3, 4], [1.0, 2.0], 0.5, "counts"),
        ([1, -2], [1.0, 2.0], 0.5, "counts"),
    ],
)
def test_bad_histograms_are_refused_naming_the_field(
    counts: list[int], bounds: list[float], q: float, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        percentile_from_histogram(counts, bounds, q)
    assert caught.value.details["field"] == field


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path}/m.db"
    )
    store = MetadataStore(url)
    store.ensure_migrated()
    yield store
    store.dispose()


def test_ops_figures_per_version_from_the_recorders_windows(metadata: MetadataStore) -> None:
    endpoint = "churn"
    first = WindowRecorder(metadata, worker="host-a:1")
    second = WindowRecorder(metadata, worker="host-b:2")
    for latency in (0.2, 0.4, 30.0, 30.0):
        first.observe("default", endpoint, "1.0.0", "stable", latency)
    second.observe("default", endpoint, "1.0.0", "stable", 3.0, error=True)
    second.observe("default", endpoint, "1.0.0", "stable", 700.0)
    second.compared("default", endpoint, "2.0.0", agreed=True)  # a shadow only compared: no requests
    first.observe("other", endpoint, "1.0.0", "stable", 1.0)  # another project
    assert first.flush() == 2 and second.flush() == 2
    start = datetime.fromtimestamp(now_ms() // 1000 - 120, UTC)
    end = start + timedelta(seconds=240)

    report = ops_report(metadata, "default", endpoint, start, end)
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    stable = report.versions["1.0.0"]
    # sorted: 0.2, 0.4, 3 | 30, 30, 700. p50 is rank 3 of 6, the 3 ms request's bucket (2.5, 5] ends at 5;
    # p95 is rank 5.7: 0.7 into the 700 ms request's bucket (500, 1000]; p99 rank 5.94
    assert stable == pytest.approx({
        "requests": 6, "errors": 1, "error_rate": 1 / 6, "throughput_rps": 6 / 240,
        "mean_latency_ms": (0.2 + 0.4 + 30 + 30 + 3 + 700) / 6,
        "p50_latency_ms": 5.0, "p95_latency_ms": 850.0, "p99_latency_ms": 970.0,
    })  # fmt: skip
    assert report.versions["2.0.0"] == {
        "requests": 0, "errors": 0, "error_rate": None, "throughput_rps": 0.0, "mean_latency_ms": None,
        "p50_latency_ms": None, "p95_latency_ms": None, "p99_latency_ms": None,
    }  # fmt: skip
    assert OpsReport.from_json(report.to_json()) == report
    assert ops_report(metadata, "default", endpoint, end, end + timedelta(hours=1)).versions == {}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"endpoint": "bad name"}, "endpoint"),
        ({"end": datetime(2025, 1, 1, tzinfo=UTC)}, "end"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_a_bad_span_or_name_is_refused(
    metadata: MetadataStore, arguments: dict[str, Any], field: str
) -> None:
    day = datetime(2025, 1, 1, tzinfo=UTC)
    given: dict[str, Any] = {"project": "default", "endpoint": "churn", "start": day,
                             "end": day + timedelta(days=1), **arguments}  # fmt: skip
    with pytest.raises(InvalidInput) as caught:
        ops_report(metadata, **given)
    assert caught.value.details["field"] == field
