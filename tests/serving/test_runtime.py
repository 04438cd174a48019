"""Loading versions for serving: verified, ONNX preferred, warmed up and timed, bad versions refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import steward
from steward.errors import IntegrityError
from steward.registry.service import RegistryService
from steward.serving.runtime import RuntimeOptions, ServedVersion, load_served
from steward.store.platform import Platform
from tests.serving.conftest import Models, register, sdk_on


@pytest.fixture(scope="module")
def registry(models: Models) -> RegistryService:
    return RegistryService(Platform.from_settings(models.settings))


def _load(models: Models, registry: RegistryService, uri: str, **options: object) -> ServedVersion:
    cache = Path(models.home) / "cache" / "models"
    return load_served(registry, registry.resolve(uri), cache, "default", RuntimeOptions(**options))  # type: ignore[arg-type]


def test_a_version_with_onnx_runs_on_onnx_runtime(models: Models, registry: RegistryService) -> None:
    served = _load(models, registry, "models:/bc@production")
    assert (served.format, served.flavor) == ("onnx", "onnx")
    assert served.batcher.inline and served.row_ms > 0 and served.batch_ms > 0
    assert served.output.name == "target" and served.output.dtype == "int64" and served.output.shape == (-1,)
    frame = models.X.iloc[:50]
    item = served.codec.from_records(frame.to_dict(orient="records"))  # type: ignore[union-attr]
    assert served.run_items([item])[0].tolist() == models.lr.predict(frame).tolist()


def test_without_onnx_the_primary_flavor_runs_and_agrees(models: Models, registry: RegistryService) -> None:
    served = _load(models, registry, "models:/bc@production", prefer_onnx=False)
    assert (served.format, served.flavor) == ("model", "sklearn")
    frame = models.X.iloc[:50]
    # An array in signature order to an estimator fitted on a DataFrame: the same answer, and no
    # "X does not have valid feature names" warning (warnings are errors here).
    answers = served.run_items([frame.to_numpy()[:20], frame.to_numpy()[20:]])
    assert np.concatenate(answers).tolist() == models.lr.predict(frame).tolist()


def test_a_slow_model_runs_in_a_thread(models: Models, registry: RegistryService) -> None:
    served = _load(models, registry, "models:/bc_sk/1.0.0", inline_budget_ms=0.0)
    assert not served.batcher.inline
    rows = models.X.to_numpy()[:3]

    async def predict() -> list[int]:
        answers = await asyncio.gather(*(served.predict(rows[i : i + 1], 1) for i in range(3)))
        return [int(a[0]) for a in answers]

    assert asyncio.run(predict()) == models.lr.predict(models.X.iloc[:3]).tolist()
    served.close()
    assert served.closed


def test_an_altered_version_is_refused_before_it_loads(models: Models, registry: RegistryService) -> None:
    model = LogisticRegression(max_iter=10_000, C=0.25).fit(models.X, models.lr.predict(models.X))
    version = register(models.home, "altered", model, steward.infer_signature(models.X))
    with sdk_on(models.home):
        digest = steward.get_model_version(f"models:/altered/{version}").files[0].digest
    (Path(models.home) / "artifacts" / "blobs" / digest[:2] / digest).write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        _load(models, registry, f"models:/altered/{version}")


def test_the_enforced_array_matches_the_fast_path(models: Models, registry: RegistryService) -> None:
    served = _load(models, registry, "models:/bc_sk/1.0.0")
    records = models.records(range(10))
    fast = served.codec.from_records(records)  # type: ignore[union-attr]
    slow = served.enforce(records)
    assert isinstance(slow, np.ndarray) and slow.dtype == fast.dtype and np.array_equal(slow, fast)  # type: ignore[union-attr]
