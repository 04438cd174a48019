"""The feature store end to end, embedded: apply definitions against real datasets, build training sets,
materialise, read online, push, consume a stream, check skew — on SQLite and PostgreSQL metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

from steward.config import load_settings
from steward.data.service import DataService
from steward.errors import Forbidden, InvalidInput, NotFound
from steward.features import DatasetSource, Entity, Feature, FeatureService, FeatureView, SqlSource
from steward.features.models import STATUS_NOT_FOUND, STATUS_PRESENT
from steward.features.service import FeatureStore
from steward.governance.context import Identity, acting_as
from steward.store.platform import Platform
from steward.store.tables import audit_log, lineage_edges

T0 = (datetime.now(UTC) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
"""Twenty days ago: the rows of ``spend_table`` are within the view's 30-day TTL of now."""


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    """A feature store on SQLite or PostgreSQL metadata, an embedded SQLite online store, blobs in tmp."""
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    features = FeatureStore(platform, DataService(platform))
    yield features
    features.close()
    platform.close()


def spend_table() -> pa.Table:
    """Customer 1 spends 10 on day 1, 20 on day 5, 30 on day 9; customer 2 spends 7 on day 2."""
    return pa.table(
        {
            "customer_id": pa.array([1, 1, 1, 2], pa.int64()),
            "event_timestamp": pa.array([day(1), day(5), day(9), day(2)], pa.timestamp("us", tz="UTC")),
            "spend": pa.array([10.0, 20.0, 30.0, 7.0]),
            "visits": pa.array([1, 2, 3, 4], pa.int64()),
        }
    )


CUSTOMER = Entity("customer", ("customer_id",))
SPEND = FeatureView(
    name="spend",
    entities=("customer",),
    source=DatasetSource("spend_daily"),
    timestamp="event_timestamp",
    features=(Feature("spend"), Feature("visits", "int64")),
    ttl=timedelta(days=30),
)


def applied(store: FeatureStore) -> FeatureStore:
    store.data.ingest(spend_table(), "spend_daily")
    store.apply([CUSTOMER, SPEND, FeatureService("churn", ("spend:spend",))])
    return store


def test_apply_versions_only_what_changed_and_keeps_history(store: FeatureStore) -> None:
    store.data.ingest(spend_table(), "spend_daily")
    first = store.apply([CUSTOMER, SPEND])
    assert first.created == ("entity:customer", "feature_view:spend") and not first.updated
    again = store.apply([CUSTOMER, SPEND])
    assert again.unchanged == ("entity:customer", "feature_view:spend") and not again.created
    changed = FeatureView(**{**SPEND.__dict__, "ttl": timedelta(days=7)})
    third = store.apply([changed])
    assert third.updated == ("feature_view:spend",)
    history = store.definition_history("feature_view", "spend")
    assert [d.version for d in history] == [1, 2]
    assert history[0].spec["ttl"] == 30 * 86_400 and history[1].spec["ttl"] == 7 * 86_400
    assert store.get_definition("feature_view", "spend", 1).spec["ttl"] == 30 * 86_400
    derived = store.get_definition("feature_view", "spend").derived
    assert derived["dataset"] == "spend_daily" and derived["region"]
    assert [d.name for d in store.list_definitions("entity")] == ["customer"]


def test_apply_from_yaml_text(store: FeatureStore) -> None:
    store.data.ingest(spend_table(), "spend_daily")
    report = store.apply(
        """
entities:
  - {name: customer, join_keys: [customer_id]}
feature_views:
  - name: spend
    entities: [customer]
    source: {dataset: spend_daily}
    timestamp: event_timestamp
    ttl: 30d
    features: [{name: spend, dtype: float64}]
feature_services:
  - {name: churn, features: ["spend:spend"]}
"""
    )
    assert report.created == ("entity:customer", "feature_view:spend", "feature_service:churn")


