"""Feature definitions from YAML and dicts: what parses, and the errors that name what is wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest

from steward.errors import InvalidInput
from steward.features import DatasetSource, FeatureView, SqlSource, StreamSource
from steward.features.specs import check_definition, parse_document, parse_ref, parse_ttl


@pytest.mark.parametrize(
    ("text", "expected"),
    [("45s", 45), ("90m", 5400), ("12h", 43_200), ("30d", 2_592_000), ("2w", 1_209_600), (3600, 3600)],
)
def test_ttls_read_in_every_unit(text: object, expected: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("bad", ["soon", "-1d", "0", "10y", True])
def test_a_ttl_that_is_not_a_positive_duration_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="ttl"):
        parse_ttl(bad)


def test_a_document_reads_every_kind_of_source() -> None:
    views = parse_document(
        """
feature_views:
  - {name: a, entities: [c], source: {dataset: d, version: 2}, timestamp: ts, features: [x]}
  - {name: b, entities: [c], source: {sql: "select 1", url: "sqlite://"}, timestamp: ts, features: [x]}
  - name: s
    entities: [c]
    source: {stream: clicks, history: {dataset: h}}
    timestamp: ts
    features: [{name: x, dtype: int64}]
"""
    )
    assert [type(v.source) for v in views if isinstance(v, FeatureView)] == [
        DatasetSource,
        SqlSource,
        StreamSource,
    ]
    a, _, s = views
    assert (
        isinstance(a, FeatureView) and a.source == DatasetSource("d", 2) and a.features[0].dtype == "float64"
    )
    assert isinstance(s, FeatureView) and isinstance(s.source, StreamSource)
    assert s.source.history == DatasetSource("h") and s.source.url.startswith("redis://")


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"views": []}, "unknown section 'views'"),
        ({"entities": [{"name": "c"}]}, "join_keys"),
        ({"entities": [{"name": "bad name", "join_keys": ["k"]}]}, "needs a name"),
        ({"feature_views": [{"name": "v", "entities": ["c"], "source": {"dataset": "d"}, "timestamp": "ts",
                             "features": [{"name": "x", "dtype": "decimal"}]}]}, "'x' has type 'decimal'"),
        ({"feature_views": [{"name": "v", "entities": ["c"], "source": {"dataset": "d"}, "timestamp": "ts",
                             "features": ["x", "x"]}]}, "'x' is declared twice"),
        ({"feature_views": [{"name": "v", "entities": ["c"], "source": {"sql": "select 1"}, "timestamp": "ts",
                             "features": ["x"]}]}, "needs the url"),
        ({"feature_services": [{"name": "s", "features": []}]}, "non-empty list"),
        ("entities: [", "not valid YAML"),
    ],
)  # fmt: skip
def test_malformed_documents_name_what_is_wrong(document: object, named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        parse_document(document)  # type: ignore[arg-type]


def test_objects_built_in_python_are_checked_like_specs() -> None:
    bad = FeatureView("v", ("c",), DatasetSource("d"), "ts", (), ttl=timedelta(days=1))
    with pytest.raises(InvalidInput, match="features must be a non-empty list"):
        check_definition(bad)


def test_references_split_into_view_and_feature() -> None:
    assert parse_ref("stats:spend") == ("stats", "spend")
    assert parse_ref("stats") == ("stats", None)
    with pytest.raises(InvalidInput, match="not a feature reference"):
        parse_ref("stats:")
