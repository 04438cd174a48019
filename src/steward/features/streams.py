"""Feed a stream-sourced view's online values from its Redis stream, micro-batch by micro-batch.

Each batch is acknowledged (and checkpointed) only once ``push`` stored it, so a crash re-delivers it,
and pushing it again changes nothing (the later event time wins). The consumer is named after the view,
so an embedded store and a remote client pick up what the other left pending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from steward.errors import InvalidInput
from steward.features.models import StreamSource, resolve_url
from steward.features.resolve import Selection
from steward.features.rows import stream_rows

if TYPE_CHECKING:
    import pyarrow as pa


def consume(
    selection: Selection,
    push: Callable[[str, pa.Table], int],
    *,
    max_batches: int | None = None,
    block_ms: int = 0,
) -> int:
    """Push what the view's stream holds through ``push(view, rows)``; return the rows pushed.

    Raises:
        InvalidInput: The view is not fed by a stream, or an entry does not fit the view.
        ServiceUnavailable: The stream's Redis cannot be reached.
    """
    from steward.data.connectors.redis_stream import RedisStreamConnector

    view = selection.view
    source = view.source
    if not isinstance(source, StreamSource):
        raise InvalidInput(f"feature view {view.name!r} is not fed by a stream", {"field": "view"})
    connector = RedisStreamConnector(
        resolve_url(source.url), source.stream, source.group, consumer=f"steward-{view.name}",
        block_ms=block_ms, max_batches=max_batches, id_column=None,
    )  # fmt: skip
    pushed = 0
    for batch in connector.batches():
        if batch.table.num_rows:
            push(view.name, stream_rows(selection, batch.table))
            pushed += batch.table.num_rows
        batch.commit()
    return pushed
