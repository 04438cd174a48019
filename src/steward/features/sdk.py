"""The feature store half of the SDK: ``steward.apply_features``, ``get_historical_features``,
``get_online_features``, ``materialize_features``, ``push_features`` …

Each function calls the default connection's feature backend (embedded, or a server's REST API), which
``steward._connect`` installs with ``set_features_resolver``.

Example:
    >>> from steward.features import Entity, Feature, FeatureView, DatasetSource
    >>> steward.apply_features([
    ...     Entity("customer", ("customer_id",)),
    ...     FeatureView("customer_stats", ("customer",), DatasetSource("transactions"), "event_timestamp",
    ...                 (Feature("spend_30d"),), ttl=timedelta(days=30)),
    ... ])  # doctest: +SKIP
    >>> steward.get_historical_features(entity_df, ["customer_stats:spend_30d"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steward.errors import StewardError
from steward.features.models import (
    ApplyReport,
    Definition,
    FeatureBackend,
    MaterializationRun,
    OnlineFeatures,
    SkewReport,
    StoredDefinition,
)

if TYPE_CHECKING:
    import pyarrow as pa

FeaturesResolver = Callable[[], FeatureBackend]
_resolver: FeaturesResolver | None = None

__all__ = [
    "apply_features",
    "feature_skew",
    "get_historical_features",
    "get_online_features",
    "list_feature_definitions",
    "materialize_features",
    "push_features",
]


def set_features_resolver(resolver: FeaturesResolver) -> None:
    """Install the function that returns the feature backend in use."""
    global _resolver
    _resolver = resolver


def _backend() -> FeatureBackend:
    if _resolver is None:
        raise StewardError("steward is not configured: import steward (which installs the default backend)")
    return _resolver()


def apply_features(definitions: Sequence[Definition] | Mapping[str, Any] | str) -> ApplyReport:
    """Register entities, feature views and feature services (objects, a YAML dict or YAML text); each
    becomes a new version only if it changed. Returns what was created, changed or unchanged."""
    return _backend().apply(definitions)


def list_feature_definitions(kind: str | None = None) -> list[StoredDefinition]:
    """The latest version of every definition (``entity``, ``feature_view`` or ``feature_service``)."""
    return _backend().list_definitions(kind)


def get_historical_features(
    entity_rows: Any,
    features: Sequence[str] | str,
    *,
    timestamp: str = "event_timestamp",
    full_feature_names: bool = False,
    save_as: str | None = None,
) -> pa.Table:
    """A point-in-time correct training set: every entity row, in order, with each feature's latest
    value at or before the row's timestamp (within the view's TTL, as known then), nulls where there
    is none. ``features`` are ``view:feature`` references or a feature service's name; ``save_as``
    also publishes the result as a dataset version with lineage to its sources."""
    return _backend().get_historical_features(
        entity_rows, features, timestamp=timestamp, full_feature_names=full_feature_names, save_as=save_as
    )


def get_online_features(
    entity_rows: Any, features: Sequence[str] | str, *, full_feature_names: bool = False
) -> OnlineFeatures:
    """The online store's values for each entity row; unknown entities get nulls and ``NOT_FOUND``."""
    return _backend().get_online_features(entity_rows, features, full_feature_names=full_feature_names)


def materialize_features(
    views: Sequence[str] | None = None, start: datetime | None = None, end: datetime | None = None
) -> list[MaterializationRun]:
    """Write the latest values per entity to the online store (incrementally since the last run when
    ``start`` is None)."""
    return _backend().materialize(views, start, end)


def push_features(view: str, rows: Any) -> int:
    """Write fresh rows of a view straight to the online store; returns how many entities took them."""
    return _backend().push(view, rows)


def feature_skew(view: str, *, sample: int = 100, tolerance: float = 1e-9, seed: int = 0) -> SkewReport:
    """Compare offline and online values of a view for a sample of its entities."""
    return _backend().skew(view, sample=sample, tolerance=tolerance, seed=seed)
