"""Completing requests from a feature service: entity keys in, the model's inputs read from the online
store before the signature check.

An endpoint whose plan names a feature service (``TrafficPlan.feature_service``) takes requests whose
rows carry the entity join keys of the service's views and, if they like, some of the model's inputs.
For each request the server:

1. reads the rows as columns (``predict_json.columns_of``, ``oip.columns_of``) and checks that every row
   has every join key (a 422 naming the key and the row otherwise);
2. reads the service's features for all of the request's rows in one online read
   (``FeatureStore.get_online_features(keys, service)``), as the server's own identity in the endpoint's
   project;
3. builds, for each version that answers (and each shadow), the model's inputs: a feature the request
   gives a value for (not null) keeps the request's value, the others take the store's; join keys reach
   the model only if its signature names them;
4. refuses with 422 a row whose feature has no value (an entity the online store does not have, or a
   value older than the view's TTL), naming the feature and the entity — unless the signature marks that
   column ``optional``, in which case the model gets the null (NaN in a float column).

A failing online store (or a feature service that no longer resolves) is a 503
``feature_store_unavailable``, never a 500. Each read is counted in ``/metrics``
(``steward_feature_lookups_total{endpoint,outcome}``, ``outcome`` one of ``ok``, ``invalid`` or
``error``), with its duration and the entities each view lacked.

The embedded online store (SQLite, on SQLite metadata) is read in the event loop: a read costs tens of
microseconds. Anything that may wait — a Redis or PostgreSQL round trip, re-reading the service's
definitions, the audit entry a PII-tagged feature's read writes — runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from steward.core.acting import Acting, acting
from steward.errors import InvalidInput, NotFound, ServiceUnavailable, StewardError
from steward.features.models import (
    KIND_SERVICE,
    STATUS_NOT_FOUND,
    STATUS_OUTSIDE_TTL,
    STATUS_PRESENT,
    FeatureBackend,
    OnlineFeatures,
    StoredDefinition,
)
from steward.features.resolve import select
from steward.serving import predict_json
from steward.serving.models import LATENCY_BUCKETS_MS, TrafficPlan
from steward.serving.refusals import Unprocessable

if TYPE_CHECKING:
    from steward.serving.runtime import ServedVersion

log = logging.getLogger("steward.serving")

LAYOUT_TTL_S: Final = 5.0
"""How long the keys and features a service resolved to are reused (an ``apply`` shows after this)."""

OUTCOMES: Final = ("ok", "invalid", "error")
"""``ok``: read; ``invalid``: the request's entity keys were refused (422); ``error``: the store or
the service's definitions failed (503)."""

_REASONS: Final[Mapping[str, str]] = {
    STATUS_NOT_FOUND: "the online store has no value for this entity",
    STATUS_OUTSIDE_TTL: "its value in the online store is older than the view's TTL",
    STATUS_PRESENT: "its stored value is null",
}


class FeatureStoreUnavailable(ServiceUnavailable):
    """The online store (or the service's definitions) could not be read (HTTP 503)."""

    code = "feature_store_unavailable"


@dataclass(frozen=True)
class ServiceLayout:
    """What a feature service gives a request.

    Attributes:
        name: The service.
        join_keys: The entity key columns every request row must carry (of all its views, in order).
        views: Each feature column the online read returns, with the view it comes from.
        pii: Whether a feature is PII-tagged (its reads are audited, so they run in a thread).
    """

    name: str
    join_keys: tuple[str, ...]
    views: Mapping[str, str]
    pii: bool = False


def layout_of(store: FeatureBackend, service: str) -> ServiceLayout:
    """Resolve a feature service into its join keys and feature columns.

    Raises:
        NotFound: If the service, or one of its views or entities, is not defined.
    """

    def lookup(kind: str, name: str) -> StoredDefinition | None:
        try:
            return store.get_definition(kind, name)
        except NotFound:
            return None

    if lookup(KIND_SERVICE, service) is None:
        raise NotFound(f"feature service {service!r} not found", {"field": "feature_service"})
    keys: list[str] = []
    views: dict[str, str] = {}
    pii = False
    for selection in select(lookup, service):
        keys.extend(k for k in selection.join_keys if k not in keys)
        for feature in selection.features:
            views.setdefault(feature, selection.view.name)
        pii = pii or bool(set(selection.features) & set(selection.derived.get("pii") or {}))
    return ServiceLayout(service, tuple(keys), views, pii)


