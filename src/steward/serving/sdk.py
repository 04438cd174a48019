"""The prediction-log half of the SDK: ``steward.log_labels`` and ``steward.read_predictions``.

Embedded, they read and write the platform's artifact root directly (``PredictionService``); remote
(``STEWARD_URI``), they go through the server's ``/api/v1/predictions`` routes, which check
``serving:label`` and ``deploy:read`` in the request's project.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from steward.errors import StewardError

if TYPE_CHECKING:  # pyarrow is imported when the log is first read, not with steward
    import pyarrow as pa


class PredictionsBackend(Protocol):
    """What the SDK calls, embedded (``PredictionService``) or remote (``RemotePredictionService``).

    Example:
        >>> class NoLog:
        ...     def log_labels(self, request_ids, labels, *, rows=None, endpoint=None, project=None):
        ...         return len(request_ids)
        ...     def read_predictions(self, endpoint, since=None, until=None, *, limit=None, project=None):
        ...         raise NotImplementedError
        >>> backend: PredictionsBackend = NoLog()
        >>> backend.log_labels(["r1"], [1])
        1
    """

    def log_labels(
        self,
        request_ids: Sequence[str],
        labels: Sequence[Any],
        *,
        rows: Sequence[int] | None = None,
        endpoint: str | None = None,
        project: str | None = None,
    ) -> int:
        """Record labels; return how many."""
        ...

    def read_predictions(
        self,
        endpoint: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = None,
        project: str | None = None,
    ) -> pa.Table:
        """Read logged predictions."""
        ...


PredictionsResolver = Callable[[], PredictionsBackend]
_resolver: PredictionsResolver | None = None

__all__ = ["log_labels", "read_predictions"]


def set_predictions_resolver(resolver: PredictionsResolver) -> None:
    """Install the function that returns the prediction-log backend in use."""
    global _resolver
    _resolver = resolver


def _backend() -> PredictionsBackend:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


def log_labels(
    request_ids: Sequence[str],
    labels: Sequence[Any],
    *,
    endpoint: str | None = None,
    rows: Sequence[int] | None = None,
    project: str | None = None,
) -> int:
    """Record ground truth for served predictions, joined to them later by request id.

    Labels may arrive before their predictions are written (they are kept and joined once they are);
    labelling a request again replaces its label. One audit entry records each call and its count.

    Args:
        request_ids: The ids of the answered requests (each answer's ``X-Request-Id``).
        labels: One label per request id: numbers, booleans or strings (not strings mixed with numbers).
        endpoint: The endpoint the requests went to; None joins them to any endpoint of the project.
        rows: For requests of several rows: the row of each label (0 by default).
        project: The project; the connection's by default.

    Returns:
        How many labels were recorded.

    Raises:
        InvalidInput: For lengths that differ, no or empty ids, or labels that are not finite scalars,
            naming the field; nothing is recorded.
        Forbidden: In remote mode, without the ``serving:label`` permission.

    Example:
        >>> steward.log_labels(["req-1", "req-2"], [1, 0], endpoint="churn")  # doctest: +SKIP
        2
    """
    return _backend().log_labels(request_ids, labels, rows=rows, endpoint=endpoint, project=project)


def read_predictions(
    endpoint: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    limit: int | None = None,
    project: str | None = None,
) -> pa.Table:
    """Read an endpoint's logged predictions, oldest first, as an Arrow table.

    Args:
        endpoint: The endpoint.
        since: From this time (inclusive; naive times are UTC).
        until: Up to this time (exclusive).
        limit: At most this many rows (in remote mode the server caps it at its row limit).
        project: The project; the connection's by default.

    Returns:
        One row per input row of each logged request: ``request_id``, ``row``, ``at``, ``endpoint``,
        ``model``, ``version``, ``role``, ``latency_ms``, ``status``, then ``in.*`` and ``out.*``.

    Raises:
        InvalidInput: For a bad endpoint name, window or limit.
        Forbidden: In remote mode, without the ``deploy:read`` permission.
    """
    return _backend().read_predictions(endpoint, since, until, limit=limit, project=project)
