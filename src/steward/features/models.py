"""The feature store's types: entities, feature views, feature services and their sources; the
``OnlineStore`` protocol the embedded (SQLite) and team (Redis) online stores implement; and the results
of applying definitions, reading online features, materialising and checking skew.

Definitions are plain frozen dataclasses with ``to_spec``/``from_spec`` (the JSON-ready form the
database versions and YAML files hold); ``steward.features.specs`` parses and checks them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from steward.core.urls import masked_url
from steward.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FEATURE_TYPES = ("float64", "float32", "int64", "int32", "bool", "string", "timestamp")
"""The feature types a view may declare (Arrow's names). A column of another Arrow type that casts to
the declared one without loss is accepted (``int32`` data for an ``int64`` feature …)."""

KIND_ENTITY = "entity"
KIND_VIEW = "feature_view"
KIND_SERVICE = "feature_service"
DefinitionKind = Literal["entity", "feature_view", "feature_service"]

STATUS_PRESENT = "PRESENT"
STATUS_NOT_FOUND = "NOT_FOUND"
STATUS_OUTSIDE_TTL = "OUTSIDE_TTL"
"""Per entity and view, what an online read found: the values, no values (the features are null), or
values older than the view's TTL (null too). Unknown entities are never an error."""


@dataclass(frozen=True)
class Feature:
    """One feature of a view: a column of its source, with a declared type."""

    name: str
    dtype: str = "float64"
    description: str = ""

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"name": self.name, "dtype": self.dtype, "description": self.description}


@dataclass(frozen=True)
class Entity:
    """What features describe (a customer, a card): named, with the key columns that identify one."""

    name: str
    join_keys: tuple[str, ...]
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class DatasetSource:
    """A view's rows from a Steward dataset: a fixed version, or its latest at retrieval time."""

    dataset: str
    version: int | None = None

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"dataset": self.dataset, "version": self.version}


@dataclass(frozen=True)
class SqlSource:
    """A view's rows from a SQL query against a SQLAlchemy URL, run when the view is read."""

    query: str
    url: str

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"sql": self.query, "url": self.url}


@dataclass(frozen=True)
class StreamSource:
    """A view fed by a Redis stream (fresh values pushed to the online store as they arrive), whose
    history for training sets and materialisation is the dataset ``history`` (None: online only)."""

    stream: str
    url: str = "redis://127.0.0.1:6379/0"
    group: str = "steward-features"
    history: DatasetSource | None = None

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {
            "stream": self.stream,
            "url": self.url,
            "group": self.group,
            "history": self.history.to_spec() if self.history is not None else None,
        }