@pytest.mark.parametrize(
    ("bad", "error", "named"),
    [
        (FeatureView(**{**SPEND.__dict__, "entities": ("nobody",)}), NotFound, "nobody"),
        (FeatureView(**{**SPEND.__dict__, "features": (Feature("missing"),)}), InvalidInput, "missing"),
        (FeatureView(**{**SPEND.__dict__, "features": (Feature("spend", "string"),)}), InvalidInput, "spend"),
        (FeatureView(**{**SPEND.__dict__, "features": (Feature("spend", "int64"),)}), InvalidInput, "spend"),
        (FeatureView(**{**SPEND.__dict__, "source": DatasetSource("nothing")}), NotFound, "nothing"),
        (FeatureService("svc", ("spend:nope",)), NotFound, "nope"),
    ],
)
def test_bad_definitions_name_the_problem_and_store_nothing(
    store: FeatureStore, bad: object, error: type[Exception], named: str
) -> None:
    store.data.ingest(spend_table(), "spend_daily")
    batch = [CUSTOMER, bad] if isinstance(bad, FeatureView) else [CUSTOMER, SPEND, bad]
    with pytest.raises(error, match=named):
        store.apply(batch)  # type: ignore[list-item]
    assert store.list_definitions() == []


def test_a_ttl_that_is_not_a_duration_is_refused(store: FeatureStore) -> None:
    document = {"entities": [{"name": "customer", "join_keys": ["customer_id"]}],
                "feature_views": [{**SPEND.to_spec(), "ttl": "soon"}]}  # fmt: skip
    with pytest.raises(InvalidInput, match="ttl 'soon' is not a duration"):
        store.apply(document)


def test_training_set_is_point_in_time_correct_keeps_every_row_and_records_lineage(
    store: FeatureStore,
) -> None:
    applied(store)
    entities = pa.table(
        {
            "customer_id": [1, 1, 1, 2, 3, 1],
            "event_timestamp": pa.array(
                [day(0), day(4), day(6), day(3), day(3), day(60)], pa.timestamp("us", tz="UTC")
            ),
            "label": [0, 1, 0, 1, 0, 1],
        }
    )
    table = store.get_historical_features(entities, "churn", save_as="churn_training")
    assert table.num_rows == entities.num_rows
    assert table.column("label").to_pylist() == [0, 1, 0, 1, 0, 1]
    # before the first event: null; day 4 sees day 1 (not day 5, the future); past the TTL: null
    assert table.column("spend").to_pylist() == [None, 10.0, 20.0, 7.0, None, None]
    saved = store.data.get_version("churn_training")
    source = store.data.get_version("spend_daily")
    with store.metadata.read() as conn:
        edges = conn.execute(
            select(lineage_edges.c.source_id).where(
                lineage_edges.c.target_id == saved.id, lineage_edges.c.relation == "features_from"
            )
        ).all()
    assert [e.source_id for e in edges] == [source.id]


def test_materialize_is_incremental_and_online_reads_flag_unknown_entities(store: FeatureStore) -> None:
    applied(store)
    first = store.materialize(end=day(6))
    assert [(r.view, r.entities) for r in first] == [("spend", 2)]
    online = store.get_online_features({"customer_id": [1, 2, 99]}, ["spend:spend", "spend:visits"])
    assert online.columns["spend"][:2] == [20.0, 7.0] and online.columns["spend"][2] is None
    assert online.statuses["spend"] == [STATUS_PRESENT, STATUS_PRESENT, STATUS_NOT_FOUND]
    second = store.materialize(end=day(10))
    assert second[0].start == day(6) and second[0].rows == 1
    assert store.get_online_features({"customer_id": [1]}, "churn").columns["spend"] == [30.0]
    assert [r.end for r in store.list_materializations("spend")] == [day(10), day(6)]
    with pytest.raises(InvalidInput, match="not before end"):
        store.materialize(end=day(8))


def test_push_writes_fresh_values_and_an_old_materialisation_does_not_overwrite_them(
    store: FeatureStore,
) -> None:
    applied(store)
    now = datetime.now(UTC)
    pushed = store.push("spend", [{"customer_id": 1, "event_timestamp": now, "spend": 99.0, "visits": 9}])
    assert pushed == 1
    store.materialize(end=day(10))
    assert store.get_online_features({"customer_id": [1]}, ["spend:spend"]).columns["spend"] == [99.0]
    with pytest.raises(InvalidInput, match="visits"):
        store.push("spend", [{"customer_id": 1, "event_timestamp": now, "spend": 1.0, "visits": "many"}])
    with pytest.raises(InvalidInput, match="event_timestamp"):
        store.push("spend", [{"customer_id": 1, "spend": 1.0, "visits": 1}])


