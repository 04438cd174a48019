"""features: entities, feature views and services; point-in-time training sets (DuckDB), the online
store (SQLite | Redis) and materialisation.

The definition types are re-exported here; the SDK functions are ``steward.apply_features``,
``steward.get_historical_features``, ``steward.get_online_features`` and friends.
"""

from steward.features.models import (
    DatasetSource,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    OnlineFeatures,
    SqlSource,
    StreamSource,
)

__all__ = [
    "DatasetSource",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureView",
    "OnlineFeatures",
    "SqlSource",
    "StreamSource",
]