def entity_keys(layout: ServiceLayout, given: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """The request's entity key columns, checked: every row has every key.

    Raises:
        Unprocessable: Naming the key and the first row without it.
    """
    keys: dict[str, list[Any]] = {}
    for key in layout.join_keys:
        values = given.get(key)
        row = None if values is None else next((i for i, v in enumerate(values) if v is None), None)
        if values is None or row is not None:
            where = "the request" if values is None else f"row {row}"
            raise Unprocessable(
                f"{where} has no entity key {key!r}: this endpoint reads its inputs from feature service "
                f"{layout.name!r}, keyed by {', '.join(layout.join_keys)}",
                {"field": key, "row": row or 0, "feature_service": layout.name},
            )
        if any(isinstance(v, dict | list) for v in values):
            raise Unprocessable(
                f"entity key {key!r} must hold one plain value per row", {"field": key, "row": 0}
            )
        keys[key] = values
    return keys


class Enrichment:
    """One request's rows with the features read for them; builds each version's model input.

    Args:
        layout: The feature service's keys and features.
        given: The request's columns (entity keys and any inputs it gives), one value per row.
        fetched: The online read for those rows.
    """

    def __init__(
        self, layout: ServiceLayout, given: Mapping[str, list[Any]], fetched: OnlineFeatures
    ) -> None:
        self.layout = layout
        self.given = given
        self.fetched = fetched
        self.rows = len(next(iter(given.values())))
        merged: dict[str, list[Any]] = dict(given)
        for feature in layout.views:
            stored = list(fetched.columns.get(feature) or [None] * self.rows)
            sent = given.get(feature)
            merged[feature] = (
                stored
                if sent is None
                else [s if s is not None else v for s, v in zip(sent, stored, strict=True)]
            )
        self.merged = merged

    def columns_for(self, served: ServedVersion) -> dict[str, list[Any]]:
        """The columns ``served``'s signature takes (everything but the join keys without one).

        Raises:
            Unprocessable: For a tensor signature, an input neither the service nor the request gives,
                or a required feature without a value (naming it and the entity).
        """
        schema = served.schema
        keys = self.layout.join_keys
        if schema is None:
            return {name: values for name, values in self.merged.items() if name not in keys}
        if schema.tensor is not None:
            raise Unprocessable(
                f"this model takes a tensor; inputs read from feature service {self.layout.name!r} need a "
                "columns signature",
                {"field": "inputs", "feature_service": self.layout.name},
            )
        out: dict[str, list[Any]] = {}
        for column in schema.columns:
            values = self.merged.get(column.name)
            if values is None:
                raise Unprocessable(
                    f"the model's input {column.name!r} is not a feature of service {self.layout.name!r} "
                    "and the request does not give it",
                    {"field": column.name, "feature_service": self.layout.name},
                )
            if column.name in self.layout.views and not column.optional:
                self._refuse_missing(column.name, values)
            out[column.name] = values
        return out

    def _refuse_missing(self, feature: str, values: Sequence[Any]) -> None:
        row = next((i for i, v in enumerate(values) if v is None), None)
        if row is None:
            return
        view = self.layout.views[feature]
        statuses = self.fetched.statuses.get(view) or []
        status = statuses[row] if row < len(statuses) else STATUS_NOT_FOUND
        entity = {key: self.given[key][row] for key in self.layout.join_keys}
        named = ", ".join(f"{k}={v!r}" for k, v in entity.items())
        missing = sum(v is None for v in values)
        more = f" ({missing} rows lack it)" if missing > 1 else ""
        raise Unprocessable(
            f"feature {feature!r} (view {view!r}) is missing for entity {named} in row {row}: "
            f"{_REASONS.get(status, status)}{more}; send it in the request, or mark the column optional "
            "in the model's signature",
            {"field": feature, "feature": feature, "view": view, "entity": entity, "row": row,
             "status": status, "missing_rows": missing},
        )  # fmt: skip

    def decode(self, served: ServedVersion) -> tuple[Any, int]:
        """``served``'s model-ready input and its rows (the JSON route's checks on the completed columns).

        Raises:
            Unprocessable: As :meth:`columns_for`, or when the signature refuses a value.
        """
        return predict_json.decode({"columns": self.columns_for(served)}, served)

    def logged(self, served: ServedVersion, item: Any) -> Any:
        """What the prediction log records: the model's input, with the entity keys as extra columns.

        Args:
            served: The version that answered.
            item: Its model-ready input.
        """
        import pyarrow as pa

        columns: dict[str, Any]
        codec = served.codec
        if codec is not None and isinstance(item, np.ndarray):
            columns = {name: item[:, i] for i, name in enumerate(codec.names)}
        elif hasattr(item, "iloc") and hasattr(item, "columns"):  # a DataFrame
            columns = {str(name): item[name].to_numpy() for name in item.columns}
        else:
            return item
        for key in self.layout.join_keys:
            if key not in columns:
                try:
                    columns[key] = pa.array(self.given[key])
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # keys of mixed types: as text
                    columns[key] = pa.array([str(v) for v in self.given[key]])
        try:
            return pa.table(columns)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return item


class OnlineFeatureReader:
    """Reads the online features of requests to endpoints behind a feature service.

    Args:
        open_store: Opens the feature store (called once, on first use; ``FeatureStore(platform)``).
        registry: The server's Prometheus registry (the lookup metrics are added to it).
        actor: Who reads (the server's identity; the endpoint's project is the one read).
        inline: Whether the online read may run in the event loop (an embedded SQLite online store on
            SQLite metadata). Reads that resolve definitions or touch PII-tagged features run in a
            thread regardless.
    """

    def __init__(
        self,
        open_store: Callable[[], FeatureBackend],
        registry: CollectorRegistry,
        *,
        actor: str = "steward-serve",
        inline: bool = True,
    ) -> None:
        self._open = open_store
        self._store: FeatureBackend | None = None
        self._lock = threading.Lock()
        self._layouts: dict[tuple[str, str], tuple[float, ServiceLayout]] = {}
        self.actor = actor
        self.inline = inline
        self._lookups = Counter(
            "steward_feature_lookups",
            "Online feature reads for requests, by endpoint and outcome (ok, invalid, error).",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self._latency = Histogram(
            "steward_feature_lookup_duration_seconds",
            "Time an online feature read for a request took.",
            ["endpoint"],
            buckets=[ms / 1000.0 for ms in LATENCY_BUCKETS_MS],
            registry=registry,
        )
        self._missing = Counter(
            "steward_feature_entities_missing",
            "Request rows whose entity a view did not have online (NOT_FOUND) or had too old (OUTSIDE_TTL).",
            ["endpoint", "view", "status"],
            registry=registry,
        )

    @property
    def store(self) -> FeatureBackend:
        """The feature store, opened on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._open()
        return self._store

    def close(self) -> None:
        """Release the feature store's connections (if it was opened)."""
        close = getattr(self._store, "close", None)
        if callable(close):
            close()

    def layout(self, project: str, service: str) -> ServiceLayout:
        """The service's keys and features (resolved at most every :data:`LAYOUT_TTL_S` seconds).

        Raises:
            NotFound: If the service does not resolve.
        """
        key = (project, service)
        cached = self._layouts.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        with acting(Acting(self.actor, project)):
            found = layout_of(self.store, service)
        self._layouts[key] = (now + LAYOUT_TTL_S, found)
        return found

    def _cached(self, project: str, service: str) -> ServiceLayout | None:
        cached = self._layouts.get((project, service))
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def _read(self, project: str, service: str, given: Mapping[str, list[Any]]) -> Enrichment:
        layout = self.layout(project, service)
        keys = entity_keys(layout, given)
        with acting(Acting(self.actor, project)):
            fetched = self.store.get_online_features(keys, service)
        return Enrichment(layout, given, fetched)

    async def read(self, plan: TrafficPlan, given: Mapping[str, list[Any]]) -> Enrichment:
        """Read the features of one request's rows (one online read for all of them).

        Args:
            plan: The endpoint's plan (its ``feature_service`` and project).
            given: The request's columns.

        Raises:
            Unprocessable: A row without an entity key, or keys the store refuses (422).
            FeatureStoreUnavailable: The store or the service's definitions failed (503).
        """
        service = plan.feature_service
        assert service is not None
        started = time.perf_counter()
        cached = self._cached(plan.project, service)
        try:
            if self.inline and cached is not None and not cached.pii:
                found = self._read(plan.project, service, given)
            else:
                found = await asyncio.to_thread(self._read, plan.project, service, given)
        except Unprocessable:
            self._lookups.labels(plan.endpoint, "invalid").inc()
            raise
        except InvalidInput as error:  # the store's own check of the keys (a type it cannot key on)
            self._lookups.labels(plan.endpoint, "invalid").inc()
            raise Unprocessable(
                f"feature service {service!r}: {error.message}", {**error.details, "feature_service": service}
            ) from None
        except Exception as exc:
            self._lookups.labels(plan.endpoint, "error").inc()
            reason = exc.message if isinstance(exc, StewardError) else f"{type(exc).__name__}: {exc}"
            log.warning("endpoint %s: reading feature service %s failed: %s", plan.endpoint, service, reason)
            raise FeatureStoreUnavailable(
                f"cannot read the online features of endpoint {plan.endpoint!r} (feature service "
                f"{service!r}): {reason[:300]}",
                {"field": "feature_service", "feature_service": service},
            ) from None
        self._lookups.labels(plan.endpoint, "ok").inc()
        self._latency.labels(plan.endpoint).observe(time.perf_counter() - started)
        for view, statuses in found.fetched.statuses.items():
            for status in (STATUS_NOT_FOUND, STATUS_OUTSIDE_TTL):
                count = statuses.count(status)
                if count:
                    self._missing.labels(plan.endpoint, view, status).inc(count)
        return found
