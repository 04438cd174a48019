"""Tests for steward/registry/onnx_export.py: converted models must predict what the original does."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from steward.errors import InvalidInput
from steward.registry.onnx_export import sklearn_to_onnx


class AlwaysZero:
    """A model skl2onnx has no converter for."""

    def fit(self, x: Any, y: Any) -> AlwaysZero:
        self.classes_ = np.unique(y)
        return self

    def predict(self, x: Any) -> Any:
        return np.zeros(len(x), dtype=int)


def run(onnx_bytes: bytes, feeds: dict[str, Any], output: str) -> Any:
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run([output], feeds)[0]


@pytest.fixture(scope="module")
def cancer_pipe() -> tuple[Any, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y), x


def test_classifier_export_agrees_with_the_estimator(cancer_pipe: tuple[Any, np.ndarray]) -> None:
    pipe, x = cancer_pipe
    proba = sklearn_to_onnx(pipe, x, predict_fn="predict_proba")
    got = run(proba, {"X": x.astype(np.float32)}, "probabilities")
    np.testing.assert_allclose(got, pipe.predict_proba(x), rtol=1e-4, atol=1e-5)
    labels = sklearn_to_onnx(pipe, pd.DataFrame(x), predict_fn="predict")
    np.testing.assert_array_equal(run(labels, {"X": x.astype(np.float32)}, "label"), pipe.predict(x))


def test_regressor_and_transformer_exports_agree() -> None:
    x, y = load_diabetes(return_X_y=True)
    ridge = Ridge().fit(x, y)
    got = run(sklearn_to_onnx(ridge, x, predict_fn="predict"), {"X": x.astype(np.float32)}, "variable")
    np.testing.assert_allclose(got.ravel(), ridge.predict(x), rtol=1e-4)
    scaler = StandardScaler().fit(x)
    assert sklearn_to_onnx(scaler, x, predict_fn="transform")


def test_mixed_dataframe_becomes_one_input_per_column() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=60), "b": rng.choice(["x", "y", "z"], 60), "c": rng.integers(0, 5, 60)}
    )
    target = (frame["a"] > 0).astype(int)
    pipe = make_pipeline(
        ColumnTransformer([("onehot", OneHotEncoder(), ["b"]), ("numbers", "passthrough", ["a", "c"])]),
        LogisticRegression(),
    ).fit(frame, target)
    onnx_bytes = sklearn_to_onnx(pipe, frame, predict_fn="predict_proba")
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["a", "b", "c"]


def test_a_disagreeing_conversion_is_refused(
    cancer_pipe: tuple[Any, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe, x = cancer_pipe
    original = pipe.predict_proba
    # The graph is converted from the fitted parameters; shifting the method's answer makes them disagree.
    monkeypatch.setattr(pipe, "predict_proba", lambda data: original(data) + np.array([0.01, -0.01]))
    with pytest.raises(
        InvalidInput, match=r"disagrees with predict_proba: the largest difference is 0\.01"
    ) as info:
        sklearn_to_onnx(pipe, x, predict_fn="predict_proba")
    assert info.value.details["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    monkeypatch.setattr(pipe, "predict", lambda data: 1 - original(data).argmax(axis=1))
    with pytest.raises(InvalidInput, match=r"other labels than predict for 569 of 569 rows"):
        sklearn_to_onnx(pipe, x, predict_fn="predict")


def test_unconvertible_estimators_and_methods_are_refused(
    cancer_pipe: tuple[Any, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, x = cancer_pipe
    custom = AlwaysZero().fit(x, np.arange(len(x)) % 2)
    with pytest.raises(InvalidInput, match=r"skl2onnx cannot convert [\w.]+\.AlwaysZero: .*shape calculator"):
        sklearn_to_onnx(custom, x, predict_fn="predict")
    wrapped = make_pipeline(StandardScaler(), AlwaysZero()).fit(x, np.arange(len(x)) % 2)
    with pytest.raises(InvalidInput, match=r"cannot convert sklearn\.pipeline\.Pipeline: .*AlwaysZero"):
        sklearn_to_onnx(wrapped, x, predict_fn="predict")
    with pytest.raises(InvalidInput, match=r"'decision_function' cannot be exported"):
        sklearn_to_onnx(cancer_pipe[0], x, predict_fn="decision_function")
    with pytest.raises(InvalidInput, match=r"has no method 'predict_proba'"):
        sklearn_to_onnx(custom, x, predict_fn="predict_proba")
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(InvalidInput, match=r"pip install 'steward-ml\[onnx\]'"):
        sklearn_to_onnx(cancer_pipe[0], x, predict_fn="predict")
