"""The blob store's contract, run on a local folder and on S3 (moto): what users of artifacts rely on."""

from __future__ import annotations

import hashlib
import io
import random
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import fsspec
import pytest

from steward.config import Settings
from steward.errors import IntegrityError, InvalidInput, NotFound, ServiceUnavailable
from steward.store.blobs import BlobRef, BlobStore
from tests.services import free_port, service_unavailable


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """An empty blob store in a temporary folder, or in a fresh bucket of the moto server."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_artifacts")
        return BlobStore(s3.url, storage_options=s3.storage_options)
    return BlobStore((tmp_path / "artifacts").as_uri())


@dataclass
class Raw:
    """The store's objects seen straight through fsspec, behind the blob store's back."""

    fs: Any
    root: str

    def keys(self, prefix: str) -> list[str]:
        """Keys (relative to the root) of every object under ``prefix``."""
        return sorted(path[len(self.root) + 1 :] for path in self.fs.find(f"{self.root}/{prefix}"))

    def overwrite(self, digest: str, data: bytes) -> None:
        """Replace a stored blob's bytes, as bit rot or a careless hand would."""
        self.fs.pipe_file(f"{self.root}/{_key(digest)}", data)


@pytest.fixture
def raw(blob_store: BlobStore, request: pytest.FixtureRequest) -> Raw:
    options: dict[str, Any] = {}
    if blob_store.root_url.startswith("s3://"):
        options = {**request.getfixturevalue("s3_artifacts").storage_options, "use_listings_cache": False}
    fs, root = fsspec.url_to_fs(blob_store.root_url, **options)
    return Raw(fs, root.rstrip("/"))


