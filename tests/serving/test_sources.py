"""Traffic sources of ``steward serve``: fixed references (aliases re-resolved: blue-green), config files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sklearn.dummy import DummyClassifier

import steward
from steward.errors import InvalidInput, NotFound
from steward.registry.service import RegistryService
from steward.serving.models import Arm
from steward.serving.sources import ConfigSource, ReferenceSource, parse_reference
from steward.store.platform import Platform
from tests.serving.conftest import Models, make_app, register, sdk_on, serving, wait_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ("churn", "churn", None, None)),
        ("churn@production", ("churn", "churn", None, "production")),
        ("churn/1.2.0", ("churn", "churn", "1.2.0", None)),
        ("models:/churn@staging", ("churn", "churn", None, "staging")),
        ("fraud=churn/1.0.0", ("fraud", "churn", "1.0.0", None)),
    ],
)
def test_references_parse(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = parse_reference(text)
    assert (ref.endpoint, ref.model, ref.version, ref.alias) == expected


@pytest.mark.parametrize("text", ["", "churn@", "-churn", "churn/1/2", "a=b=c", "churn@prod uction"])
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(text)


def test_moving_the_alias_swaps_the_served_version(models: Models) -> None:
    labels = models.lr.predict(models.X)
    signature = steward.infer_signature(models.X, labels)
    first = register(models.home, "swap", models.lr, signature, alias="production")
    constant = DummyClassifier(strategy="constant", constant=1).fit(models.X, labels)
    second = register(models.home, "swap", constant, signature)
    app = make_app(models, references=("swap@production",), poll_interval=0.05)
    record = {"records": models.records([0])}
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/predict/swap", json=record).json()["version"] == first
        with sdk_on(models.home):
            steward.set_alias("swap", "production", second)
        wait_for(lambda: http.post("/predict/swap", json=record).json()["version"] == second, what="the swap")
        assert http.post("/predict/swap", json=record).json()["predictions"] == [1]
        state = app.router.endpoint("swap")
        assert state is not None and state.table is not None and state.table.plan.revision == 1


def test_a_missing_model_or_alias_is_not_found(models: Models) -> None:
    platform = Platform.from_settings(models.settings)
    registry = RegistryService(platform)
    with pytest.raises(NotFound):
        ReferenceSource(registry, ["bc@nowhere"], "default").plans()
    with pytest.raises(InvalidInput):
        ReferenceSource(registry, ["bc", "bc@production"], "default")  # two endpoints named bc
    platform.close()


def test_a_config_names_several_endpoints_and_is_read_again(models: Models, tmp_path: Path) -> None:
    platform = Platform.from_settings(models.settings)
    path = tmp_path / "models.yaml"
    path.write_text(
        "endpoints:\n"
        "  churn: bc@production\n"
        "  split:\n"
        "    model: ab\n"
        "    sticky_key: user\n"
        "    arms:\n"
        "      - {version: 1.0.0, role: stable, weight: 0.75}\n"
        "      - {version: 1.1.0, role: canary, weight: 0.25}\n"
        "      - {version: 1.2.0, role: shadow}\n"
    )
    source = ConfigSource(RegistryService(platform), path)
    plans = {p.endpoint: p for p in source.plans()}
    assert plans["churn"].model == "bc" and plans["churn"].arms == (Arm("1.0.0", "stable", 1.0),)
    assert plans["split"].sticky_key == "user" and len(plans["split"].arms) == 3
    assert [a.version for a in plans["split"].shadows] == ["1.2.0"]
    path.write_text("endpoints: [bc/1.0.0, tensor]\n")
    assert sorted(p.endpoint for p in source.plans()) == ["bc", "tensor"]
    path.write_text("endpoints:\n  split:\n    model: ab\n    arms: [{version: 1.0.0, weight: 2}]\n")
    with pytest.raises(InvalidInput) as refused:
        source.plans()
    assert refused.value.details["field"] == "endpoints.split.arms[0].weight"
    path.write_text("endpoints: {x: {model: ab, arms: [{alias: nowhere}]}}\n")
    with pytest.raises(NotFound):
        source.plans()
    platform.close()


def test_a_server_serves_a_config(models: Models, tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text('{"endpoints": {"one": "bc@production", "two": "tensor/1.0.0"}}')
    app = make_app(models, config=str(path))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/predict/one", json={"records": models.records([1])}).status_code == 200
        assert http.post("/predict/two", json={"instances": [[0.0] * 30]}).status_code == 200
