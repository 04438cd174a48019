"""``RemotePredictionService``: ``steward.log_labels`` and ``read_predictions`` over a server's REST API.

The same signatures, results and errors as the embedded ``PredictionService``: labels are checked here
first with the same function (so a bad list is refused before anything is sent, with the same message),
and predictions come back as Parquet, so their column types survive the trip.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.client.http import HttpClient, segment
from steward.core.names import validate_name
from steward.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

MAX_ROWS = 100_000
"""The most rows the server returns for one read (``steward.api.predictions.MAX_ROWS``)."""


class RemotePredictionService:
    """The prediction log over HTTP: what ``steward.connect("http://…")`` uses.

    Args:
        http: The client of the server; shared, and closed by its owner.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def log_labels(
        self,
        request_ids: Sequence[str],
        labels: Sequence[Any],
        *,
        rows: Sequence[int] | None = None,
        endpoint: str | None = None,
        project: str | None = None,
    ) -> int:
        """Record labels on the server (``serving:label``); return how many.

        Raises:
            InvalidInput: For bad input, naming the field (nothing is sent).
            Forbidden: Without the permission in the project.
        """
        from steward.serving.labels import label_table

        if endpoint is not None:
            validate_name(endpoint, "endpoint")
        table = label_table(request_ids, labels, rows)  # refuses what the server would, with its words
        body = {
            "request_ids": table.column("request_id").to_pylist(),
            "labels": table.column("label").to_pylist(),
            "rows": table.column("row").to_pylist(),
            "endpoint": endpoint,
        }
        response = self.http.request("POST", "/predictions/labels", json=body, headers=_project(project))
        return int(response.json()["count"])

    def read_predictions(
        self,
        endpoint: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = None,
        project: str | None = None,
    ) -> pa.Table:
        """Read logged predictions from the server (``data:read_pii``), at most :data:`MAX_ROWS` rows.

        Raises:
            InvalidInput: For a bad name, window or limit.
            Forbidden: Without the permission in the project.
        """
        import pyarrow.parquet as pq

        validate_name(endpoint, "endpoint")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInput(f"limit must be a non-negative integer, not {limit!r}", {"field": "limit"})
        params: dict[str, Any] = {"format": "parquet", "limit": min(limit or MAX_ROWS, MAX_ROWS)}
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                if not isinstance(value, datetime):
                    raise InvalidInput(
                        f"{name} must be a datetime, not {type(value).__name__}", {"field": name}
                    )
                params[name] = value.isoformat()
        response = self.http.request(
            "GET", f"/predictions/{segment(endpoint)}", params=params, headers=_project(project)
        )
        table = pq.read_table(io.BytesIO(response.content))
        if limit is None and response.headers.get("X-Steward-Truncated") == "true":
            logger.warning(
                "read_predictions: the server returned its first %d rows only; read a shorter window",
                table.num_rows,
            )
        return table.slice(0, 0) if limit == 0 else table


def _project(project: str | None) -> dict[str, str] | None:
    return {"X-Steward-Project": validate_name(project, "project")} if project is not None else None
