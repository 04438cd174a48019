"""The feature store contract: the same behaviour embedded (SQLite, PostgreSQL) and over HTTP.

In remote mode YAML is parsed here and sent as specs, entity rows and training sets cross the wire as
Arrow streams, and the server (its own home, its own SQLite online store) does the work. Datasets are
made through each mode's own data service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from steward.api.app import create_app
from steward.config import load_settings
from steward.data.models import DataBackend
from steward.errors import InvalidInput, NotFound
from steward.features import DatasetSource, Entity, Feature, FeatureView
from steward.features.models import STATUS_NOT_FOUND, STATUS_PRESENT, FeatureBackend
from steward.store.platform import Platform
from tests.data.connectors.conftest import RedisKeys, redis_keys  # noqa: F401  (a fixture)
from tests.plugins.server import running_server

T0 = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
"""Ten days ago: the data's days 1 to 9 are recent enough for the views' 30-day TTL online."""

DEFINITIONS = """\
entities:
  - {name: customer, join_keys: [customer_id], description: a paying customer}
feature_views:
  - name: customer_stats
    entities: [customer]
    source: {dataset: transactions}
    timestamp: event_timestamp
    ttl: 30d
    features:
      - {name: spend, dtype: float64}
      - {name: orders, dtype: int64}
feature_services:
  - {name: churn, features: ["customer_stats:spend", "customer_stats:orders"]}
"""

PROFILE = """\
feature_views:
  - name: profile
    entities: [customer]
    source: {dataset: profiles}
    timestamp: event_timestamp
    features: [{name: email, dtype: string}]
"""


ORDERS = {"name": "orders", "dtype": "int64"}


def day(n: float) -> datetime:
    """``T0`` plus ``n`` days."""
    return T0 + timedelta(days=n)


def transactions() -> pa.Table:
    """Customer 1 spends 10, 20, 30 on days 1, 5, 9 (1, 2, 3 orders); customer 2 spends 7 on day 2."""
    return pa.table(
        {
            "customer_id": pa.array([1, 1, 1, 2], pa.int64()),
            "event_timestamp": pa.array([day(1), day(5), day(9), day(2)], pa.timestamp("us", tz="UTC")),
            "spend": pa.array([10.0, 20.0, 30.0, 7.0]),
            "orders": pa.array([1, 2, 3, 4], pa.int64()),
        }
    )


def profiles() -> pa.Table:
    """One e-mail address per customer: a column the data layer tags as personal data."""
    return pa.table(
        {
            "customer_id": pa.array([1, 2, 3], pa.int64()),
            "event_timestamp": pa.array([day(1)] * 3, pa.timestamp("us", tz="UTC")),
            "email": ["ana@example.com", "bo@example.org", "cy@example.net"],
        }
    )


def entity_rows() -> pa.Table:
    """Five rows to label: before any data, between events, of an unknown customer, after the last."""
    return pa.table(
        {
            "customer_id": pa.array([1, 1, 2, 3, 1], pa.int64()),
            "event_timestamp": pa.array(
                [day(0.5), day(6), day(3), day(4), day(9.5)], pa.timestamp("us", tz="UTC")
            ),
            "label": [0, 1, 0, 1, 1],
        }
    )


@pytest.fixture
def features_server(tmp_path: Path) -> Iterator[str]:
    """A Steward server with the feature routes, on its own home; yields its URL."""
    app = create_app(load_settings(home=tmp_path / "server-home"))
    with running_server(app) as url:
        yield url


@dataclass
class Modes:
    """One mode's feature store and the data service its datasets are made with."""

    kind: str
    features: FeatureBackend
    data: DataBackend


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres), "remote"])
def mode(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Modes]:
    """The feature store embedded on SQLite or PostgreSQL, or the HTTP client of a real server."""
    if request.param == "remote":
        from steward.client.data import RemoteDataService
        from steward.client.features import RemoteFeatureStore
        from steward.client.http import HttpClient

        url = request.getfixturevalue("features_server")
        with HttpClient(url) as http:
            yield Modes("remote", RemoteFeatureStore(http), RemoteDataService(http))
        return
    from steward.data.service import DataService
    from steward.features.service import FeatureStore

    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    data = DataService(platform)
    store = FeatureStore(platform, data)
    yield Modes(request.param, store, data)
    store.close()
    platform.close()


def applied(mode: Modes) -> FeatureBackend:
    """Ingest ``transactions`` and apply ``DEFINITIONS``."""
    mode.data.ingest(transactions(), "transactions")
    mode.features.apply(DEFINITIONS)
    return mode.features


