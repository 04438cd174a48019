"""Prediction-log routes: record late labels, read logged predictions, under ``/api/v1``.

=======  ======================================================  ===================  ==================
Method   Path                                                    Permission           Answer
=======  ======================================================  ===================  ==================
POST     ``/predictions/labels`` ``{request_ids, labels, …}``    ``serving:label``    201 ``{count, …}``
GET      ``/predictions/{endpoint}?since=&until=&limit=``        ``data:read_pii``    rows as JSON
GET      ``/predictions/{endpoint}?…&format=parquet``            ``data:read_pii``    the rows as Parquet
=======  ======================================================  ===================  ==================

Both act in the request's project (``X-Steward-Project``): a project's labels and predictions are never
seen from another. A read returns at most ``limit`` rows (``MAX_ROWS`` at most), oldest first; the JSON
answer says whether more were left out (``truncated``), the Parquet one in ``X-Steward-Truncated``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Final, Literal, cast

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from steward.api.auth import requires
from steward.api.deps import API_PREFIX
from steward.api.responses import OrjsonResponse
from steward.serving.log_store import ANY_ENDPOINT
from steward.serving.prediction_service import PredictionService

router = APIRouter(prefix=API_PREFIX, tags=["predictions"])

DEFAULT_ROWS: Final = 1000
"""Rows a read returns unless it asks for another ``limit``."""
MAX_ROWS: Final = 100_000
"""The most rows one read returns."""
PARQUET_TYPE: Final = "application/vnd.apache.parquet"
TRUNCATED_HEADER: Final = "X-Steward-Truncated"


async def get_predictions(request: Request) -> PredictionService:
    """Return the app's ``PredictionService`` (made on first use, on the app's platform)."""
    state = request.app.state
    service = getattr(state, "predictions", None)
    if service is None:
        service = state.predictions = PredictionService(state.platform)
    return cast(PredictionService, service)


Predictions = Annotated[PredictionService, Depends(get_predictions)]


class LabelsIn(BaseModel):
    """Body of ``POST /predictions/labels``.

    The lists stay loosely typed so that the service refuses bad values with the same messages (naming
    ``request_ids``, ``labels`` or ``rows``) as in embedded mode.
    """

    model_config = ConfigDict(extra="forbid")

    request_ids: list[Any]
    labels: list[Any]
    rows: list[Any] | None = None
    endpoint: str | None = None


@router.post(
    "/predictions/labels",
    dependencies=[requires("serving:label")],
    status_code=201,
    summary="Record ground-truth labels for served requests",
)
def log_labels(body: LabelsIn, predictions: Predictions) -> OrjsonResponse:
    """Append labels; answer ``{"count", "endpoint", "project"}``."""
    count = predictions.log_labels(body.request_ids, body.labels, rows=body.rows, endpoint=body.endpoint)
    content = {
        "count": count,
        "endpoint": body.endpoint or ANY_ENDPOINT,
        "project": predictions.platform.project,
    }
    return OrjsonResponse(content, status_code=201)


@router.get(
    "/predictions/{endpoint}",
    dependencies=[requires("data:read_pii")],
    summary="Read an endpoint's logged predictions",
    responses={200: {"content": {"application/json": {}, PARQUET_TYPE: {}}}},
)
def read_predictions(
    endpoint: str,
    predictions: Predictions,
    since: Annotated[datetime | None, Query(description="from (ISO 8601, inclusive; UTC if naive)")] = None,
    until: Annotated[datetime | None, Query(description="to (ISO 8601, exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="at most this many rows")] = DEFAULT_ROWS,
    format: Annotated[Literal["json", "parquet"], Query(description="``json`` or ``parquet``")] = "json",
) -> Response:
    """Answer ``{"endpoint", "project", "rows": [...], "count", "truncated"}``, or the rows as Parquet."""
    table = predictions.read_predictions(endpoint, since, until, limit=limit + 1)
    truncated = table.num_rows > limit
    table = table.slice(0, limit)
    if format == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        headers = {TRUNCATED_HEADER: "true" if truncated else "false"}
        return Response(sink.getvalue().to_pybytes(), media_type=PARQUET_TYPE, headers=headers)
    content = {
        "endpoint": endpoint,
        "project": predictions.platform.project,
        "rows": _json_rows(table),
        "count": table.num_rows,
        "truncated": truncated,
    }
    return OrjsonResponse(content)


def _json_rows(table: pa.Table) -> list[dict[str, Any]]:
    # Binary columns have no JSON form: base64 text. Times go out as ISO 8601 (orjson's datetimes).
    for i, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            values = [
                None if v is None else base64.b64encode(v).decode() for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, field.name, pa.array(values, pa.string()))
    return cast(list[dict[str, Any]], table.to_pylist())
