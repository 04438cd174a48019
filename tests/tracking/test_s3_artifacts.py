"""A run's artifacts in S3 (``STEWARD_ARTIFACTS=s3://…``), through the SDK, as a user configures it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import steward
from steward.errors import IntegrityError
from tests.plugins.s3 import S3Artifacts


@pytest.mark.s3
def test_artifacts_go_to_s3_and_come_back_verified(
    steward_home: Path, s3_artifacts: S3Artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_ARTIFACTS", s3_artifacts.url)
    monkeypatch.setenv("STEWARD_S3_ENDPOINT_URL", s3_artifacts.endpoint_url)
    steward.configure(home=steward_home)
    with steward.start_run(experiment="s3") as run:
        steward.log_table(pd.DataFrame({"x": range(1000)}), "data/table.parquet")
        steward.log_text("hello", "notes.txt")
    artifacts = {a.path: a for a in steward.list_artifacts(run.id)}
    assert set(artifacts) == {"data/table.parquet", "notes.txt", "_steward/environment.json"}
    table = pd.read_parquet(steward.download_artifact(run.id, "data/table.parquet", tmp_path / "t.parquet"))
    assert table["x"].sum() == sum(range(1000))

    # The bytes live in the bucket under their digest, and a tampered object is caught on read.
    from s3fs import S3FileSystem

    fs = S3FileSystem(endpoint_url=s3_artifacts.endpoint_url, skip_instance_cache=True)
    digest = artifacts["notes.txt"].digest
    key = f"{s3_artifacts.url.removeprefix('s3://')}/blobs/{digest[:2]}/{digest}"
    assert fs.cat(key) == b"hello"
    fs.pipe(key, b"HELLO")
    with pytest.raises(IntegrityError, match=digest):
        steward.download_artifact(run.id, "notes.txt", tmp_path / "n.txt")
    assert not (tmp_path / "n.txt").exists()