def changed(document: str, **view: Any) -> dict[str, Any]:
    """``document`` parsed, with the first view's fields replaced by ``view``."""
    parsed = yaml.safe_load(document)
    parsed["feature_views"][0].update(view)
    return dict(parsed)


# -- definitions ----------------------------------------------------------------------------------


def test_applying_the_same_yaml_twice_changes_nothing_the_second_time(mode: Modes) -> None:
    mode.data.ingest(transactions(), "transactions")
    first = mode.features.apply(DEFINITIONS)
    again = mode.features.apply(DEFINITIONS)

    labels = ("entity:customer", "feature_view:customer_stats", "feature_service:churn")
    assert (first.created, first.updated, first.unchanged) == (labels, (), ())
    assert (again.created, again.updated, again.unchanged) == ((), (), labels)
    listed = mode.features.list_definitions()
    assert sorted((d.kind, d.name, d.version) for d in listed) == [
        ("entity", "customer", 1),
        ("feature_service", "churn", 1),
        ("feature_view", "customer_stats", 1),
    ]
    assert [d.name for d in mode.features.list_definitions("entity")] == ["customer"]
    view = mode.features.get_definition("feature_view", "customer_stats")
    assert view.spec["ttl"] == 30 * 86_400
    assert [f["name"] for f in view.spec["features"]] == ["spend", "orders"]
    assert view.derived["dataset"] == "transactions" and view.derived["region"]
    assert view.derived["pii"] == {}
    assert view.created_by


def test_a_changed_feature_is_a_new_version_and_the_old_one_stays_readable(mode: Modes) -> None:
    applied(mode)
    features = [
        {"name": "spend", "dtype": "float64", "description": "30-day spend"},
        {"name": "orders", "dtype": "int64"},
    ]
    report = mode.features.apply(changed(DEFINITIONS, ttl="7d", features=features))

    assert report.updated == ("feature_view:customer_stats",)
    assert report.unchanged == ("entity:customer", "feature_service:churn") and report.created == ()
    latest = mode.features.get_definition("feature_view", "customer_stats")
    assert latest.version == 2 and latest.spec["ttl"] == 7 * 86_400
    assert latest.spec["features"][0]["description"] == "30-day spend"
    old = mode.features.get_definition("feature_view", "customer_stats", 1)
    assert old.spec["ttl"] == 30 * 86_400 and old.digest != latest.digest
    history = mode.features.definition_history("feature_view", "customer_stats")
    assert [(d.version, d.digest) for d in history] == [(1, old.digest), (2, latest.digest)]
    with pytest.raises(NotFound):
        mode.features.get_definition("feature_view", "customer_stats", 3)


def test_definitions_given_as_objects_are_applied_like_yaml(mode: Modes) -> None:
    mode.data.ingest(transactions(), "transactions")
    view = FeatureView(
        "customer_stats", ("customer",), DatasetSource("transactions"), "event_timestamp",
        (Feature("spend"), Feature("orders", "int64")), ttl=timedelta(days=30),
    )  # fmt: skip
    report = mode.features.apply([Entity("customer", ("customer_id",), "a paying customer"), view])
    assert report.created == ("entity:customer", "feature_view:customer_stats")
    again = mode.features.apply(yaml.safe_load(DEFINITIONS))
    assert again.unchanged == ("entity:customer", "feature_view:customer_stats")
    assert again.created == ("feature_service:churn",)


BAD_DEFINITIONS = [
    pytest.param({"entitees": []}, InvalidInput, "entitees", id="unknown-section"),
    pytest.param(
        changed(DEFINITIONS, ttl="abc"), InvalidInput, "feature_view 'customer_stats': ttl", id="bad-ttl"
    ),
    pytest.param(changed(DEFINITIONS, entities=["merchant"]), NotFound, "entities", id="unknown-entity"),
    pytest.param(
        changed(DEFINITIONS, features=[{"name": "spend", "dtype": "int64"}, ORDERS]),
        InvalidInput,
        "dtype",
        id="type-mismatch",
    ),
    pytest.param(
        changed(DEFINITIONS, features=[{"name": "spend"}, ORDERS, {"name": "refunds"}]),
        InvalidInput,
        "features",
        id="missing-column",
    ),
    pytest.param(
        changed(DEFINITIONS, source={"dataset": "nothing"}), NotFound, "source", id="unknown-dataset"
    ),
    pytest.param(
        {
            **yaml.safe_load(DEFINITIONS),
            "feature_services": [{"name": "churn", "features": ["customer_stats:x"]}],
        },
        NotFound,
        "features",
        id="unknown-feature",
    ),
    pytest.param("entities: [", InvalidInput, "definitions", id="not-yaml"),
]


