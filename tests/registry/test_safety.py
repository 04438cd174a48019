"""Tests for steward/registry/safety.py: pickles are refused by name and by content."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import joblib
import pytest

from steward.errors import InvalidInput, UnsafeArtifact
from steward.registry.safety import check_not_pickle, load_trusted_pickle


@pytest.mark.parametrize(
    "name",
    ["model.pkl", "model.pickle", "model.joblib", "model.sav", "model.dill", "MODEL.PKL", "model.pkl.gz"],
)
def test_pickle_extensions_are_refused_whatever_the_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("not really a pickle")
    with pytest.raises(UnsafeArtifact, match=r"pickle extension.*skops\.io\.dump") as info:
        check_not_pickle(path, source="model")
    assert info.value.details["path"] == str(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_content_is_refused_under_any_name(tmp_path: Path, protocol: int) -> None:
    data = pickle.dumps({"weights": [1.0, 2.0]}, protocol=protocol)
    with pytest.raises(UnsafeArtifact, match=r"'vocab' is a pickle.*skops"):
        check_not_pickle(data, source="'vocab'")
    (tmp_path / "weights.bin").write_bytes(data)
    with pytest.raises(UnsafeArtifact, match="skops"):
        check_not_pickle(tmp_path / "weights.bin", source="model")


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_compressed_joblib_files_are_refused_by_content(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "model.bin"
    joblib.dump({"weights": list(range(100))}, path, compress=compress)
    with pytest.raises(UnsafeArtifact, match=r"holds a pickle stream.*ONNX"):
        check_not_pickle(path, source="model")


def test_safe_formats_pass(tmp_path: Path) -> None:
    check_not_pickle(b"\x08\x07\x12\x08skl2onnx", source="model")  # the start of an ONNX model
    check_not_pickle(b"", source="model")
    with zipfile.ZipFile(tmp_path / "model.skops", "w") as archive:
        archive.writestr("schema.json", "{}")
    check_not_pickle(tmp_path / "model.skops", source="model")
    (tmp_path / "vocab.txt").write_bytes(b"x\x9c: a zlib header, but no deflate stream after it")
    check_not_pickle(tmp_path / "vocab.txt", source="model")
    (tmp_path / "weights").mkdir()
    check_not_pickle(tmp_path / "weights", source="model")


def test_load_trusted_pickle_unpickles_on_request(tmp_path: Path) -> None:
    joblib.dump({"answer": 42}, tmp_path / "model.joblib", compress=3)
    assert load_trusted_pickle(tmp_path / "model.joblib") == {"answer": 42}
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps([1, 2]))
    assert load_trusted_pickle(tmp_path / "plain.pkl") == [1, 2]
    with pytest.raises(InvalidInput, match="not a file"):
        load_trusted_pickle(tmp_path / "missing.pkl")
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x04 broken")
    with pytest.raises(InvalidInput, match="cannot unpickle"):
        load_trusted_pickle(tmp_path / "broken.pkl")
