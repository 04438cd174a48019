"""Where each answered request is counted: ``/metrics``, the window statistics and the prediction log.

All of it runs after the answer is sent and none of it waits: metrics and window counts are in-memory
additions, and the prediction log's ``offer`` only queues the record (or counts it dropped).

The window statistics count what the model ran: answers (200) and model failures (5xx, the errors).
Requests refused for their input (4xx) are counted in ``/metrics`` by status only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from steward.serving.metrics import ServingMetrics
from steward.serving.models import NamedColumns, PredictionRecord, PredictionSink, TrafficPlan
from steward.serving.runtime import ServedVersion
from steward.serving.stats import WindowRecorder

log = logging.getLogger("steward.serving")


class Accounting:
    """Counts requests into the metrics, the window recorder and the prediction sink.

    Args:
        metrics: The server's Prometheus metrics.
        recorder: The window statistics (None: not recorded).
        sink: The prediction log (None: nothing logged).
    """

    def __init__(
        self,
        metrics: ServingMetrics,
        recorder: WindowRecorder | None = None,
        sink: PredictionSink | None = None,
    ) -> None:
        self.metrics = metrics
        self.recorder = recorder
        self.sink = sink

    def answered(
        self,
        plan: TrafficPlan,
        served: ServedVersion,
        role: str,
        status: int,
        latency: float,
        request_id: str,
        at_ms: int,
        item: Any = None,
        answers: Any = None,
    ) -> None:
        """Count one request a version handled.

        Args:
            plan: The endpoint's plan.
            served: The version.
            role: Its arm's role (``shadow`` for a mirrored copy).
            status: The HTTP status (for a shadow: 200, or 500 if it failed).
            latency: Seconds from arrival to answer.
            request_id: The request's id.
            at_ms: When it arrived (Unix ms).
            item: The model-ready input (for the prediction log).
            answers: The model's answers (for the prediction log).
        """
        version = served.key.version
        self.metrics.request(plan.endpoint, version, role, status, latency)
        error = status >= 500
        if error:
            self.metrics.model_error(plan.endpoint, version)
        if self.recorder is not None and (status == 200 or error):
            self.recorder.observe(plan.project, plan.endpoint, version, role, latency * 1000.0, error)
        if self.sink is not None and status == 200:
            record = PredictionRecord(
                project=plan.project,
                endpoint=plan.endpoint,
                model=plan.model,
                version=version,
                role=role,
                request_id=request_id,
                at_ms=at_ms,
                inputs=_logged_inputs(served, item),
                outputs=answers,
                latency_ms=latency * 1000.0,
                status=status,
            )
            try:
                self.sink.offer(record)
            except Exception:  # the log must never fail a request
                log.exception("the prediction log refused a record")

    def compared(self, plan: TrafficPlan, served: ServedVersion, agreed: bool) -> None:
        """Count one shadow answer compared with the answer returned."""
        if self.recorder is not None:
            self.recorder.compared(plan.project, plan.endpoint, served.key.version, agreed)

    def refused(self, status: int) -> None:
        """Count a request refused before an endpoint or version was known."""
        self.metrics.refused(status)


def _logged_inputs(served: ServedVersion, item: Any) -> Any:
    """The input as the prediction log takes it: named columns for a columns signature.

    The fast path's array is handed over with its column names (``NamedColumns``), which the log
    concatenates across many requests at once; other inputs are passed as enforced.
    """
    codec = served.codec
    if codec is not None and isinstance(item, np.ndarray):
        return NamedColumns(tuple(codec.names), item)
    return item
