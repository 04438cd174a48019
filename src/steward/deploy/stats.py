"""What rollouts are judged by, read from the serving layer: window statistics and labelled outcomes.

The only place deploy reads them: ``windows`` sums the ``serving_windows`` rows the servers wrote (per
version, since a moment), and ``outcomes`` asks the prediction log for the accuracy and label means per
version of the requests whose ground truth has arrived (none until labels are logged).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.serving.models import WindowStats
from steward.serving.stats import read_windows

if TYPE_CHECKING:
    from steward.store.platform import Platform


def windows(
    platform: Platform, project: str, endpoint: str, since_ms: int, until_ms: int | None = None
) -> dict[str, WindowStats]:
    """The statistics of each version of ``endpoint`` over the windows that began at or after
    ``since_ms`` (and before ``until_ms``), summed over every worker (``serving.stats.read_windows``).

    A window that began before ``since_ms`` is left out whole: it may hold traffic routed by an older plan.
    """
    return read_windows(platform.metadata, project, endpoint, since_ms, until_ms)


def outcomes(
    platform: Platform, project: str, endpoint: str, since: datetime, until: datetime | None = None
) -> dict[str, Mapping[str, Any]]:
    """Labelled outcomes per version of ``endpoint``'s requests between ``since`` and ``until``:
    ``{"predictions", "n", "correct", "accuracy", "label_mean", "label_var"}`` each (see
    ``serving.labels.outcomes_by_version``; ``n`` is 0 while no labels have arrived)."""
    # Imported here: the prediction log pulls in pyarrow and DuckDB, which plan reads need not.
    from steward.serving.labels import outcomes_by_version

    found = outcomes_by_version(platform, endpoint, since, until, project=project)
    return {str(k): dict(v) for k, v in found.items()}
