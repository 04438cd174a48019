"""Data residency: a dataset, and a model trained on it, are written only where its region rules allow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

import steward
from steward.config import load_settings
from steward.data.service import DataService
from steward.errors import InvalidInput, NotFound, ResidencyViolation
from steward.governance import audit
from steward.registry.service import RegistryService
from steward.store.platform import Platform

TABLE = pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def data_service(home: Path, **settings: str) -> Iterator[DataService]:
    platform = Platform.from_settings(load_settings(home=home, **settings))
    yield DataService(platform)
    platform.close()


@pytest.fixture
def uae(home: Path) -> Iterator[DataService]:
    """The data service of an installation whose artifact store is in ``uae-north``."""
    yield from data_service(home, region="uae-north")


def test_a_dataset_lives_in_the_store_region_by_default(uae: DataService) -> None:
    version = uae.ingest(TABLE, "patients").version
    assert version is not None and version.region == "uae-north"
    dataset = uae.get_dataset("patients")
    assert (dataset.region, dataset.allowed_regions) == ("uae-north", None)
    assert uae.residency("patients").allowed == frozenset({"uae-north"})


def test_writing_a_dataset_into_a_store_outside_its_regions_is_refused(home: Path, uae: DataService) -> None:
    uae.ingest(TABLE, "patients")
    for eu in data_service(home, region="uae-north", artifacts_region="eu-west-1"):
        with pytest.raises(ResidencyViolation) as refused:
            eu.ingest(TABLE.slice(0, 2), "patients")
        message = str(refused.value)
        assert "uae-north" in message and "eu-west-1" in message and "patients" in message
        assert refused.value.details["store_region"] == "eu-west-1"
        assert [v.number for v in eu.list_versions("patients")] == [1]  # nothing was published
        with eu.platform.metadata.read() as conn:
            [denied] = audit.entries(conn, action="dataset.write")
        assert (denied.outcome, denied.resource_id) == ("denied", "patients")
        assert denied.details["store_region"] == "eu-west-1"
        blobs = list((home / "artifacts" / "blobs").rglob("*"))
        assert len([b for b in blobs if b.is_file()]) == 1  # and nothing was stored


def test_a_dataset_may_allow_more_regions(home: Path, uae: DataService) -> None:
    uae.ingest(TABLE, "telemetry", allowed_regions=["uae-north", "eu-west-1"])
    for eu in data_service(home, region="uae-north", artifacts_region="eu-west-1"):
        version = eu.ingest(TABLE.slice(0, 2), "telemetry").version
        assert version is not None and version.region == "eu-west-1"
    with pytest.raises(InvalidInput, match="must be one of its allowed regions"):
        uae.create_dataset("odd", region="uae-north", allowed_regions=["eu-west-1"])


def test_the_installation_restricts_the_regions_of_every_dataset(home: Path) -> None:
    for restricted in data_service(home, region="uae-north", allowed_regions="uae-north, uae-central"):
        with pytest.raises(ResidencyViolation, match="outside the regions this installation allows"):
            restricted.create_dataset("abroad", region="eu-west-1")
        restricted.create_dataset("wide", allowed_regions=["uae-north", "eu-west-1"])
        assert restricted.residency("wide").allowed == frozenset({"uae-north"})
        with pytest.raises(NotFound):
            restricted.get_dataset("abroad")


def test_a_bad_region_setting_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="artifacts_region"):
        load_settings(artifacts_region="eu west")
    with pytest.raises(InvalidInput, match="allowed_regions"):
        load_settings(allowed_regions="ok,not ok")


def test_a_model_trained_on_a_dataset_is_not_stored_outside_its_regions(home: Path) -> None:
    for uae in data_service(home, region="uae-north"):
        version = uae.ingest(TABLE, "patients").version
        assert version is not None
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    platform = Platform.from_settings(
        load_settings(home=home, region="uae-north", artifacts_region="eu-west-1")
    )
    registry = RegistryService(platform)
    before = {p for p in (home / "artifacts").rglob("*") if p.is_file()}
    try:
        with pytest.raises(ResidencyViolation, match="eu-west-1"):
            registry.check_residency([version.id])
        steward.configure(home=home, region="uae-north", artifacts_region="eu-west-1")
        with pytest.raises(ResidencyViolation, match="a model trained on a version of dataset 'patients'"):
            steward.register_model("risk", model, flavor="sklearn", datasets={"train": version.id})
        assert {p for p in (home / "artifacts").rglob("*") if p.is_file()} == before  # no bytes written
        with pytest.raises(NotFound):
            steward.get_model("risk")
        with platform.metadata.read() as conn:
            refusals = audit.entries(conn, action="model.write")
        assert refusals and all(e.outcome == "denied" for e in refusals)
        steward.configure(home=home, region="uae-north")
        registered = steward.register_model("risk", model, flavor="sklearn", datasets={"train": version.id})
        assert registered.datasets == {"train": version.id}
    finally:
        platform.close()
        from tests.conftest import reset_sdk

        reset_sdk()
