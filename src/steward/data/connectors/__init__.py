"""Connectors: read a source into Arrow ``Batch`` objects for the data service.

==================================================  ======================================================
source                                              connector
==================================================  ======================================================
``"data.csv"``, ``"s3://b/k.parquet"``, ``"*.jsonl"``  ``FileConnector`` (CSV, Parquet, JSON lines; fsspec)
``{"sql": "select …", "url": "postgresql://…"}``    ``SqlConnector`` (SQLAlchemy, streamed)
``{"http": "https://…", "records_path": …}``        ``HttpConnector`` (httpx, paginated, retried)
``{"redis_stream": "name", "url": …, "group": …}``  ``RedisStreamConnector`` (consumer group, micro-batches)
any object with ``batches()``                       itself (see ``Connector``)
==================================================  ======================================================

``connector_for`` picks one. Optional dependencies (redis, s3fs) are imported only by the connector
that needs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from steward.data.connectors.base import Batch, Connector, construct
from steward.data.connectors.files import FileConnector
from steward.data.connectors.http import HttpConnector
from steward.data.connectors.redis_stream import RedisStreamConnector
from steward.data.connectors.sql import SqlConnector
from steward.errors import InvalidInput

__all__ = [
    "Batch",
    "Connector",
    "FileConnector",
    "HttpConnector",
    "RedisStreamConnector",
    "SqlConnector",
    "connector_for",
]

# The key that names a mapping source's kind, the connector, and the parameter the key's value fills.
_KINDS: dict[str, tuple[type[Any], str]] = {
    "file": (FileConnector, "url"),
    "sql": (SqlConnector, "query"),
    "http": (HttpConnector, "url"),
    "redis_stream": (RedisStreamConnector, "stream"),
}


def connector_for(
    source: str | os.PathLike[str] | Mapping[str, Any] | Connector, **options: Any
) -> Connector:
    """Return the connector that reads ``source``.

    Args:
        source: A path (``str`` or ``pathlib.Path``), URL or glob of files (``"data.csv"``,
            ``"s3://bucket/key.parquet"``, ``"logs/*.jsonl"``); a mapping with one kind key
            (``{"sql": query, "url": db_url}``, ``{"http": url, …}``, ``{"redis_stream": name, "url": …,
            "group": …}``, ``{"file": url}``) whose other keys are the connector's options; or a
            ``Connector``, returned as is.
        **options: More options for the connector (they win over the mapping's keys), e.g.
            ``format=``, ``columns=``, ``endpoint_url=`` for files.

    Returns:
        A connector whose ``batches()`` reads the source.

    Raises:
        InvalidInput: For a source of no known kind, or an option the connector does not take.
    """
    connector: Connector
    if isinstance(source, str | os.PathLike):
        connector = construct(FileConnector, "file", {"url": source, **options})
        return connector
    if isinstance(source, Mapping):
        kinds = [key for key in _KINDS if key in source]
        if len(kinds) != 1:
            raise InvalidInput(
                f"a source mapping needs exactly one of the keys {', '.join(_KINDS)}; got {sorted(source)}",
                {"field": "source"},
            )
        factory, first = _KINDS[kinds[0]]
        kwargs = {key: value for key, value in source.items() if key != kinds[0]}
        connector = construct(factory, kinds[0], {first: source[kinds[0]], **kwargs, **options})
        return connector
    if isinstance(source, Connector):
        if options:
            raise InvalidInput(
                f"options {sorted(options)} cannot apply to a connector object; set them on it",
                {"field": "source"},
            )
        return source
    raise InvalidInput(
        f"cannot read a source of type {type(source).__name__}: pass a path or URL, a mapping "
        "such as {'sql': ..., 'url': ...}, or an object with a batches() method",
        {"field": "source"},
    )
