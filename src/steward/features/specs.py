"""Read and check feature definitions: from objects, from the YAML document's dict, or from YAML text.

A document has up to three lists::

    entities:
      - {name: customer, join_keys: [customer_id]}
    feature_views:
      - name: customer_stats
        entities: [customer]
        source: {dataset: transactions}   # or {sql: "select …", url: "postgresql://…"}
                                          # or {stream: clicks, url: "redis://…", history: {dataset: …}}
        timestamp: event_timestamp
        ttl: 30d
        features: [{name: spend_30d, dtype: float64}]
    feature_services:
      - {name: churn, features: ["customer_stats:spend_30d"]}

Every error is an ``InvalidInput`` naming the definition and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from steward.core.names import NAME_PATTERN
from steward.errors import InvalidInput
from steward.features.models import (
    FEATURE_TYPES,
    KIND_ENTITY,
    KIND_SERVICE,
    KIND_VIEW,
    DatasetSource,
    Definition,
    Entity,
    Feature,
    FeatureService,
    FeatureSource,
    FeatureView,
    SqlSource,
    StreamSource,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, None: 1}
_COLUMN = re.compile(r"^[^\s:\x00-\x1f](?:[^:\x00-\x1f]{0,126}[^\s:\x00-\x1f])?$")
"""A column name: 1-128 characters, no ``:`` (it separates view and feature), no control characters,
no space at either end (``mean radius`` is fine)."""
_DOCUMENT_KEYS = {"entities": KIND_ENTITY, "feature_views": KIND_VIEW, "feature_services": KIND_SERVICE}


def parse_ttl(value: Any, where: str = "ttl") -> timedelta | None:
    """Return a TTL from ``None``, a ``timedelta``, seconds, or ``"45s"``, ``"90m"``, ``"12h"``, ``"30d"``,
    ``"2w"``.

    Raises:
        InvalidInput: For anything else, or a TTL that is not positive.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        ttl = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ttl = timedelta(seconds=float(value))
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        ttl = timedelta(seconds=float(match.group(1)) * _SECONDS[match.group(2)])
    else:
        message = f"{where} {value!r} is not a duration such as '12h', '30d' or 3600 (seconds)"
        raise InvalidInput(message, {"field": where})
    if ttl <= timedelta(0):
        raise InvalidInput(f"{where} must be positive, got {value!r}", {"field": where})
    return ttl


def parse_document(document: Mapping[str, Any] | str) -> list[Definition]:
    """Return the definitions of a YAML document (text or its parsed dict), checked one by one.

    Raises:
        InvalidInput: If it is not a mapping of the three known lists, or a definition is malformed.
    """
    if isinstance(document, str):
        import yaml

        try:
            document = yaml.safe_load(document) or {}
        except yaml.YAMLError as exc:
            raise InvalidInput(
                f"feature definitions are not valid YAML: {exc}", {"field": "definitions"}
            ) from exc
    if not isinstance(document, Mapping):
        raise InvalidInput("feature definitions must be a mapping of lists", {"field": "definitions"})
    unknown = sorted(set(document) - set(_DOCUMENT_KEYS))
    if unknown:
        known = ", ".join(_DOCUMENT_KEYS)
        raise InvalidInput(f"unknown section {unknown[0]!r} (known: {known})", {"field": unknown[0]})
    out: list[Definition] = []
    for section, kind in _DOCUMENT_KEYS.items():
        items = document.get(section) or []
        if not isinstance(items, list):
            raise InvalidInput(f"{section} must be a list", {"field": section})
        out.extend(from_spec(kind, item) for item in items)
    return out


def from_spec(kind: str, spec: Any) -> Definition:
    """Build one definition of ``kind`` from its spec (what ``to_spec`` returns, or a YAML item).

    Raises:
        InvalidInput: Naming the definition and field that is wrong.
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"a {kind} must be a mapping, got {type(spec).__name__}", {"field": kind})
    name = _name(spec, kind)
    where = f"{kind} {name!r}"
    if kind == KIND_ENTITY:
        return Entity(
            name=name,
            join_keys=_columns(spec.get("join_keys"), f"{where}: join_keys"),
            description=str(spec.get("description") or ""),
            owner=str(spec.get("owner") or ""),
            tags=_tags(spec.get("tags"), where),
        )
    if kind == KIND_VIEW:
        return FeatureView(
            name=name,
            entities=_names(spec.get("entities"), f"{where}: entities"),
            source=_source(spec.get("source"), where),
            timestamp=_column(spec.get("timestamp"), f"{where}: timestamp"),
            features=_features(spec.get("features"), where),
            ttl=parse_ttl(spec.get("ttl"), f"{where}: ttl"),
            created_timestamp=(
                _column(spec["created_timestamp"], f"{where}: created_timestamp")
                if spec.get("created_timestamp")
                else None
            ),
            online=bool(spec.get("online", True)),
            description=str(spec.get("description") or ""),
            owner=str(spec.get("owner") or ""),
            tags=_tags(spec.get("tags"), where),
        )
    if kind == KIND_SERVICE:
        refs = spec.get("features")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
            message = f"{where}: features must be a non-empty list of 'view:feature' or 'view'"
            raise InvalidInput(message, {"field": "features", "definition": name})
        return FeatureService(
            name=name,
            features=tuple(refs),
            description=str(spec.get("description") or ""),
            owner=str(spec.get("owner") or ""),
            tags=_tags(spec.get("tags"), where),
        )
    raise InvalidInput(f"unknown definition kind {kind!r}", {"field": "kind"})


def check_definition(definition: Definition) -> Definition:
    """Check an object built in Python as thoroughly as a parsed spec; return it normalised.

    Raises:
        InvalidInput: As ``from_spec`` would.
    """
    if isinstance(definition, Entity):
        kind = KIND_ENTITY
    elif isinstance(definition, FeatureView):
        kind = KIND_VIEW
    elif isinstance(definition, FeatureService):
        kind = KIND_SERVICE
    else:
        message = (
            f"not a feature definition: {type(definition).__name__} (Entity, FeatureView or FeatureService)"
        )
        raise InvalidInput(message, {"field": "definitions"})
    return from_spec(kind, definition.to_spec())


def kind_of(definition: Definition) -> str:
    """``entity``, ``feature_view`` or ``feature_service``."""
    if isinstance(definition, Entity):
        return KIND_ENTITY
    return KIND_VIEW if isinstance(definition, FeatureView) else KIND_SERVICE


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``view:feature`` into its parts (``view`` alone: every feature of the view).

    Raises:
        InvalidInput: If the reference is malformed.
    """
    view, sep, feature = ref.partition(":")
    if not NAME_PATTERN.match(view) or (sep and not _COLUMN.match(feature)):
        message = f"{ref!r} is not a feature reference ('view:feature' or 'view')"
        raise InvalidInput(message, {"field": "features", "feature": ref})
    return view, (feature if sep else None)


