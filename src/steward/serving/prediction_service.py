"""``PredictionService``: the prediction log and late labels of one platform, for the SDK and the API.

Labels are data, not a change of state of a governed object, so they do not each leave an audit entry:
each call of :meth:`PredictionService.log_labels` leaves one (``predictions.label``) with the endpoint
and the number of labels, after they are written. Reads are scoped to the acting project (in the API:
the request's), so one project never reads another's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.governance import audit
from steward.serving import labels as label_store
from steward.serving.log_store import ANY_ENDPOINT, LogStore, read_predictions

if TYPE_CHECKING:
    import pyarrow as pa

    from steward.store.platform import Platform


class PredictionService:
    """Logged predictions and their labels on a platform's artifact root.

    Args:
        platform: The platform: its settings name the artifact root, its acting identity the project.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._store: LogStore | None = None

    @property
    def store(self) -> LogStore:
        """The log's tree on the artifact root, opened on first use."""
        if self._store is None:
            self._store = LogStore.from_settings(self.platform.settings)
        return self._store

    def log_labels(
        self,
        request_ids: Sequence[str],
        labels: Sequence[Any],
        *,
        rows: Sequence[int] | None = None,
        endpoint: str | None = None,
        project: str | None = None,
    ) -> int:
        """Record ground truth for logged requests (one audit entry per call).

        Args:
            request_ids: The labelled requests' ids.
            labels: One scalar label per request id.
            rows: The input row of each request each label is for (0 by default).
            endpoint: The endpoint the requests went to; None: any endpoint of the project.
            project: The project (embedded use); the acting project by default. The API never passes it.

        Returns:
            How many labels were recorded.

        Raises:
            InvalidInput: For bad input, naming the field; nothing is written.
            ServiceUnavailable: If the storage fails.
        """
        project = project if project is not None else self.platform.project
        count = label_store.log_labels(
            self.store, request_ids, labels, rows=rows, endpoint=endpoint, project=project
        )
        with self.platform.metadata.transaction() as conn:
            audit.append(
                conn,
                actor=self.platform.actor,
                action="predictions.label",
                resource_kind="endpoint",
                resource_id=endpoint or ANY_ENDPOINT,
                details={"count": count},
                checkpoint=audit.checkpointer_for(self.platform.settings),
                project=project,
                request_id=self.platform.request_id,
            )
        return count

    def read_predictions(
        self,
        endpoint: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = None,
        project: str | None = None,
    ) -> pa.Table:
        """The endpoint's logged predictions (see ``log_store.read_predictions``), in ``project`` (embedded
        use), else the acting project."""
        project = project if project is not None else self.platform.project
        return read_predictions(self.store, endpoint, since, until, project=project, limit=limit)

    def labelled_predictions(
        self, endpoint: str, since: datetime | None = None, until: datetime | None = None
    ) -> pa.Table:
        """Labelled predictions in the acting project (see ``labels.labelled_predictions``)."""
        return label_store.labelled_predictions(
            self.store, endpoint, since, until, project=self.platform.project
        )

    def outcomes_by_version(
        self, endpoint: str, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, label_store.Outcome]:
        """Outcomes per version in the acting project (see ``labels.outcomes_by_version``)."""
        return label_store.outcomes_by_version(
            self.store, endpoint, since, until, project=self.platform.project
        )