def test_skew_finds_values_that_differ_between_offline_and_online(store: FeatureStore) -> None:
    applied(store)
    store.materialize(end=datetime.now(UTC))
    report = store.skew("spend", sample=10)
    assert report.consistent and report.sampled == 2 and report.compared == 4
    store.push("spend", [{"customer_id": 2, "event_timestamp": day(3), "spend": 8.0, "visits": 4}])
    skewed = store.skew("spend")
    assert not skewed.consistent
    assert [(m["entity"], m["feature"], m["offline"], m["online"]) for m in skewed.mismatches] == [
        (2, "spend", 7.0, 8.0)
    ]


def test_reading_pii_features_needs_read_pii_and_is_audited(store: FeatureStore) -> None:
    emails = pa.table(
        {
            "customer_id": [1, 2],
            "event_timestamp": pa.array([day(1), day(1)], pa.timestamp("us", tz="UTC")),
            "email": ["ann@example.com", "bob@example.org"],
        }
    )
    store.data.ingest(emails, "contacts")
    view = FeatureView("contact", ("customer",), DatasetSource("contacts"), "event_timestamp",
                       (Feature("email", "string"),))  # fmt: skip
    store.apply([CUSTOMER, view])
    assert store.get_definition("feature_view", "contact").derived["pii"] == {"email": ["email"]}
    store.materialize(end=day(2))
    viewer = Identity("vic", "user", frozenset(), {store.platform.project: frozenset({"data-scientist"})})
    with acting_as(viewer, store.platform.project), pytest.raises(Forbidden, match="data:read_pii"):
        store.get_online_features({"customer_id": [1]}, ["contact:email"])
    assert store.get_online_features({"customer_id": [1]}, ["contact:email"]).columns["email"] == [
        "ann@example.com"
    ]
    with store.metadata.read() as conn:
        outcomes = [
            r.outcome
            for r in conn.execute(select(audit_log).where(audit_log.c.action == "features.read_pii"))
        ]
    assert outcomes == ["denied", "ok"]


def test_a_viewer_can_read_definitions_but_not_apply(store: FeatureStore) -> None:
    applied(store)
    viewer = Identity("vic", "user", frozenset(), {store.platform.project: frozenset({"viewer"})})
    with acting_as(viewer, store.platform.project):
        assert [d.name for d in store.list_definitions("feature_view")] == ["spend"]
        with pytest.raises(Forbidden, match="features:write"):
            store.apply([CUSTOMER])
        with pytest.raises(Forbidden, match="features:write"):
            store.materialize()


@pytest.mark.postgres
def test_a_sql_source_takes_its_password_from_the_environment_and_never_shows_one(
    store: FeatureStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = postgres_url.split("@", 1)[1].split("?", 1)[0]  # 127.0.0.1:5432/test (trust authentication)
    query = (
        "SELECT 1 AS customer_id, TIMESTAMPTZ '2024-05-02 00:00:00+00' AS event_timestamp, "
        "CAST(5.0 AS DOUBLE PRECISION) AS spend"
    )
    view = FeatureView(
        name="sql_spend", entities=("customer",), timestamp="event_timestamp", features=(Feature("spend"),),
        source=SqlSource(query, f"postgresql://postgres:${{STEWARD_TEST_PG_SECRET}}@{host}"),
    )  # fmt: skip
    literal = FeatureView(
        name="sql_literal", entities=("customer",), timestamp="event_timestamp", features=(Feature("spend"),),
        source=SqlSource(query, f"postgresql://postgres:hunter2-literal@{host}"),
    )  # fmt: skip
    store.apply([CUSTOMER, view, literal])
    entities = pa.table(
        {"customer_id": [1], "event_timestamp": pa.array([day(5)], pa.timestamp("us", tz="UTC"))}
    )

    with pytest.raises(InvalidInput, match="STEWARD_TEST_PG_SECRET") as info:
        store.get_historical_features(entities, ["sql_spend:spend"])
    assert info.value.details["field"] == "source.url"

    monkeypatch.setenv("STEWARD_TEST_PG_SECRET", "s3cret-from-env")
    assert store.get_historical_features(entities, ["sql_spend:spend"]).column("spend").to_pylist() == [5.0]
    shown = json.dumps([d.to_json() for d in store.list_definitions()])
    assert "s3cret-from-env" not in shown and "hunter2-literal" not in shown
    assert shown.count("postgres:***@") == 2  # the password's place, whether a variable or written out
    assert store.get_historical_features(entities, ["sql_literal:spend"]).num_rows == 1  # still connects