@pytest.mark.parametrize(("document", "error", "field"), BAD_DEFINITIONS)
def test_a_bad_definition_names_its_field_and_nothing_is_stored(
    mode: Modes, document: Any, error: type[Exception], field: str
) -> None:
    mode.data.ingest(transactions(), "transactions")
    with pytest.raises(error) as raised:
        mode.features.apply(document)
    assert raised.value.details["field"] == field  # type: ignore[attr-defined]
    assert mode.features.list_definitions() == []


def test_the_type_mismatch_names_the_feature_and_both_types(mode: Modes) -> None:
    mode.data.ingest(transactions(), "transactions")
    with pytest.raises(InvalidInput) as raised:
        mode.features.apply(changed(DEFINITIONS, features=[{"name": "spend", "dtype": "string"}, ORDERS]))
    assert raised.value.details == {"field": "dtype", "feature": "spend", "actual": "double"}
    assert "'spend' is declared string" in raised.value.message


def test_unknown_definitions_and_kinds_are_refused(mode: Modes) -> None:
    applied(mode)
    with pytest.raises(NotFound):
        mode.features.get_definition("feature_view", "nothing")
    with pytest.raises(NotFound):
        mode.features.definition_history("entity", "nothing")
    with pytest.raises(InvalidInput) as raised:
        mode.features.get_definition("table", "customer")
    assert raised.value.details["field"] == "kind"
    with pytest.raises(InvalidInput):
        mode.features.list_definitions("table")


def test_derived_pii_tags_name_the_personal_feature(mode: Modes) -> None:
    applied(mode)
    mode.data.ingest(profiles(), "profiles")
    mode.features.apply(PROFILE)
    view = mode.features.get_definition("feature_view", "profile")
    assert list(view.derived["pii"]) == ["email"] and view.derived["pii"]["email"]


# -- training sets --------------------------------------------------------------------------------


def test_a_training_set_is_point_in_time_correct_and_keeps_every_entity_row(mode: Modes) -> None:
    features = applied(mode)
    table = features.get_historical_features(entity_rows(), ["customer_stats:spend", "customer_stats:orders"])

    assert table.num_rows == 5
    assert table.column("customer_id").to_pylist() == [1, 1, 2, 3, 1]
    assert table.column("label").to_pylist() == [0, 1, 0, 1, 1]
    assert table.column("spend").to_pylist() == [None, 20.0, 7.0, None, 30.0]
    assert table.column("orders").to_pylist() == [None, 2, 4, None, 3]
    assert table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("orders").type == pa.int64()


def test_a_service_name_and_full_names_select_the_same_values(mode: Modes) -> None:
    features = applied(mode)
    by_service = features.get_historical_features(entity_rows(), "churn", full_feature_names=True)
    by_view = features.get_historical_features(entity_rows().to_pandas(), ["customer_stats"])

    assert by_service.column("customer_stats__spend").to_pylist() == by_view.column("spend").to_pylist()
    assert by_service.column("customer_stats__orders").to_pylist() == [None, 2, 4, None, 3]
    with pytest.raises(NotFound):
        features.get_historical_features(entity_rows(), "no_such_service")
    with pytest.raises(NotFound):
        features.get_historical_features(entity_rows(), ["customer_stats:refunds"])
    with pytest.raises(InvalidInput):
        features.get_historical_features(entity_rows(), [])
    with pytest.raises(InvalidInput):
        features.get_historical_features(entity_rows().drop_columns(["customer_id"]), "churn")


def test_a_training_set_saved_as_a_dataset_becomes_a_version(mode: Modes) -> None:
    features = applied(mode)
    table = features.get_historical_features(entity_rows(), "churn", save_as="churn_training")
    version = mode.data.get_version("churn_training")
    assert version.rows == 5 and version.source["kind"] == "features"
    assert version.source["features"] == ["customer_stats:spend", "customer_stats:orders"]
    assert mode.data.read_table(version).column("spend").to_pylist() == table.column("spend").to_pylist()


# -- online ---------------------------------------------------------------------------------------


