"""Endpoints behind a feature service, through a real server: requests carry only the entity keys and
the server reads the model's inputs from the online store (embedded SQLite) before predicting.

``feature_home`` builds a home with a dataset of customer statistics, its entity, view and service
applied and materialised, and two models registered on those features: ``churn`` (a logistic regression
whose signature requires every feature) and ``churn_opt`` (an imputing pipeline whose signature marks
its features optional).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import steward
from steward.config import Settings, load_settings
from steward.core.signature import ColumnSpec, Schema, Signature
from steward.data.service import DataService
from steward.errors import InvalidInput, NotFound
from steward.features import DatasetSource, Entity, Feature, FeatureService, FeatureView
from steward.features.service import FeatureStore
from steward.registry.service import RegistryService
from steward.serving.app import ServingApp
from steward.serving.log_store import LogStore, read_predictions
from steward.serving.server import ServeOptions, build_app, check_source
from steward.serving.sources import ConfigSource
from steward.store.platform import Platform
from tests.services import free_port, port_open, service_unavailable
from tests.serving.conftest import register, serving, wait_for

FEATURES = ("spend", "visits", "tenure")
SERVICE = "churn_features"
UNKNOWN = 999


@dataclass
class FeatureHome:
    """A home whose models read their inputs from feature service ``churn_features``.

    Attributes:
        home: The Steward home.
        settings: Settings on it.
        ids: The customers the online store holds.
        lr: The estimator behind ``churn`` (spend, visits, tenure; every one required).
        imputing: The pipeline behind ``churn_opt`` (spend, tenure; optional, imputed).
        version: The version of ``churn`` (alias ``production``).
    """

    home: Path
    settings: Settings
    ids: list[int]
    lr: LogisticRegression
    imputing: Pipeline
    version: str

    def online(self, ids: list[int]) -> pd.DataFrame:
        """The features the online store holds for ``ids`` (read through the feature store)."""
        platform = Platform.from_settings(self.settings)
        store = FeatureStore(platform)
        try:
            found = store.get_online_features({"customer_id": ids}, SERVICE)
        finally:
            store.close()
            platform.close()
        return pd.DataFrame({name: found.columns[name] for name in FEATURES})


def customer_stats(n: int = 40) -> pa.Table:
    """Two rows per customer, a week apart: the online store must serve the later one."""
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    ids = np.repeat(np.arange(1, n + 1, dtype=np.int64), 2)
    stamps = [now - timedelta(days=8), now - timedelta(days=1)] * n
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "spend": pa.array(rng.gamma(2.0, 50.0, 2 * n)),
            "visits": pa.array(rng.integers(0, 30, 2 * n), pa.int64()),
            "tenure": pa.array(rng.uniform(1.0, 60.0, 2 * n)),
        }
    )


def define_features(
    platform: Platform, table: pa.Table | None = None, view: str = "customer_stats"
) -> FeatureStore:
    """Ingest the statistics and apply entity ``customer``, a view of them (``view``) and the service."""
    store = FeatureStore(platform, DataService(platform))
    store.data.ingest(table if table is not None else customer_stats(), "customer_stats")
    stats = FeatureView(
        view, ("customer",), DatasetSource("customer_stats"), "event_timestamp",
        (Feature("spend"), Feature("visits", "int64"), Feature("tenure")), ttl=timedelta(days=30),
    )  # fmt: skip
    store.apply([Entity("customer", ("customer_id",)), stats, FeatureService(SERVICE, (view,))])
    return store


def make_feature_home(home: Path, view: str = "customer_stats", **settings_: Any) -> FeatureHome:
    """Build the home described in the module docstring (features materialised online); ``settings_``
    go to its settings (``online_store`` …)."""
    settings = load_settings(home=home, **settings_)
    platform = Platform.from_settings(settings)
    table = customer_stats()
    store = define_features(platform, table, view)
    store.materialize()
    store.close()
    platform.close()
    latest = table.to_pandas().groupby("customer_id").last()
    frame = latest[list(FEATURES)]
    y = (frame["spend"] / 100 + frame["visits"] / 10 - frame["tenure"] / 20 > 1.2).astype(np.int64)
    lr = LogisticRegression(max_iter=10_000).fit(frame, y)
    version = register(home, "churn", lr, steward.infer_signature(frame, y), alias="production")
    two = frame[["spend", "tenure"]]
    imputing = Pipeline([("impute", SimpleImputer()), ("lr", LogisticRegression(max_iter=10_000))]).fit(
        two, y
    )
    optional = Signature(Schema(tuple(ColumnSpec(c, "float64", optional=True) for c in two.columns)))
    register(home, "churn_opt", imputing, optional, alias="production")
    return FeatureHome(home, settings, [int(i) for i in latest.index], lr, imputing, version)


@pytest.fixture(scope="module")
def features_home(tmp_path_factory: pytest.TempPathFactory) -> FeatureHome:
    """The module's feature home."""
    return make_feature_home(tmp_path_factory.mktemp("features") / "home")