FeatureSource = DatasetSource | SqlSource | StreamSource


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from a source with an event timestamp.

    Attributes:
        name: The view's name; a feature is referenced as ``view:feature``.
        entities: The names of its entities; their join keys are columns of the source.
        source: Where its rows come from.
        timestamp: The source's event-timestamp column (when the values were true).
        features: The columns it serves, with their types.
        ttl: How long a value stays valid after its event time (None: for ever). A training row or an
            online read older than this gets nulls.
        created_timestamp: The source's column saying when a row became known, if it has one: training
            sets then see a row only from that time ("as known then"), so a late correction is not
            visible to earlier rows; it also breaks ties between rows with the same event time.
        online: Whether ``materialize`` writes it to the online store.
    """

    name: str
    entities: tuple[str, ...]
    source: FeatureSource
    timestamp: str
    features: tuple[Feature, ...]
    ttl: timedelta | None = None
    created_timestamp: str | None = None
    online: bool = True
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def feature(self, name: str) -> Feature | None:
        """The feature called ``name``, or None."""
        return next((f for f in self.features if f.name == name), None)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form (the TTL in whole seconds)."""
        return {
            "name": self.name,
            "entities": list(self.entities),
            "source": self.source.to_spec(),
            "timestamp": self.timestamp,
            "created_timestamp": self.created_timestamp,
            "ttl": int(self.ttl.total_seconds()) if self.ttl is not None else None,
            "features": [f.to_spec() for f in self.features],
            "online": self.online,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class FeatureService:
    """A named set of features a model consumes: ``view:feature`` references, or ``view`` for all."""

    name: str
    features: tuple[str, ...]
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {
            "name": self.name,
            "features": list(self.features),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }


Definition = Entity | FeatureView | FeatureService


def _masked_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A definition's spec with the password of its source's URL (and its history's) masked."""
    masked = dict(spec)
    source = masked.get("source")
    if isinstance(source, Mapping) and isinstance(source.get("url"), str):
        masked["source"] = {**source, "url": masked_url(source["url"])}
    return masked


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_url(url: str, field: str = "source.url") -> str:
    """A source's URL with each ``${VARIABLE}`` replaced by that environment variable's value, so that
    ``postgresql://app:${PG_PASSWORD}@db/app`` keeps the password out of the registry.

    Raises:
        InvalidInput: Naming a variable that is not set.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise InvalidInput(
                f"{field} names the environment variable {name}, which is not set", {"field": field}
            )
        return found

    return _VARIABLE.sub(value, url)


@dataclass(frozen=True)
class StoredDefinition:
    """One version of a definition as the registry database keeps it.

    Attributes:
        kind: ``entity``, ``feature_view`` or ``feature_service``.
        version: 1, 2, 3 … — a new one each time ``apply`` finds the spec changed.
        spec: The definition's ``to_spec()``.
        digest: SHA-256 of the canonical spec: an unchanged definition is not a new version.
        derived: What the data layer says of a view's source at apply time: ``region``, ``pii``
            (``{feature: [tags]}``) and ``dataset_version`` (the id it resolved to), for views.
    """

    kind: str
    name: str
    version: int
    spec: Mapping[str, Any]
    digest: str
    derived: Mapping[str, Any]
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict, with any password in a source's URL masked (``***``): what the API,
        the CLI and audit details show. The stored spec keeps the URL as applied; write ``${VARIABLE}``
        in it to keep the secret out of the registry altogether (``resolve_url``)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "spec": _masked_spec(self.spec),
            "digest": self.digest,
            "derived": dict(self.derived),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredDefinition:
        """Build from the dict ``to_json`` returns."""
        return cls(
            kind=str(data["kind"]),
            name=str(data["name"]),
            version=int(data["version"]),
            spec=dict(data["spec"]),
            digest=str(data["digest"]),
            derived=dict(data.get("derived") or {}),
            created_at=datetime.fromisoformat(data["created_at"]),
            created_by=str(data["created_by"]),
        )


@dataclass(frozen=True)
class ApplyReport:
    """What ``apply`` changed: ``kind:name`` of each definition created, changed (a new version) or
    left as it was."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyReport:
        """Build from the dict ``to_json`` returns."""
        return cls(
            tuple(data.get("created", ())), tuple(data.get("updated", ())), tuple(data.get("unchanged", ()))
        )


@dataclass(frozen=True)
class ViewInput:
    """One view's part of a point-in-time join, as the offline store receives it.

    Attributes:
        view: The definition (its timestamp, created timestamp and TTL are used).
        join_keys: The entity key columns, present in both the entity rows and the view's data.
        features: The features wanted from it, in order.
        parquet: Local Parquet files holding the view's rows (read out of core by DuckDB), or
        table: the rows in memory (a SQL source's result). Exactly one of the two is set.
    """

    view: FeatureView
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    parquet: tuple[str, ...] = ()
    table: pa.Table | None = None


@dataclass(frozen=True)
class OnlineFeatures:
    """The answer of an online read: one value per entity row and feature, and per view a status.

    Attributes:
        columns: The entity rows' key columns, then each feature (named ``feature``, or ``view__feature``
            with full names), each a list with one value per entity row (None when not present).
        statuses: ``{view: [PRESENT | NOT_FOUND | OUTSIDE_TTL per entity row]}``.
    """

    columns: Mapping[str, list[Any]]
    statuses: Mapping[str, list[str]]

    def to_dict(self) -> dict[str, list[Any]]:
        """The columns as a dict of lists (Feast's ``to_dict``)."""
        return {k: list(v) for k, v in self.columns.items()}

    def to_pandas(self) -> pd.DataFrame:
        """The columns as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.to_dict())

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"columns": self.to_dict(), "statuses": {k: list(v) for k, v in self.statuses.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OnlineFeatures:
        """Build from the dict ``to_json`` returns."""
        return cls(dict(data["columns"]), dict(data["statuses"]))


@dataclass(frozen=True)
class MaterializationRun:
    """One ``materialize`` of one view: the event-time window read and what reached the online store."""

    view: str
    start: datetime
    end: datetime
    rows: int
    entities: int
    store: str
    finished_at: datetime
    finished_by: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "view": self.view,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "entities": self.entities,
            "store": self.store,
            "finished_at": self.finished_at.isoformat(),
            "finished_by": self.finished_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MaterializationRun:
        """Build from the dict ``to_json`` returns."""
        return cls(
            view=str(data["view"]),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            rows=int(data["rows"]),
            entities=int(data["entities"]),
            store=str(data["store"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            finished_by=str(data["finished_by"]),
        )


@dataclass(frozen=True)
class SkewReport:
    """Offline against online values for a sample of a view's entities.

    Attributes:
        view: The view compared.
        sampled: Entities sampled from the offline data.
        compared: Feature values compared (entities found online, times features).
        missing_online: Sampled entities the online store does not have.
        mismatches: ``{"entity", "feature", "offline", "online"}`` for each value that differs.
        tolerance: Relative tolerance used for floating-point features.
    """

    view: str
    sampled: int
    compared: int
    missing_online: int
    mismatches: tuple[Mapping[str, Any], ...]
    tolerance: float

    @property
    def consistent(self) -> bool:
        """True when every sampled entity is online with the offline values."""
        return not self.mismatches and self.missing_online == 0

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "view": self.view,
            "sampled": self.sampled,
            "compared": self.compared,
            "missing_online": self.missing_online,
            "mismatches": [dict(m) for m in self.mismatches],
            "tolerance": self.tolerance,
            "consistent": self.consistent,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SkewReport:
        """Build from the dict ``to_json`` returns."""
        return cls(
            view=str(data["view"]),
            sampled=int(data["sampled"]),
            compared=int(data["compared"]),
            missing_online=int(data["missing_online"]),
            mismatches=tuple(dict(m) for m in data.get("mismatches", ())),
            tolerance=float(data["tolerance"]),
        )


OnlineRecord = tuple[str, int, bytes]
"""``(entity key, event time in microseconds since the epoch, encoded values)`` as online stores keep it."""


class OnlineStore(Protocol):
    """Latest feature values per entity, by project and view: bytes in, bytes out.

    Values are encoded by ``steward.features.online`` (the store never looks inside them); entity keys
    are the strings ``steward.features.online.entity_key`` makes. A write keeps, per entity, the record
    with the later event time, so a materialisation of old data never overwrites a fresher value a
    stream pushed. Implementations raise ``ServiceUnavailable`` when their backend fails. A new one:

    >>> class InMemory:
    ...     def __init__(self) -> None:
    ...         self.rows: dict[tuple[str, str, str], tuple[int, bytes]] = {}
    ...
    ...     def write(self, project: str, view: str, records: Iterable[OnlineRecord]) -> int:
    ...         n = 0
    ...         for key, ts, value in records:
    ...             old = self.rows.get((project, view, key))
    ...             if old is None or ts >= old[0]:
    ...                 self.rows[(project, view, key)] = (ts, value)
    ...                 n += 1
    ...         return n
    ...
    ...     # … read, read_views, delete and close as below.
    """

    name: str
    """``sqlite`` or ``redis`` (what ``MaterializationRun.store`` records)."""

    def write(self, project: str, view: str, records: Iterable[OnlineRecord]) -> int:
        """Store each record unless the entity has one with a later event time; return how many were."""
        ...

    def read(self, project: str, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        """Return ``(event time, encoded values)`` per key, in order, None for an unknown entity."""
        ...

    def read_views(
        self, project: str, views: Sequence[str], keys: Sequence[str]
    ) -> list[list[tuple[int, bytes] | None]]:
        """``read`` of the same keys from several views at once (one statement or round trip), per view."""
        ...

    def delete(self, project: str, view: str) -> int:
        """Remove every entity of a view; return how many there were."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


EntityRows = Any
"""Entity rows for a read: a pandas or polars DataFrame, an Arrow table, ``{column: [values]}`` or a list
of ``{column: value}`` dicts."""


class FeatureBackend(Protocol):
    """The feature store's operations, embedded (``FeatureService`` … ``steward.features.service``) or
    over HTTP (``steward.client.features``). Both raise the errors of ``steward.errors``; one contract
    suite runs against both."""

    def apply(self, definitions: Sequence[Definition] | Mapping[str, Any] | str) -> ApplyReport:
        """Register definitions (objects, the YAML document's dict, or YAML text), each a new version only
        if it changed; report what changed. Everything is checked before anything is stored."""
        ...

    def list_definitions(self, kind: str | None = None) -> list[StoredDefinition]:
        """The latest version of every definition (of one kind), by kind and name."""
        ...

    def get_definition(self, kind: str, name: str, version: int | None = None) -> StoredDefinition:
        """One version of a definition (the latest by default); ``NotFound`` otherwise."""
        ...

    def definition_history(self, kind: str, name: str) -> list[StoredDefinition]:
        """Every version of a definition, oldest first."""
        ...

    def get_historical_features(
        self,
        entity_rows: EntityRows,
        features: Sequence[str] | str,
        *,
        timestamp: str = "event_timestamp",
        full_feature_names: bool = False,
        save_as: str | None = None,
    ) -> pa.Table:
        """A point-in-time correct training set: every entity row, in order, with each feature's latest
        value at or before its timestamp (within the TTL; as known then). ``features`` are
        ``view:feature`` references or a feature service's name. With ``save_as``, the result is also
        published as a dataset version whose lineage names the source dataset versions."""
        ...

    def materialize(
        self,
        views: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[MaterializationRun]:
        """Write the latest values per entity with event times in ``[start, end)`` to the online store;
        ``start`` None continues from the view's last run (from the beginning the first time), ``end``
        None is now. Every online view by default."""
        ...

    def list_materializations(self, view: str | None = None) -> list[MaterializationRun]:
        """Past materialisation runs, newest first."""
        ...

    def get_online_features(
        self, entity_rows: EntityRows, features: Sequence[str] | str, *, full_feature_names: bool = False
    ) -> OnlineFeatures:
        """The online values of ``features`` for each entity row (nulls and a status for unknown ones)."""
        ...

    def push(self, view: str, rows: EntityRows) -> int:
        """Write fresh rows (keys, event timestamp, features) of a view straight to the online store."""
        ...

    def consume_stream(self, view: str, *, max_batches: int | None = None, block_ms: int = 0) -> int:
        """Push what a stream-sourced view's Redis stream holds to the online store (at least once, each
        batch acknowledged once stored); return the rows pushed."""
        ...

    def skew(self, view: str, *, sample: int = 100, tolerance: float = 1e-9, seed: int = 0) -> SkewReport:
        """Compare offline and online values of a view for a sample of its entities."""
        ...