def test_an_unknown_entity_reads_as_nulls_with_not_found(mode: Modes) -> None:
    features = applied(mode)
    before = features.get_online_features({"customer_id": [1, 999]}, "churn")
    assert before.to_dict() == {"customer_id": [1, 999], "spend": [None, None], "orders": [None, None]}
    assert before.statuses == {"customer_stats": [STATUS_NOT_FOUND, STATUS_NOT_FOUND]}

    [run] = features.materialize()
    assert (run.view, run.entities) == ("customer_stats", 2)
    after = features.get_online_features(
        [{"customer_id": 2}, {"customer_id": 999}, {"customer_id": 1}], "churn"
    )
    assert after.to_dict() == {"customer_id": [2, 999, 1], "spend": [7.0, None, 30.0], "orders": [4, None, 3]}
    assert after.statuses == {"customer_stats": [STATUS_PRESENT, STATUS_NOT_FOUND, STATUS_PRESENT]}
    full = features.get_online_features(
        {"customer_id": [1]}, ["customer_stats:spend"], full_feature_names=True
    )
    assert full.to_dict() == {"customer_id": [1], "customer_stats__spend": [30.0]}
    with pytest.raises(InvalidInput):
        features.get_online_features({"user_id": [1]}, "churn")
    with pytest.raises(NotFound):
        features.get_online_features({"customer_id": [1]}, ["nothing:spend"])


def test_materialize_continues_where_the_last_run_ended_and_runs_are_listed(mode: Modes) -> None:
    features = applied(mode)
    [first] = features.materialize(["customer_stats"])
    [second] = features.materialize()

    assert first.start == datetime.fromtimestamp(0, UTC) and first.rows == 2
    # The store keeps times in milliseconds: the next window starts where the last one was recorded.
    assert abs(second.start - first.end) < timedelta(milliseconds=1)
    assert second.rows == 0 and second.end >= first.end
    listed = [(r.view, r.rows, r.entities) for r in features.list_materializations()]
    assert listed == [("customer_stats", 0, 0), ("customer_stats", 2, 2)]
    assert len(features.list_materializations("customer_stats")) == 2
    assert features.list_materializations("other") == []
    window = features.materialize(["customer_stats"], start=day(4), end=day(6))
    assert window[0].rows == 1 and (window[0].start, window[0].end) == (day(4), day(6))
    with pytest.raises(InvalidInput) as raised:
        features.materialize(["customer_stats"], start=day(6), end=day(6))
    assert raised.value.details["field"] == "start"
    with pytest.raises(NotFound):
        features.materialize(["nothing"])


def test_pushed_rows_are_served_unless_older_and_bad_rows_are_refused(mode: Modes) -> None:
    features = applied(mode)
    features.materialize()
    fresh = datetime.now(UTC) - timedelta(minutes=1)
    rows = {"customer_id": [2], "event_timestamp": [fresh], "spend": [99.5], "orders": [5]}
    assert features.push("customer_stats", rows) == 1
    stale = {"customer_id": [2], "event_timestamp": [day(0)], "spend": [1.0], "orders": [1]}
    assert features.push("customer_stats", stale) == 0

    found = features.get_online_features({"customer_id": [2]}, "churn")
    assert found.to_dict()["spend"] == [99.5] and found.to_dict()["orders"] == [5]
    with pytest.raises(InvalidInput) as raised:
        features.push("customer_stats", {"customer_id": [2], "event_timestamp": [fresh], "spend": [1.0]})
    assert raised.value.details["feature"] == "orders"
    with pytest.raises(InvalidInput):
        features.push("customer_stats", {**rows, "spend": ["lots"]})
    with pytest.raises(NotFound):
        features.push("nothing", rows)


def test_skew_is_clean_after_materialize_and_names_what_a_push_changed(mode: Modes) -> None:
    features = applied(mode)
    features.materialize()
    clean = features.skew("customer_stats")
    assert clean.consistent and (clean.sampled, clean.compared, clean.missing_online) == (2, 4, 0)

    fresh = datetime.now(UTC) - timedelta(minutes=1)
    features.push(
        "customer_stats", {"customer_id": [2], "event_timestamp": [fresh], "spend": [99.5], "orders": [4]}
    )
    report = features.skew("customer_stats", sample=10)
    assert not report.consistent
    assert [dict(m) for m in report.mismatches] == [
        {"entity": 2, "feature": "spend", "offline": 7.0, "online": 99.5}
    ]
    with pytest.raises(InvalidInput):
        features.skew("customer_stats", sample=0)
    with pytest.raises(NotFound):
        features.skew("nothing")