def _name(spec: Mapping[str, Any], kind: str) -> str:
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"a {kind} needs a name matching {NAME_PATTERN.pattern}, got {name!r}", {"field": "name"}
        )
    return name


def _column(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _COLUMN.match(value):
        raise InvalidInput(f"{where} must be a column name, got {value!r}", {"field": where})
    return value


def _columns(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(f"{where} must be a non-empty list of column names", {"field": where})
    cols = tuple(_column(v, where) for v in value)
    if len(set(cols)) != len(cols):
        raise InvalidInput(f"{where} names a column twice", {"field": where})
    return cols


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(f"{where} must be a non-empty list of entity names", {"field": where})
    for v in value:
        if not isinstance(v, str) or not NAME_PATTERN.match(v):
            raise InvalidInput(f"{where}: {v!r} is not an entity name", {"field": where})
    return tuple(value)


def _features(value: Any, where: str) -> tuple[Feature, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(f"{where}: features must be a non-empty list", {"field": "features"})
    out: list[Feature] = []
    for item in value:
        spec = {"name": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping):
            raise InvalidInput(f"{where}: a feature must be a name or a mapping", {"field": "features"})
        name = _column(spec.get("name"), f"{where}: feature name")
        dtype = str(spec.get("dtype") or "float64")
        if dtype not in FEATURE_TYPES:
            message = f"{where}: feature {name!r} has type {dtype!r}; known types: {', '.join(FEATURE_TYPES)}"
            raise InvalidInput(message, {"field": "dtype", "feature": name})
        out.append(Feature(name, dtype, str(spec.get("description") or "")))
    names = [f.name for f in out]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InvalidInput(f"{where}: feature {duplicate!r} is declared twice", {"field": "features"})
    return tuple(out)


def _source(value: Any, where: str) -> FeatureSource:
    if isinstance(value, str):
        value = {"dataset": value}
    if not isinstance(value, Mapping):
        message = f"{where}: source must be {{dataset: …}}, {{sql: …, url: …}} or {{stream: …}}"
        raise InvalidInput(message, {"field": "source"})
    if value.get("dataset"):
        return _dataset_source(value, where)
    if value.get("sql"):
        url = value.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidInput(
                f"{where}: a sql source needs the url of its database", {"field": "source.url"}
            )
        return SqlSource(str(value["sql"]), url)
    if value.get("stream"):
        history = value.get("history")
        return StreamSource(
            stream=str(value["stream"]),
            url=str(value.get("url") or "redis://127.0.0.1:6379/0"),
            group=str(value.get("group") or "steward-features"),
            history=_dataset_source(history, f"{where}: history") if history else None,
        )
    raise InvalidInput(f"{where}: source needs one of dataset, sql or stream", {"field": "source"})


def _dataset_source(value: Any, where: str) -> DatasetSource:
    if isinstance(value, str):
        value = {"dataset": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("dataset"), str):
        raise InvalidInput(f"{where}: expected {{dataset: name}}", {"field": "source.dataset"})
    name = value["dataset"]
    if not NAME_PATTERN.match(name):
        raise InvalidInput(f"{where}: {name!r} is not a dataset name", {"field": "source.dataset"})
    version = value.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise InvalidInput(f"{where}: version must be a positive integer", {"field": "source.version"})
    return DatasetSource(name, version)


def _tags(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: tags must be a mapping", {"field": "tags"})
    return {str(k): str(v) for k, v in value.items()}


def ordered(definitions: Sequence[Definition]) -> list[Definition]:
    """Entities first, then views, then services: what each may refer to is stored before it."""
    rank = {KIND_ENTITY: 0, KIND_VIEW: 1, KIND_SERVICE: 2}
    return sorted(definitions, key=lambda d: rank[kind_of(d)])