def _key(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def _ref(data: bytes) -> BlobRef:
    return BlobRef(hashlib.sha256(data).hexdigest(), len(data))


def _read(store: BlobStore, how: str, digest: str, dest: Path, received: list[bytes] | None = None) -> None:
    """Read a blob to the end the way ``how`` names, collecting the chunks ``iter_chunks`` yields."""
    if how == "size":
        store.size(digest)
    elif how == "get_bytes":
        store.get_bytes(digest)
    elif how == "iter_chunks":
        for chunk in store.iter_chunks(digest, chunk_size=4096):
            (received if received is not None else []).append(chunk)
    else:
        store.download(digest, dest)


class TrickleStream:
    """A binary stream handing out at most ``piece`` bytes per read, recording what it was asked for."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._buffer = io.BytesIO(data)
        self._piece = piece
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        return self._buffer.read(self._piece if size < 0 else min(size, self._piece))


class BrokenStream:
    """A binary stream whose connection drops after the first megabyte."""

    def __init__(self) -> None:
        self._sent = False

    def read(self, size: int = -1) -> bytes:
        if self._sent:
            raise OSError("connection reset by peer")
        self._sent = True
        return b"x" * (1 << 20)


def test_round_trip_gives_back_the_same_bytes(blob_store: BlobStore, tmp_path: Path) -> None:
    data = b"coefficients: 0.25, -1.5, 3.0\n" * 100
    ref = blob_store.put_bytes(data)
    assert ref == _ref(data)
    assert blob_store.exists(ref.digest)
    assert blob_store.size(ref.digest) == len(data)
    assert blob_store.get_bytes(ref.digest) == data
    chunks = list(blob_store.iter_chunks(ref.digest, chunk_size=7))
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 7
    blob_store.download(ref.digest, tmp_path / "out" / "model.txt")
    assert (tmp_path / "out" / "model.txt").read_bytes() == data


def test_bytes_file_and_stream_of_the_same_content_are_stored_once(
    blob_store: BlobStore, raw: Raw, tmp_path: Path
) -> None:
    data = random.Random(1).randbytes(200_000)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    refs = {
        blob_store.put_bytes(data),
        blob_store.put_bytes(data),
        blob_store.put_file(path),
        blob_store.put_stream(io.BytesIO(data)),
    }
    assert refs == {_ref(data)}
    assert raw.keys("blobs") == [_key(_ref(data).digest)]


def test_a_large_stream_is_hashed_in_chunks(blob_store: BlobStore) -> None:
    data = random.Random(2).randbytes(5 * (1 << 20) + 123)
    stream = TrickleStream(data, piece=64 * 1024)
    ref = blob_store.put_stream(cast(BinaryIO, stream))
    assert ref == _ref(data)
    assert all(0 < size <= 8 << 20 for size in stream.asked), "the stream was read whole"
    assert blob_store.get_bytes(ref.digest) == data


@pytest.mark.parametrize("how", ["get_bytes", "iter_chunks", "download"])
@pytest.mark.parametrize("tampered", [b"model weights!" + b"\0" * 13986, b"model weights"])
def test_tampered_bytes_are_refused(
    blob_store: BlobStore, raw: Raw, tmp_path: Path, how: str, tampered: bytes
) -> None:
    ref = blob_store.put_bytes(b"model weights" + b"\0" * 13987)
    raw.overwrite(ref.digest, tampered)
    out = tmp_path / "out"
    out.mkdir()
    received: list[bytes] = []
    with pytest.raises(IntegrityError, match=ref.digest):
        _read(blob_store, how, ref.digest, out / "model.bin", received)
    assert list(out.iterdir()) == [], "download left a file behind"
    if how == "iter_chunks":
        assert b"".join(received) == tampered, "iter_chunks streams first and judges at the end"


def test_a_refused_download_leaves_the_existing_file_alone(
    blob_store: BlobStore, raw: Raw, tmp_path: Path
) -> None:
    ref = blob_store.put_bytes(b"version 2")
    raw.overwrite(ref.digest, b"version 3")
    dest = tmp_path / "out" / "model.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"version 1")
    with pytest.raises(IntegrityError, match=ref.digest):
        blob_store.download(ref.digest, dest)
    assert dest.read_bytes() == b"version 1"
    assert [p.name for p in dest.parent.iterdir()] == ["model.bin"]


@pytest.mark.parametrize("how", ["size", "get_bytes", "iter_chunks", "download"])
def test_a_missing_blob_is_not_found(blob_store: BlobStore, tmp_path: Path, how: str) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not blob_store.exists(digest)
    with pytest.raises(NotFound, match=digest):
        _read(blob_store, how, digest, tmp_path / "model.bin")
    assert not (tmp_path / "model.bin").exists()


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "abc",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "../" + "a" * 61,
        "a" * 64 + "\n",
        "a" * 32 + "/" + "a" * 31,
    ],
)
def test_a_malformed_digest_is_invalid_input(blob_store: BlobStore, tmp_path: Path, digest: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "exists": lambda: blob_store.exists(digest),
        "size": lambda: blob_store.size(digest),
        "get_bytes": lambda: blob_store.get_bytes(digest),
        "iter_chunks": lambda: blob_store.iter_chunks(digest),
        "download": lambda: blob_store.download(digest, tmp_path / "out"),
        "delete": lambda: blob_store.delete(digest),
    }
    for call in calls.values():
        with pytest.raises(InvalidInput, match="digest"):
            call()
    assert not (tmp_path / "out").exists()


def test_puts_leave_no_temporaries(blob_store: BlobStore, raw: Raw, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    for _ in range(2):  # the second round finds every blob already stored
        blob_store.put_bytes(b"params")
        blob_store.put_file(path)
        blob_store.put_stream(io.BytesIO(b"metrics"))
    assert raw.keys("tmp") == []
    assert len(raw.keys("blobs")) == 3


def test_an_empty_blob_works(blob_store: BlobStore, raw: Raw, tmp_path: Path) -> None:
    empty = _ref(b"")
    (tmp_path / "empty").touch()
    assert blob_store.put_bytes(b"") == empty
    assert blob_store.put_stream(io.BytesIO()) == empty
    assert blob_store.put_file(tmp_path / "empty") == empty
    assert blob_store.size(empty.digest) == 0
    assert blob_store.get_bytes(empty.digest) == b""
    assert list(blob_store.iter_chunks(empty.digest)) == []
    blob_store.download(empty.digest, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b""
    assert raw.keys("blobs") == [_key(empty.digest)]


def test_concurrent_puts_of_the_same_content_leave_one_blob(blob_store: BlobStore, raw: Raw) -> None:
    data = random.Random(3).randbytes(300_000)
    start = threading.Barrier(8)

    def put(i: int) -> BlobRef:
        start.wait()
        return blob_store.put_stream(io.BytesIO(data)) if i % 2 else blob_store.put_bytes(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = set(pool.map(put, range(8)))
    assert refs == {_ref(data)}
    assert raw.keys("blobs") == [_key(_ref(data).digest)]
    assert raw.keys("tmp") == []
    assert blob_store.get_bytes(_ref(data).digest) == data


def test_a_stream_that_fails_midway_stores_nothing(blob_store: BlobStore, raw: Raw) -> None:
    with pytest.raises(InvalidInput, match="connection reset by peer"):
        blob_store.put_stream(cast(BinaryIO, BrokenStream()))
    with pytest.raises(InvalidInput, match="binary mode"):
        blob_store.put_stream(cast(BinaryIO, io.StringIO("text")))
    assert raw.keys("blobs") == []
    assert raw.keys("tmp") == []


def test_an_unreadable_file_is_invalid_input(blob_store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no-such-file"):
        blob_store.put_file(tmp_path / "no-such-file")
    with pytest.raises(InvalidInput):
        blob_store.put_file(tmp_path)


def test_a_deleted_blob_is_gone(blob_store: BlobStore) -> None:
    ref = blob_store.put_bytes(b"old model")
    blob_store.delete(ref.digest)
    assert not blob_store.exists(ref.digest)
    with pytest.raises(NotFound):
        blob_store.get_bytes(ref.digest)
    blob_store.delete(ref.digest)  # deleting again is harmless


@pytest.mark.parametrize("where", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_from_settings_opens_the_configured_store(
    request: pytest.FixtureRequest, tmp_path: Path, where: str
) -> None:
    if where == "s3":
        s3 = request.getfixturevalue("s3_artifacts")
        settings = Settings(home=tmp_path, artifacts=s3.url, s3_endpoint_url=s3.endpoint_url)
    else:
        settings = Settings(home=tmp_path, artifacts=None)
    store = BlobStore.from_settings(settings)
    assert store.root_url == settings.artifacts_url
    ref = store.put_bytes(b"configured")
    assert store.get_bytes(ref.digest) == b"configured"
    if where == "file":
        assert (tmp_path / "artifacts" / _key(ref.digest)).read_bytes() == b"configured"


def test_s3_without_s3fs_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(InvalidInput, match=r"pip install 'steward-ml\[s3\]'"):
        BlobStore("s3://bucket/prefix")


def test_an_unsupported_url_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="file://"):
        BlobStore("ftp://example.com/artifacts")


@pytest.mark.s3
def test_an_unreachable_s3_endpoint_is_service_unavailable(s3_endpoint: str) -> None:
    try:
        import s3fs  # noqa: F401
    except ImportError:
        service_unavailable("s3", "s3fs is not installed (pip install 'steward-ml[s3]')")
    options = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    store = BlobStore("s3://nowhere/prefix", storage_options=options)
    digest = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ServiceUnavailable, match="s3://nowhere/prefix"):
        store.put_bytes(b"x")
    with pytest.raises(ServiceUnavailable, match="s3://nowhere/prefix"):
        store.exists(digest)
    with pytest.raises(ServiceUnavailable, match="s3://nowhere/prefix"):
        store.get_bytes(digest)