def test_skew_counts_entities_missing_online(mode: Modes) -> None:
    features = applied(mode)
    report = features.skew("customer_stats")
    assert not report.consistent and report.missing_online == 2 and report.compared == 0


def test_personal_features_are_read_online_by_an_admin(mode: Modes) -> None:
    applied(mode)
    mode.data.ingest(profiles(), "profiles")
    mode.features.apply(PROFILE)
    mode.features.materialize(["profile"])
    found = mode.features.get_online_features({"customer_id": [2]}, ["profile:email"])
    assert found.to_dict()["email"] == ["bo@example.org"]


# -- streams --------------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_stream_fed_view_is_drained_into_the_online_store(
    mode: Modes,
    redis_keys: RedisKeys,  # noqa: F811
) -> None:
    import redis

    stream = f"{redis_keys.prefix}clicks"
    history = pa.table(
        {
            "user_id": ["u1"],
            "event_timestamp": pa.array([day(1)], pa.timestamp("us", tz="UTC")),
            "clicks": pa.array([1], pa.int64()),
        }
    )
    mode.data.ingest(history, "clicks_history")
    mode.features.apply(
        {
            "entities": [{"name": "user", "join_keys": ["user_id"]}],
            "feature_views": [
                {
                    "name": "clicks",
                    "entities": ["user"],
                    "source": {
                        "stream": stream,
                        "url": redis_keys.url,
                        "history": {"dataset": "clicks_history"},
                    },
                    "timestamp": "event_timestamp",
                    "features": [{"name": "clicks", "dtype": "int64"}],
                }
            ],
        }
    )
    now = datetime.now(UTC)
    with redis.Redis.from_url(redis_keys.url) as client:
        for user, ago, clicks in (("u1", 60, "5"), ("u2", 30, "8")):
            when = (now - timedelta(seconds=ago)).isoformat()
            client.xadd(stream, {"user_id": user, "event_timestamp": when, "clicks": clicks})

    assert mode.features.consume_stream("clicks") == 2
    assert mode.features.consume_stream("clicks") == 0  # acknowledged: not delivered again
    found = mode.features.get_online_features({"user_id": ["u1", "u2", "u3"]}, ["clicks"])
    assert found.to_dict()["clicks"] == [5, 8, None]
    assert found.statuses["clicks"] == [STATUS_PRESENT, STATUS_PRESENT, STATUS_NOT_FOUND]
    with pytest.raises(InvalidInput):
        applied(mode).consume_stream("customer_stats")


# -- embedded and remote side by side -------------------------------------------------------------


@dataclass
class SideBySide:
    """One home, served over HTTP and opened directly."""

    remote: FeatureBackend
    embedded: FeatureBackend


@pytest.fixture
def side_by_side(tmp_path: Path) -> Iterator[SideBySide]:
    """The remote store of a server on a home and the embedded store on the same home, with
    ``transactions`` ingested and ``DEFINITIONS`` applied through the server."""
    from steward.client.data import RemoteDataService
    from steward.client.features import RemoteFeatureStore
    from steward.client.http import HttpClient
    from steward.data.service import DataService
    from steward.features.service import FeatureStore

    settings = load_settings(home=tmp_path / "shared")
    app = create_app(settings)
    platform = Platform.from_settings(settings)
    embedded = FeatureStore(platform, DataService(platform))
    try:
        with running_server(app) as url, HttpClient(url) as http:
            remote = RemoteFeatureStore(http)
            RemoteDataService(http).ingest(transactions(), "transactions")
            remote.apply(DEFINITIONS)
            yield SideBySide(remote, embedded)
    finally:
        embedded.close()
        platform.close()


def test_a_training_set_over_http_equals_the_embedded_one(side_by_side: SideBySide) -> None:
    rows = pa.concat_tables([entity_rows()] * 400)  # several record batches each way
    over_http = side_by_side.remote.get_historical_features(rows, "churn", full_feature_names=True)
    direct = side_by_side.embedded.get_historical_features(rows, "churn", full_feature_names=True)
    assert over_http.num_rows == 2000
    assert over_http.schema == direct.schema
    assert over_http.equals(direct)


def test_an_online_read_over_http_equals_the_embedded_one(side_by_side: SideBySide) -> None:
    side_by_side.remote.materialize()
    rows = {"customer_id": [1, 2, 3]}
    assert side_by_side.remote.get_online_features(
        rows, "churn"
    ) == side_by_side.embedded.get_online_features(rows, "churn")
