"""Tables on the wire: an Arrow table as the pieces of an Arrow IPC stream, written one record batch at
a time, so a large training set leaves the server (or a client's entity rows leave it) as it is made."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
BATCH_ROWS = 65_536


def ipc_chunks(table: pa.Table, rows: int = BATCH_ROWS) -> Iterator[bytes]:
    """Yield ``table`` as an Arrow IPC stream: the schema, then one piece per batch of at most ``rows``."""
    sink = io.BytesIO()

    def take() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    with pa.ipc.new_stream(sink, table.schema) as writer:
        yield take()
        for batch in table.to_batches(max_chunksize=rows):
            writer.write_batch(batch)
            yield take()
    yield take()
