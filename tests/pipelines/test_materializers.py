"""Materialisers: every built-in type round-trips through the blob store, nothing is pickled."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.tree import DecisionTreeClassifier

import steward
from steward import InvalidInput
from steward.config import load_settings
from steward.pipelines import materializers
from steward.pipelines.models import OutputRef
from steward.store.blobs import BlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore.from_settings(load_settings(home=tmp_path / "home"))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({"auc": 0.93, "tags": ["a", None], "n": 3}, "json"),
        (None, "json"),
        ("text", "json"),
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[10, 20]), "pandas"),
        (pa.table({"a": [1.5, None]}), "arrow"),
        (pl.DataFrame({"a": [1, 2]}), "polars"),
        (np.arange(6, dtype=np.float32).reshape(2, 3), "numpy"),
    ],
)
def test_values_round_trip_by_type(value: Any, name: str, blobs: BlobStore) -> None:
    ref = materializers.save(value, blobs)
    assert ref.materializer == name and blobs.exists(ref.digest) == ref.stored
    back = materializers.load(OutputRef.from_json(ref.to_json()), blobs)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(back, value)
    elif isinstance(value, pa.Table | pl.DataFrame):
        assert back.equals(value)
    elif isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and (back == value).all()
    else:
        assert back == value


def test_small_json_values_live_in_their_reference_and_large_ones_in_the_blob_store(blobs: BlobStore) -> None:
    small = materializers.save({"auc": 0.9}, blobs)
    large = materializers.save(list(range(5000)), blobs)

    assert not small.stored and not blobs.exists(small.digest) and small.inline == {"auc": 0.9}
    assert small.digest == hashlib.sha256(b'{"auc":0.9}').hexdigest()
    assert large.stored and blobs.exists(large.digest) and large.inline is None
    assert materializers.load(OutputRef.from_json(small.to_json()), blobs) == {"auc": 0.9}
    assert materializers.load(OutputRef.from_json(large.to_json()), blobs) == list(range(5000))
    nothing = OutputRef.from_json(materializers.save(None, blobs).to_json())
    assert materializers.load(nothing, blobs) is None


def test_non_finite_json_numbers_survive(blobs: BlobStore) -> None:
    ref = materializers.save({"loss": math.nan, "best": math.inf}, blobs)
    assert ref.inline is None
    back = materializers.load(ref, blobs)
    assert math.isnan(back["loss"]) and back["best"] == math.inf


def test_a_model_is_stored_in_a_safe_format_and_predicts_the_same(blobs: BlobStore) -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = steward.Model(DecisionTreeClassifier().fit(x, [0, 0, 1, 1]))
    ref = materializers.save(model, blobs)
    assert ref.meta == {"flavor": "sklearn", "model_type": "sklearn.tree._classes.DecisionTreeClassifier"}
    back = materializers.load(ref, blobs)
    assert isinstance(back, steward.Model) and list(back.predict(x)) == [0, 0, 1, 1]


@pytest.mark.parametrize("value", [object(), {1: "int keys"}, (1, 2), np.array([object()])])
def test_a_type_without_a_materialiser_is_refused_by_name(value: Any, blobs: BlobStore) -> None:
    with pytest.raises(InvalidInput, match="no materializer stores values of type"):
        materializers.save(value, blobs)


@dataclass
class Point:
    x: float
    y: float


class PointMaterializer:
    name = "test-point"

    def handles(self, value: Any) -> bool:
        return isinstance(value, Point)

    def save(self, value: Any, blobs: BlobStore) -> OutputRef:
        data = f"{value.x},{value.y}".encode()
        return OutputRef(self.name, blobs.put_bytes(data).digest, "Point", len(data))

    def load(self, ref: OutputRef, blobs: BlobStore) -> Any:
        x, y = blobs.get_bytes(ref.digest).decode().split(",")
        return Point(float(x), float(y))


def test_a_registered_materialiser_takes_its_type(blobs: BlobStore) -> None:
    custom = PointMaterializer()
    materializers.register_materializer(custom)
    try:
        ref = materializers.save(Point(1.0, 2.0), blobs)
        assert ref.materializer == "test-point"
        assert materializers.load(ref, blobs) == Point(1.0, 2.0)
        other = PointMaterializer()
        with pytest.raises(InvalidInput, match="exists"):
            materializers.register_materializer(other)
    finally:
        materializers._registry.remove(custom)


def test_a_tampered_output_is_detected_on_load(blobs: BlobStore, tmp_path: Path) -> None:
    ref = materializers.save(pd.DataFrame({"a": range(100)}), blobs)
    [path] = list((tmp_path / "home").rglob(ref.digest))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(steward.IntegrityError, match=ref.digest):
        materializers.load(ref, blobs)
