"""What every connector gives the ingestion service: ``Batch`` and the ``Connector`` protocol.

A connector reads one source (files, a SQL query, an HTTP API, a Redis stream) and yields Arrow tables.
It never validates or stores anything: the data service does that, then calls ``Batch.commit`` so that
a source with delivery state (a stream) can acknowledge the batch. Errors speak ``steward.errors``:
``InvalidInput`` for a malformed source (naming the file, line, page or column), ``NotFound`` for a
missing file, ``ServiceUnavailable`` for a database, API or server that cannot be reached.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from steward.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa


def _no_commit() -> None:
    """The commit of a source without delivery state: nothing to acknowledge."""


@dataclass(frozen=True)
class Batch:
    """One Arrow table read from a source, with where it came from and how to acknowledge it.

    Attributes:
        table: The rows, read completely (never a partial table from a broken source).
        source: A JSON-ready description for lineage, e.g. ``{"kind": "file", "url": …, "format": …}``,
            ``{"kind": "sql", "url": <password masked>, "query": …}``, ``{"kind": "http", "url": …,
            "pages": n}`` or ``{"kind": "redis_stream", "stream": …, "group": …, "first_id": …,
            "last_id": …}``.
        commit: Called by the service once the batch is published (or quarantined). Streams acknowledge
            the entries and advance their checkpoint here; calling it twice is harmless.
    """

    table: pa.Table
    source: Mapping[str, Any]
    commit: Callable[[], None] = _no_commit


@runtime_checkable
class Connector(Protocol):
    """Anything that yields ``Batch`` objects; pass one to ``steward.ingest`` for a custom source.

    ``batches`` is a generator: it reads lazily, raises ``steward.errors`` (never a driver's own
    exception), and may be called again to read again. An implementation in full:

    >>> import pyarrow as pa
    >>> class Numbers:
    ...     def __init__(self, n: int) -> None:
    ...         self.n = n
    ...
    ...     def batches(self) -> Iterator[Batch]:
    ...         table = pa.table({"x": list(range(self.n))})
    ...         yield Batch(table, {"kind": "numbers", "n": self.n})
    >>> [b.table.num_rows for b in Numbers(3).batches()]
    [3]
    >>> isinstance(Numbers(3), Connector)
    True
    """

    def batches(self) -> Iterator[Batch]:
        """Yield the source's data as one or more batches.

        Raises:
            InvalidInput: The source is malformed.
            NotFound: The source does not exist.
            ServiceUnavailable: The backing service cannot be reached.
        """
        ...


def construct(factory: Callable[..., Any], kind: str, kwargs: Mapping[str, Any]) -> Any:
    """Call ``factory(**kwargs)``, turning an unknown or missing option into ``InvalidInput``.

    Args:
        factory: A connector class.
        kind: The source kind, for the message (``"sql"``, ``"http"`` …).
        kwargs: The options given.

    Returns:
        The connector.

    Raises:
        InvalidInput: An option the connector does not take, or a required one missing.
    """
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        accepted = ", ".join(name for name in parameters if name not in ("self",))
        raise InvalidInput(
            f"unknown option(s) {', '.join(unknown)} for a {kind} source; accepted: {accepted}",
            {"field": "source", "options": unknown},
        )
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in kwargs
    ]
    if missing:
        raise InvalidInput(
            f"a {kind} source needs {', '.join(missing)}", {"field": "source", "options": missing}
        )
    return factory(**kwargs)


def missing_extra(module: str, extra: str, exc: Exception) -> InvalidInput:
    """Return the error for an optional dependency that is not installed.

    Args:
        module: The import that failed (``"redis"``).
        extra: The package extra that installs it (``"redis"``).
        exc: The import's failure.
    """
    return InvalidInput(
        f"{module} is not installed ({exc}): pip install 'steward-ml[{extra}]'",
        {"field": "source", "extra": extra},
    )
