"""Quarantine: batches that failed their checks, held whole with their report until released or dropped.

The operations behind ``DataService.list_quarantine``, ``get_quarantined``, ``release`` and ``drop``
(and the ``hold`` that ingestion calls), kept apart from the service so that each module holds one
concept. Nothing is silently dropped: the same failing content arriving again is held once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from steward.core.ids import new_id
from steward.core.time import now_ms
from steward.data import repository as repo
from steward.data.models import DatasetVersion, QuarantinedBatch, QuarantineStatus
from steward.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from steward.data.service import DataService


def hold(
    service: DataService, dataset: str, table: pa.Table, source: Mapping[str, Any], report: Mapping[str, Any]
) -> QuarantinedBatch:
    row = service.dataset_row(dataset)
    stored = service.store_parquet(table)
    batch_id = new_id()
    with service.metadata.transaction() as conn:
        repo.lock_dataset(conn, row.id)
        same = repo.held_batch_with_content(conn, row.id, stored.digest)
        if same is not None:  # the same bad batch again (a redelivery): keep one copy
            batch_id = same.id
        else:
            service.record(
                conn, "dataset.quarantine", "quarantined_batch", batch_id,
                after_digest=stored.digest, details={"dataset": dataset, "rows": table.num_rows},
            )  # fmt: skip
            repo.insert_quarantine(
                conn,
                {
                    "id": batch_id,
                    "dataset_id": row.id,
                    "status": QuarantineStatus.HELD.value,
                    "rows": table.num_rows,
                    "files": json.dumps([stored.to_json()]),
                    "source": json.dumps(dict(source), default=str),
                    "report": json.dumps(dict(report), default=str),
                    "created_at": now_ms(),
                    "created_by": service.platform.actor,
                },
            )
    return get_quarantined(service, batch_id)


def list_quarantine(
    service: DataService,
    dataset: str | None = None,
    status: QuarantineStatus | str | None = QuarantineStatus.HELD,
) -> list[QuarantinedBatch]:
    """Return quarantined batches (HELD ones by default; ``status=None`` for all), oldest first."""
    dataset_id = service.dataset_row(dataset).id if dataset is not None else None
    try:
        wanted = QuarantineStatus(status) if status is not None else None
    except ValueError:
        known = ", ".join(s.value for s in QuarantineStatus)
        raise InvalidInput(f"unknown status {status!r}: use {known}", {"field": "status"}) from None
    with service.metadata.read() as conn:
        return [
            repo.to_quarantined(r)
            for r in repo.quarantine_rows(conn, service.platform.project, dataset_id, wanted)
        ]


def get_quarantined(service: DataService, batch_id: str) -> QuarantinedBatch:
    """Return one quarantined batch with its report.

    Raises:
        NotFound: If there is none with that id.
    """
    with service.metadata.read() as conn:
        row = repo.quarantine_row(conn, service.platform.project, batch_id)
    if row is None:
        raise NotFound(f"quarantined batch {batch_id!r} not found", {"field": "batch"})
    return repo.to_quarantined(row)


def release(service: DataService, batch_id: str, reason: str = "") -> DatasetVersion:
    """Publish a HELD batch as it is, despite its failed checks, recording who released it and why.

    Raises:
        Conflict: If it was already released or dropped.
    """
    batch = get_quarantined(service, batch_id)
    if batch.status is not QuarantineStatus.HELD:
        raise Conflict(f"batch {batch_id} is {batch.status.value}, not HELD", {"field": "batch"})
    table = pa.concat_tables(
        [pq.read_table(pa.BufferReader(service.platform.blobs.get_bytes(f.digest))) for f in batch.files]
    )
    source = {
        "kind": "quarantine",
        "batch": batch.id,
        "released_because": reason,
        "original": batch.source,
    }
    version, _ = service.publish(batch.dataset, table, source)
    resolve(service, batch_id, QuarantineStatus.RELEASED, f"released as {version.ref}: {reason}".rstrip(": "))
    return version


def drop(service: DataService, batch_id: str, reason: str = "") -> QuarantinedBatch:
    """Mark a HELD batch dropped (its data is not published), recording who and why.

    Raises:
        Conflict: If it was already released or dropped.
    """
    get_quarantined(service, batch_id)
    resolve(service, batch_id, QuarantineStatus.DROPPED, reason)
    return get_quarantined(service, batch_id)


def resolve(service: DataService, batch_id: str, status: QuarantineStatus, resolution: str) -> None:
    with service.metadata.transaction() as conn:
        done = repo.resolve_quarantine(conn, batch_id, status, now_ms(), service.platform.actor, resolution)
        if done:
            action = "quarantine.release" if status is QuarantineStatus.RELEASED else "quarantine.drop"
            service.record(conn, action, "quarantined_batch", batch_id, details={"resolution": resolution})
    if not done:
        current = get_quarantined(service, batch_id)
        raise Conflict(f"batch {batch_id} is {current.status.value}, not HELD", {"field": "batch"})