def feature_app(home: FeatureHome, settings: Settings | None = None, **options: Any) -> ServingApp:
    """A server of ``churn`` and ``opt`` (``churn_opt``) behind the feature service."""
    options.setdefault("log_sample_rate", 0.0)
    options.setdefault("references", ("churn@production", "opt=churn_opt@production"))
    return build_app(ServeOptions(feature_service=SERVICE, **options), settings or home.settings)


@pytest.fixture(scope="module")
def url(features_home: FeatureHome) -> Iterator[str]:
    """A server of the feature home's endpoints, for the module."""
    with serving(feature_app(features_home)) as base:
        yield base


def predict(url: str, body: dict[str, Any], endpoint: str = "churn") -> httpx.Response:
    return httpx.post(f"{url}/predict/{endpoint}", json=body, timeout=30)


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one series of ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_requests_with_only_entity_keys_get_the_predictions_of_the_online_features(
    url: str, features_home: FeatureHome
) -> None:
    ids = features_home.ids[:12]
    expected = features_home.lr.predict(features_home.online(ids)).tolist()
    assert len(set(expected)) == 2  # both classes: a wrong feature would show
    bodies: list[dict[str, Any]] = [
        {"records": [{"customer_id": i} for i in ids]},
        {"columns": {"customer_id": ids}},
        {"instances": [{"customer_id": i} for i in ids]},
    ]
    for body in bodies:
        answer = predict(url, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected
    one = predict(url, {"columns": {"customer_id": ids[3]}})
    assert one.json()["predictions"] == expected[3:4]


def test_the_online_store_serves_the_latest_row_of_each_entity(features_home: FeatureHome) -> None:
    latest = customer_stats().to_pandas().groupby("customer_id").last()
    read = features_home.online(features_home.ids[:5])
    assert read["spend"].tolist() == latest["spend"].iloc[:5].tolist()


def test_inference_protocol_requests_carry_entity_keys_as_tensors(
    url: str, features_home: FeatureHome
) -> None:
    ids = features_home.ids[:6]
    expected = features_home.lr.predict(features_home.online(ids)).tolist()
    body = {
        "id": "r-1",
        "inputs": [{"name": "customer_id", "shape": [6, 1], "datatype": "INT64", "data": ids}],
    }
    answer = httpx.post(f"{url}/v2/models/churn/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == expected
    given = {"name": "spend", "shape": [6], "datatype": "FP64", "data": [1e6] * 6}
    overridden = httpx.post(
        f"{url}/v2/models/churn/infer", json={"inputs": [body["inputs"][0], given]}, timeout=30
    )
    assert overridden.json()["outputs"][0]["data"] == [1] * 6
    metadata = httpx.get(f"{url}/v2/models/churn", timeout=30).json()
    assert metadata["feature_service"] == SERVICE


def test_a_value_the_request_gives_wins_over_the_store(url: str, features_home: FeatureHome) -> None:
    stored = features_home.online(features_home.ids)
    predicted = features_home.lr.predict(stored)
    row = int(np.flatnonzero(predicted == 0)[0])
    customer = features_home.ids[row]
    changed = stored.iloc[[row]].assign(spend=5000.0)
    assert features_home.lr.predict(changed).tolist() == [1]  # the override flips the answer
    answer = predict(
        url, {"records": [{"customer_id": customer, "spend": 5000.0}, {"customer_id": customer}]}
    )
    assert answer.json()["predictions"] == [1, 0]
    nulled = predict(url, {"records": [{"customer_id": customer, "spend": None}]})
    assert nulled.json()["predictions"] == [0]  # a null is not a value: the store's stands
    given = {"customer_id": UNKNOWN, "spend": 1.0, "visits": 2, "tenure": 3.0}  # nothing stored needed
    expected = features_home.lr.predict(pd.DataFrame([given])[list(FEATURES)]).tolist()
    assert predict(url, {"records": [given]}).json()["predictions"] == expected


def test_an_unknown_entity_is_refused_naming_the_feature_and_the_entity(
    url: str, features_home: FeatureHome
) -> None:
    before = metric(url, "steward_feature_entities_missing_total", endpoint="churn", status="NOT_FOUND")
    answer = predict(url, {"records": [{"customer_id": features_home.ids[0]}, {"customer_id": UNKNOWN}]})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["details"]["entity"] == {"customer_id": UNKNOWN}
    assert error["details"]["field"] == "spend" and error["details"]["row"] == 1
    assert error["details"]["status"] == "NOT_FOUND" and error["details"]["view"] == "customer_stats"
    assert "customer_id=999" in error["message"] and "'spend'" in error["message"]
    after = metric(url, "steward_feature_entities_missing_total", endpoint="churn", status="NOT_FOUND")
    assert after == before + 1


def test_a_signature_that_allows_nulls_predicts_for_an_unknown_entity(
    url: str, features_home: FeatureHome
) -> None:
    known = features_home.ids[0]
    answer = predict(url, {"records": [{"customer_id": UNKNOWN}, {"customer_id": known}]}, endpoint="opt")
    assert answer.status_code == 200, answer.text
    stored = features_home.online([known])
    frame = pd.DataFrame({"spend": [math.nan, stored["spend"][0]], "tenure": [math.nan, stored["tenure"][0]]})
    assert answer.json()["predictions"] == features_home.imputing.predict(frame).tolist()


def test_requests_without_the_entity_key_are_refused_and_counted(url: str) -> None:
    before = metric(url, "steward_feature_lookups_total", endpoint="churn", outcome="invalid")
    answer = predict(url, {"records": [{"customer_id": 1}, {"spend": 2.0}]})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["field"] == "customer_id"
    assert "row 1 has no entity key 'customer_id'" in answer.json()["error"]["message"]
    rows = predict(url, {"instances": [[1.0, 2, 3.0]]})
    assert rows.status_code == 422 and "name the entity keys" in rows.json()["error"]["message"]
    assert metric(url, "steward_feature_lookups_total", endpoint="churn", outcome="invalid") == before + 1
    ok = metric(url, "steward_feature_lookups_total", endpoint="churn", outcome="ok")
    assert predict(url, {"records": [{"customer_id": 1}]}).status_code == 200
    assert metric(url, "steward_feature_lookups_total", endpoint="churn", outcome="ok") == ok + 1


def test_a_failing_online_store_is_a_503_that_is_counted(features_home: FeatureHome) -> None:
    nowhere = load_settings(home=features_home.home, online_store="redis://127.0.0.1:1/0")
    with serving(feature_app(features_home, nowhere)) as base:
        answer = predict(base, {"records": [{"customer_id": features_home.ids[0]}]})
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["code"] == "feature_store_unavailable" and SERVICE in error["message"]
        assert metric(base, "steward_feature_lookups_total", endpoint="churn", outcome="error") == 1
        assert httpx.get(f"{base}/v2/health/ready", timeout=30).status_code == 200  # still serving


@pytest.mark.redis
def test_features_from_a_redis_online_store_are_read_off_the_event_loop(tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 6379):
        service_unavailable("redis", "nothing listens on 127.0.0.1:6379")
    from steward.features.online_redis import RedisOnlineStore

    url, view = "redis://127.0.0.1:6379/0", f"stats_{uuid.uuid4().hex[:12]}"  # keys of this test's own
    try:
        home = make_feature_home(tmp_path / "home", view=view, online_store=url)
        ids = home.ids[:8]
        expected = home.lr.predict(home.online(ids)).tolist()
        app = feature_app(home)
        assert app.features is not None and not app.features.inline
        with serving(app) as base:
            for _ in range(2):  # the first resolves the service's definitions, the second reuses them
                answer = predict(base, {"columns": {"customer_id": ids}})
                assert answer.json()["predictions"] == expected, answer.text
            refused = predict(base, {"records": [{"customer_id": UNKNOWN}]})
            assert refused.status_code == 422 and refused.json()["error"]["details"]["view"] == view
    finally:
        store = RedisOnlineStore(url)
        store.delete("default", view)
        store.close()


def test_the_prediction_log_records_what_the_model_saw_and_the_entity_keys(
    features_home: FeatureHome,
) -> None:
    ids = features_home.ids[20:23]
    with serving(
        feature_app(features_home, references=("logged=churn@production",), log_sample_rate=1.0)
    ) as base:
        answer = httpx.post(
            f"{base}/predict/logged",
            json={"records": [{"customer_id": ids[0], "spend": 7.5}, *({"customer_id": i} for i in ids[1:])]},
            headers={"x-request-id": "feature-log-1"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    rows = read_predictions(LogStore.from_settings(features_home.settings), "logged").to_pylist()
    mine = sorted((r for r in rows if r["request_id"] == "feature-log-1"), key=lambda r: r["row"])
    stored = features_home.online(ids)
    assert [r["in.customer_id"] for r in mine] == ids
    assert [r["in.spend"] for r in mine] == [7.5, *stored["spend"][1:]]
    assert [r["in.visits"] for r in mine] == stored["visits"].tolist()
    assert [r["out.prediction"] for r in mine] == answer.json()["predictions"]


def test_serving_checks_the_feature_service_before_it_starts(features_home: FeatureHome) -> None:
    known = ServeOptions(references=("churn@production",), feature_service=SERVICE)
    assert check_source(known, features_home.settings) == ["churn"]
    unknown = ServeOptions(references=("churn@production",), feature_service="nope")
    with pytest.raises(NotFound, match="nope"):
        check_source(unknown, features_home.settings)
    with pytest.raises(InvalidInput, match="--feature-service goes with model references") as refused:
        check_source(ServeOptions(config="x.yaml", feature_service=SERVICE), features_home.settings)
    assert refused.value.details["field"] == "feature_service"


def test_a_config_file_names_the_feature_service_of_an_endpoint(
    features_home: FeatureHome, tmp_path: Path
) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "endpoints:\n"
        "  plain: churn@production\n"
        f"  live: {{ref: churn@production, feature_service: {SERVICE}}}\n"
        "  split:\n"
        "    model: churn\n"
        f"    feature_service: {SERVICE}\n"
        "    arms: [{alias: production, role: stable, weight: 1}]\n"
    )
    platform = Platform.from_settings(features_home.settings)
    try:
        registry = RegistryService(platform)
        plans = {p.endpoint: p for p in ConfigSource(registry, config).plans()}
        assert {name: p.feature_service for name, p in plans.items()} == {
            "plain": None, "live": SERVICE, "split": SERVICE,
        }  # fmt: skip
        config.write_text("endpoints:\n  live: {ref: churn@production, feature_service: 'no good'}\n")
        with pytest.raises(InvalidInput) as bad:
            ConfigSource(registry, config)
        assert bad.value.details["field"] == "endpoints.live.feature_service"
    finally:
        platform.close()


def test_each_worker_process_reads_the_features_itself(features_home: FeatureHome, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    args = ["churn@production", "--feature-service", SERVICE, "--port", str(port), "--workers", "2",
            "--log-sample-rate", "0", "--log-level", "warning"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEWARD_", "PROMETHEUS_"))}
    env = {**env, "STEWARD_HOME": str(features_home.home), "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "steward.cli.serve", *args]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ids = features_home.ids[:16]
    expected = features_home.lr.predict(features_home.online(ids)).tolist()
    try:

        def loaded_twice() -> bool:
            try:
                text = httpx.get(f"{base}/metrics", timeout=5).text
            except httpx.HTTPError:
                return False
            return 'steward_model_version_loaded{model="churn",version="1.0.0"} 2.0' in text

        wait_for(lambda: server.poll() is None and loaded_twice(), timeout=90, what="both workers")
        for customer, wanted in zip(ids, expected, strict=True):  # a new connection each: both workers
            answer = httpx.post(
                f"{base}/predict/churn", json={"records": [{"customer_id": customer}]}, timeout=30
            )
            assert answer.json()["predictions"] == [wanted], answer.text
        assert metric(base, "steward_feature_lookups_total", endpoint="churn", outcome="ok") == len(ids)
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr.decode()
