"""The registry SDK end to end: register, version, alias, load, predict, export, refuse what is unsafe."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import steward
from steward.errors import Conflict, IntegrityError, InvalidInput, NotFound, UnsafeArtifact
from steward.registry.models import MANIFEST_NAME


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    frame = load_breast_cancer(as_frame=True)
    return frame.data, frame.target.to_numpy()


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, np.ndarray]) -> Any:
    x, y = data
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def _register(model: Any, x: pd.DataFrame, **kwargs: Any) -> steward.ModelVersion:
    signature = steward.infer_signature(x, model.predict_proba(x))
    return steward.register_model("churn", model, signature=signature, predict_fn="predict_proba", **kwargs)


def test_registered_version_loads_back_and_predicts_the_same(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, _ = data
    with steward.start_run(experiment="churn", run_name="baseline") as run:
        steward.log_params({"C": 1.0})
        steward.log_metric("auc", 0.97)
        mv = _register(fitted, x, datasets={"train": "ds-train-1"}, description="first")
    assert mv.version == "1.0.0"
    assert mv.run_id == run.id  # the active run is the producer
    assert mv.metrics["auc"] == 0.97  # the run's metrics travel with the version
    assert any(r.startswith("scikit-learn==") for r in mv.manifest["requirements"])
    loaded = steward.load_model("models:/churn/1.0.0")
    np.testing.assert_allclose(loaded.predict(x.head(20)), fitted.predict_proba(x.head(20)))
    assert loaded.version.version == "1.0.0"


def test_versions_bump_minor_then_major_when_inputs_change(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, y = data
    assert _register(fitted, x).version == "1.0.0"
    assert _register(fitted, x).version == "1.1.0"
    fewer = x.iloc[:, :5]
    small = make_pipeline(StandardScaler(), LogisticRegression()).fit(fewer, y)
    assert _register(small, fewer).version == "2.0.0"
    assert _register(small, fewer, version="2.0.1").version == "2.0.1"
    with pytest.raises(Conflict):
        _register(small, fewer, version="2.0.1")
    with pytest.raises(InvalidInput, match="semantic versioning"):
        _register(small, fewer, version="2.1")
    assert [v.version for v in steward.list_model_versions("churn")] == ["1.0.0", "1.1.0", "2.0.0", "2.0.1"]


def test_signature_is_enforced_on_predict(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, _ = data
    _register(fitted, x)
    loaded = steward.load_model("models:/churn")
    with pytest.raises(InvalidInput, match="mean radius"):
        loaded.predict(x.drop(columns=["mean radius"]).head(3))
    wrong = x.head(3).astype({"mean texture": str})
    with pytest.raises(InvalidInput, match="mean texture"):
        loaded.predict(wrong)
    # Extra columns are dropped and order does not matter.
    shuffled = x.head(3)[list(reversed(x.columns))].assign(extra=1)
    np.testing.assert_allclose(loaded.predict(shuffled), fitted.predict_proba(x.head(3)))


def test_model_fitted_on_arrays_takes_named_columns(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = data
    on_arrays = LogisticRegression(max_iter=3000).fit(x.to_numpy(), y)
    signature = steward.infer_signature(x, on_arrays.predict(x.to_numpy()))
    steward.register_model("plain", on_arrays, signature=signature)
    # Warnings are errors here: scikit-learn must not be handed names it never saw.
    predicted = steward.load_model("models:/plain").predict(x.head(10))
    np.testing.assert_array_equal(predicted, on_arrays.predict(x.head(10).to_numpy()))


def test_alias_moves_are_recorded_and_archived_versions_refuse_aliases(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, _ = data
    _register(fitted, x)
    _register(fitted, x)
    steward.set_alias("churn", "staging", "1.0.0", reason="first candidate")
    steward.set_alias("churn", "staging", "1.1.0", reason="better auc")
    assert steward.load_model("models:/churn@staging").version.version == "1.1.0"
    history = steward.alias_history("churn")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, "1.0.0", "first candidate"),
        ("1.0.0", "1.1.0", "better auc"),
    ]
    steward.archive_model_version("churn", "1.0.0", reason="superseded")
    with pytest.raises(Conflict, match="archived"):
        steward.set_alias("churn", "production", "1.0.0")
    with pytest.raises(Conflict, match="staging"):
        steward.archive_model_version("churn", "1.1.0")
    with pytest.raises(NotFound):
        steward.load_model("models:/churn@production")


def test_tampered_model_file_is_refused_on_load(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, _ = data
    mv = _register(fitted, x)
    digest = next(f.digest for f in mv.files if f.path.endswith(".skops"))
    blob = next((steward_home / "artifacts").rglob(digest))
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IntegrityError):
        steward.load_model(mv.uri)


def test_manifest_records_flavor_files_signature_and_lineage(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, _ = data
    mv = _register(fitted, x, datasets={"train": "ds-7"})
    conn = steward.default_connection()
    manifest = yaml.safe_load(conn.registry.read_file("churn", mv.version, MANIFEST_NAME))
    assert manifest["flavor"] == "sklearn"
    assert manifest["version"] == "1.0.0"
    assert manifest["datasets"] == {"train": "ds-7"}
    assert {f["path"] for f in manifest["files"]} == {f.path for f in mv.files}
    assert manifest["signature"]["inputs"]["columns"][0]["name"] == "mean radius"
    assert manifest["python_version"]


def test_pickle_file_is_refused_unless_trusted(steward_home: Path, tmp_path: Path, fitted: Any) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fitted))
    with pytest.raises(UnsafeArtifact, match="skops") as refused:
        steward.register_model("churn", path)
    assert "trust=True" in str(refused.value)  # the message says how to convert it, or trust it
    with pytest.raises(NotFound):
        steward.get_model("churn")  # nothing half-registered
    mv = steward.register_model("churn", path, trust=True)  # converted: stored with skops, not pickle
    assert mv.flavor == "sklearn"
    assert all(not f.path.endswith(".pkl") for f in mv.files)


def test_failed_upload_leaves_no_version(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = data
    registry = steward.default_connection().registry

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry, "upload_file", broken)
    with pytest.raises(OSError, match="disk full"):
        _register(fitted, x)
    monkeypatch.undo()
    with pytest.raises(NotFound):
        steward.get_model("churn")
    assert _register(fitted, x).version == "1.0.0"


def test_unsupported_object_names_flavor_and_type(steward_home: Path) -> None:
    with pytest.raises(InvalidInput, match=r"sklearn.*dict"):
        steward.register_model("churn", {"not": "a model"}, flavor="sklearn")


def test_export_onnx_adds_a_format_that_predicts_the_same(
    steward_home: Path, data: tuple[pd.DataFrame, np.ndarray], fitted: Any
) -> None:
    x, _ = data
    mv = _register(fitted, x)
    exported = steward.export_onnx(mv.uri, sample=x.head(100))
    assert "onnx" in exported.formats
    onnx_model = steward.load_model(mv.uri, format="onnx")
    np.testing.assert_allclose(onnx_model.predict(x.head(50)), fitted.predict_proba(x.head(50)), atol=1e-4)
    with pytest.raises(Conflict):
        steward.export_onnx(mv.uri, sample=x.head(100))


def test_remote_mode_registers_and_loads_through_the_server(
    steward_server: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    data: tuple[pd.DataFrame, np.ndarray],
    fitted: Any,
) -> None:
    x, _ = data
    monkeypatch.setenv("STEWARD_HOME", str(tmp_path / "client-home"))
    steward.configure(uri=steward_server)
    try:
        mv = _register(fitted, x, datasets={"train": "ds-remote"})
        steward.set_alias("churn", "staging", mv.version)
        loaded = steward.load_model("models:/churn@staging")
        np.testing.assert_allclose(loaded.predict(x.head(5)), fitted.predict_proba(x.head(5)))
    finally:
        from tests.conftest import reset_sdk

        reset_sdk()
