"""Model bundles in S3 (``STEWARD_ARTIFACTS=s3://…``): registered, loaded and verified like on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

import steward
from steward.errors import IntegrityError
from tests.plugins.s3 import S3Artifacts


@pytest.mark.s3
def test_model_version_lives_in_s3_and_a_tampered_file_is_refused(
    steward_home: Path, s3_artifacts: S3Artifacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_ARTIFACTS", s3_artifacts.url)
    monkeypatch.setenv("STEWARD_S3_ENDPOINT_URL", s3_artifacts.endpoint_url)
    steward.configure(home=steward_home)
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = DecisionTreeClassifier(random_state=0).fit(x, y)
    version = steward.register_model("iris", model, signature=steward.infer_signature(x, model.predict(x)))
    loaded = steward.load_model("models:/iris/1.0.0")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))

    from s3fs import S3FileSystem

    fs = S3FileSystem(endpoint_url=s3_artifacts.endpoint_url, skip_instance_cache=True)
    digest = version.files[0].digest
    key = f"{s3_artifacts.url.removeprefix('s3://')}/blobs/{digest[:2]}/{digest}"
    assert fs.exists(key)
    stored = bytearray(fs.cat(key))
    stored[len(stored) // 2] ^= 0xFF
    fs.pipe(key, bytes(stored))
    with pytest.raises(IntegrityError):
        steward.load_model("models:/iris/1.0.0")
