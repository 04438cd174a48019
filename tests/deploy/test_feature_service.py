"""Endpoints that declare a feature service: stored and shown (embedded, over REST, in the CLI), checked
at creation and at update, and served — requests carrying only entity keys — by a server that follows the
endpoint, also when the feature service is given to it later."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from steward.deploy.models import Endpoint
from steward.deploy.service import DeployService
from steward.deploy.source import EndpointSource
from steward.errors import InvalidInput, NotFound
from steward.serving.server import ServeOptions, build_app
from steward.store.platform import Platform
from tests.deploy import test_service
from tests.deploy.conftest import open_deploy_env
from tests.deploy.test_cli import run
from tests.deploy.test_service import Contract
from tests.serving.conftest import serving, wait_for
from tests.serving.test_features import SERVICE, define_features, make_feature_home

contract = test_service.contract  # the deploy contract's fixture: embedded, PostgreSQL, remote


@pytest.fixture
def features(contract: Contract) -> Contract:
    """The deploy contract (churn 1.0.0-1.2.0) with the feature service ``churn_features`` defined."""
    define_features(contract.env.platform).close()
    return contract


def test_an_endpoint_stores_and_shows_its_feature_service(features: Contract) -> None:
    contract, deploy = features, features.deploy
    made = deploy.create_endpoint("churn", "churn", "1.0.0", feature_service=SERVICE)
    plain = deploy.create_endpoint("plain", "churn", "1.0.0")
    assert made.feature_service == SERVICE and plain.feature_service is None
    assert deploy.get_endpoint("churn").feature_service == SERVICE
    assert {e.name: e.feature_service for e in deploy.list_endpoints()} == {"churn": SERVICE, "plain": None}
    assert deploy.status("churn").endpoint.feature_service == SERVICE
    assert Endpoint.from_json(json.loads(json.dumps(made.to_json()))) == made
    plans = {p.endpoint: p for p in EndpointSource(contract.env.platform).plans()}
    assert plans["churn"].feature_service == SERVICE and plans["plain"].feature_service is None
    created = next(e for e in contract.env.trail() if e.resource_id == "churn")
    assert created.action == "endpoint.create" and created.details["feature_service"] == SERVICE


def test_an_unknown_feature_service_is_not_found_and_nothing_is_stored(features: Contract) -> None:
    contract = features
    with pytest.raises(NotFound, match="feature service 'nope' not found") as refused:
        contract.deploy.create_endpoint("churn", "churn", "1.0.0", feature_service="nope")
    assert refused.value.details["field"] == "feature_service"
    assert contract.deploy.list_endpoints() == []
    assert contract.env.trail() == []
    with pytest.raises(InvalidInput) as bad:
        contract.deploy.create_endpoint("churn", "churn", "1.0.0", feature_service="no good")
    assert bad.value.details["field"] == "feature_service"
    assert contract.deploy.list_endpoints() == []


def test_an_update_gives_changes_and_removes_the_feature_service_of_the_plan(features: Contract) -> None:
    contract, deploy = features, features.deploy
    made = deploy.create_endpoint("churn", "churn", "1.0.0")
    with pytest.raises(NotFound, match="feature service 'nope' not found") as refused:
        deploy.update_endpoint("churn", feature_service="nope")
    assert refused.value.details["field"] == "feature_service"
    assert deploy.get_endpoint("churn") == made  # nothing changed: not even the revision
    updated = deploy.update_endpoint("churn", feature_service=SERVICE, reason="inputs online")
    assert (updated.feature_service, updated.revision, updated.arms) == (SERVICE, 2, made.arms)
    assert updated.description == made.description and updated.sticky_key == made.sticky_key
    plan = EndpointSource(contract.env.platform).plans()[0]
    assert (plan.feature_service, plan.revision) == (SERVICE, 2)
    cleared = deploy.update_endpoint("churn", clear_feature_service=True)
    assert (cleared.feature_service, cleared.revision) == (None, 3)
    assert EndpointSource(contract.env.platform).plans()[0].feature_service is None
    updates = [e.details for e in contract.env.trail() if e.action == "endpoint.update"]
    assert [u["changes"] for u in updates] == [
        {"feature_service": {"from": None, "to": SERVICE}},
        {"feature_service": {"from": SERVICE, "to": None}},
    ]
    assert updates[0]["reason"] == "inputs online"


def test_the_cli_creates_and_shows_an_endpoint_with_its_feature_service(steward_home: Path) -> None:
    env = open_deploy_env(steward_home.parent, home=steward_home)
    try:
        define_features(env.platform).close()
        made = run("create", "churn", "--model", "churn", "--version", "1.0.0", "--feature-service", SERVICE)
        assert f"inputs from feature service {SERVICE}" in " ".join(made.stdout.split())
        status = run("status", "churn").stdout
        assert "Feature service" in status and SERVICE in status
        assert json.loads(run("status", "churn", "--json").stdout)["endpoint"]["feature_service"] == SERVICE
        refused = run("create", "other", "-m", "churn", "-v", "1.0.0", "--feature-service", "nope", code=1)
        assert "feature service 'nope' not found" in " ".join(refused.output.split())
    finally:
        env.platform.close()


def test_a_server_following_the_endpoint_reads_its_features(tmp_path: Path) -> None:
    home = make_feature_home(tmp_path / "home")
    platform = Platform.from_settings(home.settings)
    try:
        DeployService(platform).create_endpoint("live", "churn", home.version, feature_service=SERVICE)
    finally:
        platform.close()
    options = ServeOptions(
        use_endpoints=True, endpoints=("live",), source_factory="steward.cli.serve:endpoint_source",
        log_sample_rate=0.0,
    )  # fmt: skip
    ids = home.ids[:10]
    expected = home.lr.predict(home.online(ids)).tolist()
    with serving(build_app(options, home.settings)) as url:
        answer = httpx.post(
            f"{url}/predict/live", json={"records": [{"customer_id": i} for i in ids]}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected
        assert httpx.get(f"{url}/v2/models/live", timeout=30).json()["feature_service"] == SERVICE


def test_a_running_server_follows_a_feature_service_given_later(tmp_path: Path) -> None:
    home = make_feature_home(tmp_path / "home")
    platform = Platform.from_settings(home.settings)
    try:
        DeployService(platform).create_endpoint("live", "churn", home.version)
        options = ServeOptions(
            use_endpoints=True, endpoints=("live",), source_factory="steward.cli.serve:endpoint_source",
            log_sample_rate=0.0, poll_interval=0.2,
        )  # fmt: skip
        ids = home.ids[:10]
        keys_only = {"records": [{"customer_id": i} for i in ids]}
        with serving(build_app(options, home.settings)) as url:
            refused = httpx.post(f"{url}/predict/live", json=keys_only, timeout=30)
            assert refused.status_code == 422 and "spend" in refused.text  # the model's inputs are missing
            DeployService(platform).update_endpoint("live", feature_service=SERVICE)

            def answered() -> bool:
                return httpx.post(f"{url}/predict/live", json=keys_only, timeout=30).status_code == 200

            wait_for(answered, what="the server to follow the new feature service")
            answer = httpx.post(f"{url}/predict/live", json=keys_only, timeout=30)
            assert answer.json()["predictions"] == home.lr.predict(home.online(ids)).tolist()
            assert httpx.get(f"{url}/v2/models/live", timeout=30).json()["feature_service"] == SERVICE
    finally:
        platform.close()
