"""The metric buffer: batching, and failures that are raised and lose nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from steward.tracking.buffer import MetricBuffer, MetricFlushError
from steward.tracking.models import MetricSeries


class FlakyWriter:
    """Records batches; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[MetricSeries]] = []
        self.failing = False

    def __call__(self, series: Sequence[MetricSeries]) -> int:
        if self.failing:
            raise ConnectionError("database went away")
        self.batches.append(list(series))
        return sum(len(s) for s in series)

    def points(self) -> list[tuple[str, int, float]]:
        return [
            (s.key, int(st), float(v))
            for b in self.batches
            for s in b
            for st, v in zip(s.steps, s.values, strict=True)
        ]


def test_points_are_written_in_batches_of_the_configured_size() -> None:
    writer = FlakyWriter()
    buffer = MetricBuffer(writer, max_points=100, interval=3600)
    for step in range(250):
        buffer.add("loss", float(step), step)
    assert len(writer.batches) == 2 and len(buffer) == 50
    buffer.flush()
    assert [p[1] for p in writer.points()] == list(range(250))
    buffer.close()


def test_a_failed_flush_is_raised_and_retried_without_loss() -> None:
    writer = FlakyWriter()
    buffer = MetricBuffer(writer, max_points=10, interval=3600)
    writer.failing = True
    for step in range(9):
        buffer.add("loss", float(step), step)
    with pytest.raises(MetricFlushError, match="database went away"):
        buffer.add("loss", 9.0, 9)  # the tenth point triggers the flush
    assert len(buffer) == 10  # nothing dropped
    writer.failing = False
    buffer.add("loss", 10.0, 10)  # reaches the size again: all eleven go out
    assert [p[1] for p in writer.points()] == list(range(11))
    buffer.close()


def test_a_background_flush_failure_is_reported_on_the_next_call() -> None:
    writer = FlakyWriter()
    buffer = MetricBuffer(writer, max_points=1000, interval=0.0)
    writer.failing = True
    buffer.add("loss", 1.0, 0)
    buffer.flush_if_due()  # what the flusher thread does
    writer.failing = False
    with pytest.raises(MetricFlushError):
        buffer.add("loss", 2.0, 1)
    buffer.flush()
    assert [p[1] for p in writer.points()] == [0]  # the kept point; the call that raised logged nothing
    buffer.close()
