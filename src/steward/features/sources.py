"""Where a view's rows are read from: the Parquet files of a dataset version (scanned in place when
the blob store keeps them as local files in the clear, else staged into a temporary folder, decrypted
and verified), or the result of a SQL query.

``staged_inputs`` is a context manager: staged copies live only while the read runs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from steward.errors import IntegrityError, InvalidInput
from steward.features.models import (
    DatasetSource,
    FeatureView,
    SqlSource,
    StreamSource,
    ViewInput,
    resolve_url,
)
from steward.features.resolve import Selection

if TYPE_CHECKING:
    import pyarrow as pa

    from steward.data.models import DatasetVersion
    from steward.data.service import DataService

_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()
_HASH_CHUNK = 8 * 1024 * 1024


def dataset_source(view: FeatureView) -> DatasetSource:
    """The dataset a view's offline rows come from (a stream's history).

    Raises:
        InvalidInput: If the view is stream-only (no history dataset) or its source is SQL.
    """
    source = view.source
    if isinstance(source, StreamSource):
        if source.history is None:
            message = (
                f"feature view {view.name!r} is fed by stream {source.stream!r} and has no history dataset"
            )
            raise InvalidInput(message, {"field": "source", "view": view.name})
        return source.history
    if isinstance(source, DatasetSource):
        return source
    raise InvalidInput(f"feature view {view.name!r} reads a SQL query, not a dataset", {"field": "source"})


def source_version(data: DataService, view: FeatureView) -> DatasetVersion:
    """The dataset version a view reads now: its pinned version, or the dataset's latest."""
    source = dataset_source(view)
    return data.get_version(source.dataset, source.version)


@contextmanager
def staged_inputs(
    data: DataService, selections: Sequence[Selection], *, columns_for: str = "selected"
) -> Iterator[tuple[list[ViewInput], list[DatasetVersion]]]:
    """Yield one ``ViewInput`` per selection, and the dataset versions read.

    Reading a dataset version goes through the data layer's checks first (``data:read_pii`` for
    PII-tagged columns, audited). Args ``columns_for``: ``selected`` checks the selected features'
    columns, ``all`` every feature of the view.
    """
    with ExitStack() as stack:
        inputs: list[ViewInput] = []
        versions: list[DatasetVersion] = []
        staging: list[str] = []

        def folder() -> str:
            if not staging:
                staging.append(stack.enter_context(tempfile.TemporaryDirectory(prefix="steward-features-")))
            return staging[0]

        for sel in selections:
            view = sel.view
            features = sel.features if columns_for == "selected" else tuple(f.name for f in view.features)
            if isinstance(view.source, SqlSource):
                inputs.append(ViewInput(view, sel.join_keys, features, table=run_query(view.source)))
                continue
            version = source_version(data, view)
            data.authorise_read(version, [*sel.join_keys, view.timestamp, *features])
            versions.append(version)
            inputs.append(
                ViewInput(view, sel.join_keys, features, parquet=tuple(_paths(data, version, folder)))
            )
        yield inputs, versions


def _paths(data: DataService, version: DatasetVersion, folder: Any) -> Iterator[str]:
    blobs = data.platform.blobs
    for i, stored in enumerate(version.files):
        local = blobs.plain_local_file(stored.digest)
        if local is not None:
            yield _checked_in_place(local, stored.digest)
        else:
            target = os.path.join(folder(), f"{version.id}-{i}.parquet")
            blobs.download(stored.digest, target)
            yield target


def _checked_in_place(path: str, digest: str) -> str:
    """Hash a blob file scanned in place once per process (and again whenever it changes on disk)."""
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        if _verified.get(key) == digest:
            return path
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            sha.update(chunk)
    if sha.hexdigest() != digest:
        raise IntegrityError(
            f"blob {digest} is corrupt: its stored bytes hash to {sha.hexdigest()}", {"digest": digest}
        )
    with _verified_lock:
        _verified[key] = digest
    return path


def run_query(source: SqlSource) -> pa.Table:
    """The rows of a SQL source, as one Arrow table."""
    import pyarrow as pa

    from steward.data.connectors.sql import SqlConnector

    tables = [batch.table for batch in SqlConnector(resolve_url(source.url), source.query).batches()]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
