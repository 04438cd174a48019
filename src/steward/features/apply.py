"""``apply``'s checks: every definition against the others and the stored ones, and every view
against its source's schema (the columns it names exist, with types its features can take), before
anything is stored. Also what the data layer says of a view's source (region, PII tags)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from steward.core.time import from_ms
from steward.errors import InvalidInput, NotFound
from steward.features.models import (
    Definition,
    FeatureService,
    FeatureView,
    SqlSource,
    StoredDefinition,
    StreamSource,
)
from steward.features.resolve import Lookup, join_keys_of, view_of
from steward.features.sources import dataset_source
from steward.features.specs import kind_of, parse_ref

if TYPE_CHECKING:
    from steward.data.service import DataService

_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "float64": ("double", "float", "halffloat", "int8", "int16", "int32", "uint8", "uint16", "uint32"),
    "float32": ("float", "halffloat", "int8", "int16", "uint8", "uint16"),
    "int64": ("int64", "int32", "int16", "int8", "uint32", "uint16", "uint8"),
    "int32": ("int32", "int16", "int8", "uint16", "uint8"),
    "bool": ("bool",),
    "string": ("string", "large_string"),
}


def spec_digest(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a spec's canonical JSON: the same definition has the same digest."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def overlay(stored: Lookup, batch: Sequence[Definition]) -> Lookup:
    """A lookup that sees ``batch`` over what is stored (what the store will hold after ``apply``)."""
    pending = {(kind_of(d), d.name): d for d in batch}

    def lookup(kind: str, name: str) -> StoredDefinition | None:
        found = pending.get((kind, name))
        if found is None:
            return stored(kind, name)
        return StoredDefinition(kind, name, 0, found.to_spec(), "", {}, from_ms(0), "")

    return lookup


def check_references(lookup: Lookup, batch: Sequence[Definition]) -> None:
    """Check that each view's entities and each service's features exist.

    Raises:
        NotFound: Naming the missing entity, view or feature.
        InvalidInput: For a view whose features shadow its keys or timestamps.
    """
    for item in batch:
        if isinstance(item, FeatureView):
            keys = join_keys_of(lookup, item)
            reserved = {*keys, item.timestamp, item.created_timestamp}
            clash = next((f.name for f in item.features if f.name in reserved), None)
            if clash:
                message = f"feature view {item.name!r}: feature {clash!r} is also a key or timestamp column"
                raise InvalidInput(message, {"field": "features", "feature": clash})
        elif isinstance(item, FeatureService):
            for ref in item.features:
                view_name, feature = parse_ref(ref)
                view = view_of(lookup, view_name)
                if feature is not None and view.feature(feature) is None:
                    message = f"feature service {item.name!r}: view {view_name!r} has no feature {feature!r}"
                    raise NotFound(message, {"field": "features", "feature": ref})


def check_source(data: DataService, lookup: Lookup, view: FeatureView) -> dict[str, Any]:
    """Check a view against its dataset's latest (or pinned) version; return what is derived of it.

    A SQL source is checked when it is read (running a query at apply time could be costly).

    Returns:
        ``{"region", "pii": {feature: [tags]}, "dataset_version", "dataset"}`` for a dataset source,
        ``{"source": "sql"}`` for a SQL one.

    Raises:
        NotFound: If the dataset does not exist.
        InvalidInput: For a missing column or a type the feature cannot take, naming it.
    """
    if isinstance(view.source, SqlSource):
        return {"source": "sql"}
    if isinstance(view.source, StreamSource) and view.source.history is None:
        return {"source": "stream"}  # online only: its rows arrive by the stream
    source = dataset_source(view)
    try:
        version = data.get_version(source.dataset, source.version)
    except NotFound as exc:
        message = f"feature view {view.name!r}: {exc.message}"
        raise NotFound(message, {"field": "source", "dataset": source.dataset}) from None
    types = {str(c["name"]): str(c["type"]) for c in version.arrow_schema}
    for column in [
        *join_keys_of(lookup, view),
        view.timestamp,
        *([view.created_timestamp] if view.created_timestamp else []),
    ]:
        if column not in types:
            message = f"feature view {view.name!r}: {version.ref} has no column {column!r}"
            raise InvalidInput(message, {"field": "source", "column": column})
    for feature in view.features:
        actual = types.get(feature.name)
        if actual is None:
            message = f"feature view {view.name!r}: {version.ref} has no column for feature {feature.name!r}"
            raise InvalidInput(message, {"field": "features", "feature": feature.name})
        if not compatible(feature.dtype, actual):
            message = (
                f"feature view {view.name!r}: feature {feature.name!r} is declared {feature.dtype} "
                f"but {version.ref} holds {actual}"
            )
            raise InvalidInput(message, {"field": "dtype", "feature": feature.name, "actual": actual})
    tags = version.pii_tags
    pii = {f.name: tags[f.name] for f in view.features if f.name in tags}
    return {"region": version.region, "pii": pii, "dataset": source.dataset, "dataset_version": version.id}


def compatible(declared: str, actual: str) -> bool:
    """Whether data of Arrow type ``actual`` casts to the declared feature type without loss."""
    if declared == "timestamp":
        return actual.startswith(("timestamp", "date"))
    return actual in _COMPATIBLE.get(declared, ())
