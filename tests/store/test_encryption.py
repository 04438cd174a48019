"""Encryption at rest: blobs sealed under per-blob data keys, on a local folder and on S3 (moto)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import threading
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest

from steward.config import Settings, load_settings
from steward.errors import IntegrityError, InvalidInput, ServiceUnavailable, StewardError
from steward.store import encryption as enc
from steward.store.blobs import BlobRef, BlobStore
from steward.store.keys import KeyProvider, LocalKeyProvider, key_fingerprint, parse_key

CHUNK = 4096
"""The encryption chunk size of most stores here: small, so that a few KB make several chunks."""

RECORD = CHUNK + enc.TAG_SIZE


@dataclass
class Where:
    """Where a test's store lives, and its objects seen straight through fsspec."""

    url: str
    options: dict[str, Any]
    fs: Any
    root: str

    def store(self, keys: KeyProvider | None, chunk_size: int = CHUNK) -> BlobStore:
        """A blob store on this location with ``keys`` (None: no encryption)."""
        return BlobStore(self.url, storage_options=self.options, keys=keys, encryption_chunk_size=chunk_size)

    def listing(self, prefix: str = "blobs") -> list[str]:
        """Keys (relative to the root) of every object under ``prefix``."""
        return sorted(path[len(self.root) + 1 :] for path in self.fs.find(f"{self.root}/{prefix}"))

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/{key}"))

    def info(self, key: str) -> Any:
        """The object's modification time (and, on S3, its ETag)."""
        info = self.fs.info(f"{self.root}/{key}")
        return info.get("mtime"), info.get("LastModified"), info.get("ETag")

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", data)

    def remove(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/{key}")

    def sidecar(self, digest: str) -> str:
        """The key of the one sidecar of ``digest``."""
        found = [key for key in self.listing(f"blobs/{digest[:2]}") if key.endswith(".dek") and digest in key]
        assert len(found) == 1, found
        return found[0]


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEWARD_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("STEWARD_ENCRYPTION_KEY_FILE", raising=False)


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """An empty artifact location: a temporary folder, or a fresh bucket of the moto server."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_artifacts")
        options = dict(s3.storage_options)
        fs, root = fsspec.url_to_fs(s3.url, **options, use_listings_cache=False)
        return Where(s3.url, options, fs, root.rstrip("/"))
    url = (tmp_path / "artifacts").as_uri()
    fs, root = fsspec.url_to_fs(url)
    return Where(url, {}, fs, root.rstrip("/"))


@pytest.fixture
def kek() -> bytes:
    return os.urandom(32)


@pytest.fixture
def keys(kek: bytes) -> LocalKeyProvider:
    return LocalKeyProvider([kek])


@pytest.fixture
def store(where: Where, keys: LocalKeyProvider) -> BlobStore:
    return where.store(keys)


def _key(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def _ref(data: bytes) -> BlobRef:
    return BlobRef(hashlib.sha256(data).hexdigest(), len(data))


def _read_all(store: BlobStore, digest: str, how: str, tmp_path: Path) -> bytes:
    if how == "get_bytes":
        return store.get_bytes(digest)
    if how == "iter_chunks":
        return b"".join(store.iter_chunks(digest, chunk_size=1000))
    store.download(digest, tmp_path / "out.bin")
    return (tmp_path / "out.bin").read_bytes()


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 77])
def test_every_put_and_read_round_trips(store: BlobStore, tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    refs = {store.put_bytes(data), store.put_stream(io.BytesIO(data)), store.put_file(path)}
    assert refs == {_ref(data)}
    digest = _ref(data).digest
    assert store.exists(digest)
    assert store.size(digest) == size
    for how in ("get_bytes", "iter_chunks", "download"):
        assert _read_all(store, digest, how, tmp_path) == data
    chunks = list(store.iter_chunks(digest, chunk_size=7))
    assert b"".join(chunks) == data and all(len(chunk) <= 7 for chunk in chunks)


def test_stored_bytes_are_not_the_plaintext(store: BlobStore, where: Where, kek: bytes) -> None:
    data = b"customer_id,churned\n" + b"4711,1\n" * 2000
    digest = store.put_bytes(data).digest
    ciphertext = where.read(_key(digest))
    assert ciphertext.startswith(enc.MAGIC)
    assert b"customer_id" not in ciphertext and b"4711,1" not in ciphertext
    chunks = -(-len(data) // CHUNK)
    assert len(ciphertext) == enc.HEADER_SIZE + len(data) + chunks * enc.TAG_SIZE
    sidecar = json.loads(where.read(where.sidecar(digest)))
    assert sidecar["algorithm"] == "AES-256-GCM"
    assert sidecar["chunk_size"] == CHUNK
    assert sidecar["key_id"] == key_fingerprint(kek)
    assert where.listing() == sorted([_key(digest), where.sidecar(digest)])
    assert where.listing("tmp") == []


def test_each_blob_gets_its_own_data_key(store: BlobStore, where: Where) -> None:
    one, two = store.put_bytes(b"model a"), store.put_bytes(b"model b")
    sidecars = [json.loads(where.read(where.sidecar(ref.digest))) for ref in (one, two)]
    assert sidecars[0]["wrapped_key"] != sidecars[1]["wrapped_key"]
    assert sidecars[0]["nonce_prefix"] != sidecars[1]["nonce_prefix"]


def test_a_large_file_streams_through_with_flat_memory(tmp_path: Path, keys: LocalKeyProvider) -> None:
    store = BlobStore((tmp_path / "artifacts").as_uri(), keys=keys)  # the default 1 MiB chunks
    source = tmp_path / "weights.bin"
    piece = random.Random(5).randbytes(1 << 20)
    with open(source, "wb") as out:
        for i in range(40):
            out.write(piece[i:] + piece[:i])
    out_path = tmp_path / "copy.bin"
    tracemalloc.start()
    try:
        ref = store.put_file(source)
        store.download(ref.digest, out_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == 40 << 20
    assert peak < 10 << 20, f"peak {peak / (1 << 20):.1f} MiB: a 40 MiB blob was held whole"
    assert hashlib.sha256(out_path.read_bytes()).hexdigest() == ref.digest
    assert store.size(ref.digest) == ref.size


def test_concurrent_puts_of_the_same_content_stay_readable(store: BlobStore, where: Where) -> None:
    data = random.Random(3).randbytes(10 * CHUNK + 5)
    start = threading.Barrier(8)

    def put(i: int) -> BlobRef:
        start.wait()
        return store.put_stream(io.BytesIO(data)) if i % 2 else store.put_bytes(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = set(pool.map(put, range(8)))
    assert refs == {_ref(data)}
    assert store.get_bytes(_ref(data).digest) == data
    assert [key for key in where.listing() if not key.endswith(".dek")] == [_key(_ref(data).digest)]
    assert where.listing("tmp") == []


def test_a_deleted_blob_takes_its_data_key_along(store: BlobStore, where: Where) -> None:
    ref = store.put_bytes(b"old model")
    store.delete(ref.digest)
    assert not store.exists(ref.digest)
    assert where.listing() == []
    store.delete(ref.digest)


def test_a_failed_put_leaves_no_data_key(store: BlobStore, where: Where) -> None:
    class Broken:
        def __init__(self) -> None:
            self.sent = False

        def read(self, size: int = -1) -> bytes:
            if self.sent:
                raise OSError("connection reset by peer")
            self.sent = True
            return b"x" * 10_000

    with pytest.raises(InvalidInput, match="connection reset"):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert where.listing() == []
    assert where.listing("tmp") == []


# --- tampering -----------------------------------------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _records(ciphertext: bytes) -> tuple[bytes, list[bytes]]:
    body = ciphertext[enc.HEADER_SIZE :]
    return ciphertext[: enc.HEADER_SIZE], [body[i : i + RECORD] for i in range(0, len(body), RECORD)]


def _flip_a_byte(c: bytes) -> bytes:
    return _flip(c, enc.HEADER_SIZE + RECORD + 100)


def _swap_two_chunks(c: bytes) -> bytes:
    header, records = _records(c)
    records[0], records[1] = records[1], records[0]
    return header + b"".join(records)


def _cut_the_last_chunk_short(c: bytes) -> bytes:
    return c[:-5]


def _drop_the_last_chunk(c: bytes) -> bytes:
    header, records = _records(c)
    return header + b"".join(records[:-1])


def _repeat_a_chunk(c: bytes) -> bytes:
    header, records = _records(c)
    return header + b"".join([records[0], *records[:-1]])


def _change_the_chunk_size_in_the_header(c: bytes) -> bytes:
    return _flip(c, 8)


def _change_the_nonce_prefix_in_the_header(c: bytes) -> bytes:
    return _flip(c, 12)


CIPHERTEXT_TAMPERING = [
    _flip_a_byte,
    _swap_two_chunks,
    _cut_the_last_chunk_short,
    _drop_the_last_chunk,
    _repeat_a_chunk,
    _change_the_chunk_size_in_the_header,
    _change_the_nonce_prefix_in_the_header,
]


@pytest.mark.parametrize("tamper", CIPHERTEXT_TAMPERING, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("how", ["get_bytes", "iter_chunks", "download"])
def test_tampered_ciphertext_is_an_integrity_error(
    store: BlobStore, where: Where, tmp_path: Path, tamper: Callable[[bytes], bytes], how: str
) -> None:
    data = random.Random(7).randbytes(4 * CHUNK + 300)
    digest = store.put_bytes(data).digest
    where.write(_key(digest), tamper(where.read(_key(digest))))
    with pytest.raises(IntegrityError, match=digest):
        _read_all(store, digest, how, tmp_path)
    assert not (tmp_path / "out.bin").exists()


def _edit(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(sidecar: dict[str, Any]) -> None:
        sidecar[field] = value

    edit.__name__ = f"{field}={value}"
    return edit


def _flip_wrapped_key(sidecar: dict[str, Any]) -> None:
    raw = base64.b64decode(sidecar["wrapped_key"])
    sidecar["wrapped_key"] = base64.b64encode(_flip(raw, 20)).decode()


def _shorten_wrapped_key(sidecar: dict[str, Any]) -> None:
    sidecar["wrapped_key"] = base64.b64encode(base64.b64decode(sidecar["wrapped_key"])[:-1]).decode()


def _flip_nonce_prefix(sidecar: dict[str, Any]) -> None:
    sidecar["nonce_prefix"] = _flip(bytes.fromhex(sidecar["nonce_prefix"]), 0).hex()


SIDECAR_TAMPERING = [
    _flip_wrapped_key,
    _shorten_wrapped_key,
    _flip_nonce_prefix,
    _edit("chunk_size", 2 * CHUNK),
    _edit("algorithm", "AES-128-CBC"),
    _edit("wrapped_key", "not base64!"),
    _edit("key_id", 7),
]


@pytest.mark.parametrize("tamper", SIDECAR_TAMPERING, ids=lambda f: f.__name__.strip("_"))
def test_a_tampered_sidecar_is_an_integrity_error(
    store: BlobStore, where: Where, tamper: Callable[[dict[str, Any]], None]
) -> None:
    digest = store.put_bytes(b"weights " * 3000).digest
    sidecar_key = where.sidecar(digest)
    sidecar = json.loads(where.read(sidecar_key))
    tamper(sidecar)
    where.write(sidecar_key, json.dumps(sidecar).encode())
    with pytest.raises(IntegrityError, match=digest):
        store.get_bytes(digest)


def test_a_sidecar_that_is_not_json_is_an_integrity_error(store: BlobStore, where: Where) -> None:
    digest = store.put_bytes(b"weights").digest
    where.write(where.sidecar(digest), b"\x00garbage")
    with pytest.raises(IntegrityError, match=digest):
        store.get_bytes(digest)


def test_sidecars_swapped_between_blobs_are_an_integrity_error(store: BlobStore, where: Where) -> None:
    one = store.put_bytes(b"model one" * 1000).digest
    two = store.put_bytes(b"model two" * 1000).digest
    side_one, side_two = where.sidecar(one), where.sidecar(two)
    content_one, content_two = where.read(side_one), where.read(side_two)
    where.write(side_one, content_two)
    where.write(side_two, content_one)
    for digest in (one, two):
        with pytest.raises(IntegrityError, match=digest):
            store.get_bytes(digest)


def test_a_chunk_from_another_blob_is_an_integrity_error(store: BlobStore, where: Where) -> None:
    one = store.put_bytes(random.Random(1).randbytes(3 * CHUNK)).digest
    two = store.put_bytes(random.Random(2).randbytes(3 * CHUNK)).digest
    header, records = _records(where.read(_key(one)))
    records[1] = _records(where.read(_key(two)))[1][1]
    where.write(_key(one), header + b"".join(records))
    with pytest.raises(IntegrityError, match=f"blob {one} is corrupt: its encrypted chunk 1 does not"):
        store.get_bytes(one)
    assert store.get_bytes(two) == random.Random(2).randbytes(3 * CHUNK)


def test_a_whole_envelope_moved_to_another_digest_is_an_integrity_error(
    store: BlobStore, where: Where
) -> None:
    one = store.put_bytes(b"model one" * 1000).digest
    two = store.put_bytes(b"model two" * 1000).digest
    side_one, side_two = where.sidecar(one), where.sidecar(two)
    where.remove(side_two)
    where.write(_key(two), where.read(_key(one)))
    moved = side_one.rsplit("/", 1)[-1].replace(one, two)
    where.write(f"blobs/{two[:2]}/{moved}", where.read(side_one))
    with pytest.raises(IntegrityError, match=f"blob {two} is corrupt: its encrypted last chunk"):
        store.get_bytes(two)


def test_a_missing_sidecar_is_an_integrity_error(store: BlobStore, where: Where) -> None:
    digest = store.put_bytes(b"weights" * 100).digest
    where.remove(where.sidecar(digest))
    with pytest.raises(IntegrityError, match="data key sidecar is missing"):
        store.get_bytes(digest)


# --- keys ----------------------------------------------------------------------------------------


def test_the_wrong_key_is_refused_without_revealing_either(
    store: BlobStore, where: Where, kek: bytes
) -> None:
    digest = store.put_bytes(b"secret weights").digest
    other = os.urandom(32)
    with pytest.raises(InvalidInput, match="not configured") as caught:
        where.store(LocalKeyProvider([other])).get_bytes(digest)
    assert key_fingerprint(kek) in caught.value.message
    assert caught.value.details["digest"] == digest
    _assert_no_key_material(str(caught.value) + repr(caught.value.details), [kek, other])


def test_a_sidecar_pointing_at_another_known_key_does_not_unwrap(
    store: BlobStore, where: Where, kek: bytes
) -> None:
    digest = store.put_bytes(b"secret weights").digest
    other = os.urandom(32)
    sidecar_key = where.sidecar(digest)
    sidecar = json.loads(where.read(sidecar_key))
    sidecar["key_id"] = key_fingerprint(other)
    where.write(sidecar_key, json.dumps(sidecar).encode())
    with pytest.raises(IntegrityError, match=digest) as caught:
        where.store(LocalKeyProvider([other, kek])).get_bytes(digest)
    _assert_no_key_material(str(caught.value), [kek, other])


def test_a_store_without_a_key_says_the_blob_is_encrypted(
    store: BlobStore, where: Where, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"secret weights").digest
    keyless = where.store(None)
    for how in ("get_bytes", "iter_chunks", "download"):
        with pytest.raises(InvalidInput, match="is encrypted: set STEWARD_ENCRYPTION_KEY"):
            _read_all(keyless, digest, how, tmp_path)
    assert keyless.exists(digest)


def test_plaintext_blobs_stay_readable_after_encryption_is_turned_on(
    where: Where, keys: LocalKeyProvider
) -> None:
    before = where.store(None)
    old = before.put_bytes(b"written in the clear" * 500)
    after = where.store(keys)
    assert after.get_bytes(old.digest) == b"written in the clear" * 500
    assert after.size(old.digest) == old.size
    assert after.put_bytes(b"written in the clear" * 500) == old  # stored once: left as it was
    new = after.put_bytes(b"written encrypted")
    assert where.read(_key(new.digest)).startswith(enc.MAGIC)
    assert where.read(_key(old.digest)) == b"written in the clear" * 500
    status = after.key_status()
    assert (status.encrypted, status.unencrypted) == (1, 1)


def test_plaintext_that_looks_like_ciphertext_is_still_plaintext(store: BlobStore, where: Where) -> None:
    sealed = where.read(_key(store.put_bytes(b"inner").digest))  # begins with a valid header
    ref = where.store(None).put_bytes(sealed)
    assert where.read(_key(ref.digest)) == sealed
    for reader in (store, where.store(None)):
        assert reader.get_bytes(ref.digest) == sealed
        assert reader.size(ref.digest) == len(sealed)


def test_a_kms_style_provider_plugs_in(where: Where) -> None:
    class Kms:
        key_id = "arn:aws:kms:eu-west-1:1111:key/demo"

        def __init__(self) -> None:
            self.inner = LocalKeyProvider([os.urandom(32)])
            self.calls: list[str] = []

        def wrap(self, data_key: bytes) -> bytes:
            self.calls.append("wrap")
            return self.inner.wrap(data_key)

        def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
            assert key_id == self.key_id
            self.calls.append("unwrap")
            return self.inner.unwrap(wrapped, self.inner.key_id)

    kms = Kms()
    store = where.store(kms)
    ref = store.put_bytes(b"model")
    assert store.get_bytes(ref.digest) == b"model"
    assert kms.calls == ["wrap", "unwrap"]
    assert json.loads(where.read(where.sidecar(ref.digest)))["key_id"] == Kms.key_id


def test_a_failing_provider_is_service_unavailable(where: Where) -> None:
    class Down:
        key_id = "kms:down"

        def wrap(self, data_key: bytes) -> bytes:
            raise ConnectionError("kms.eu-west-1.amazonaws.com unreachable")

        def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
            raise ConnectionError("unreachable")

    with pytest.raises(ServiceUnavailable, match="key provider failed to wrap"):
        where.store(Down()).put_bytes(b"model")
    assert where.listing() == []


@pytest.mark.parametrize("size", [0, 1000, 2048, CHUNK + 1, 1 << 27])
def test_a_bad_chunk_size_is_invalid_input(where: Where, keys: LocalKeyProvider, size: int) -> None:
    with pytest.raises(InvalidInput, match="chunk size"):
        where.store(keys, chunk_size=size)


# --- rotation ------------------------------------------------------------------------------------


def test_rotation_rewraps_data_keys_without_touching_the_ciphertext(where: Where) -> None:
    old, new = os.urandom(32), os.urandom(32)
    writer = where.store(LocalKeyProvider([old]))
    blobs = {writer.put_bytes(random.Random(i).randbytes(i * 1000)).digest: i for i in range(1, 12)}
    before = {digest: (where.read(_key(digest)), where.info(_key(digest))) for digest in blobs}

    rotating = where.store(LocalKeyProvider([new, old]))
    seen: list[int] = []
    report = rotating.rotate_keys(progress=lambda r: seen.append(r.prefixes_done), workers=4)

    assert (report.rewrapped, report.current, report.failed) == (len(blobs), 0, 0)
    assert report.key_id == key_fingerprint(new)
    assert seen == list(range(1, 257))
    for digest, (data, stamp) in before.items():
        assert where.read(_key(digest)) == data
        assert where.info(_key(digest)) == stamp
        assert json.loads(where.read(where.sidecar(digest)))["key_id"] == key_fingerprint(new)
    only_new = where.store(LocalKeyProvider([new]))
    for digest, i in blobs.items():
        assert only_new.get_bytes(digest) == random.Random(i).randbytes(i * 1000)
    with pytest.raises(InvalidInput, match="not configured"):
        where.store(LocalKeyProvider([old])).get_bytes(next(iter(blobs)))

    again = rotating.rotate_keys()
    assert (again.rewrapped, again.current, again.failed) == (0, len(blobs), 0)
    assert where.listing("tmp") == []


def test_rotation_reports_data_keys_it_cannot_unwrap_and_carries_on(where: Where) -> None:
    lost, old, new = os.urandom(32), os.urandom(32), os.urandom(32)
    orphan = where.store(LocalKeyProvider([lost])).put_bytes(b"under a lost key").digest
    kept = where.store(LocalKeyProvider([old])).put_bytes(b"under the old key").digest
    report = where.store(LocalKeyProvider([new, old])).rotate_keys()
    assert (report.rewrapped, report.failed) == (1, 1)
    [(sidecar, message)] = report.failures
    assert orphan in sidecar and "not configured" in message
    assert where.store(LocalKeyProvider([new])).get_bytes(kept) == b"under the old key"
    _assert_no_key_material(message, [lost, old, new])


def test_rotation_needs_a_key(where: Where) -> None:
    with pytest.raises(InvalidInput, match="STEWARD_ENCRYPTION_KEY"):
        where.store(None).rotate_keys()


def test_status_counts_blobs_and_data_keys_per_key(where: Where) -> None:
    one, two = os.urandom(32), os.urandom(32)
    where.store(None).put_bytes(b"clear")
    where.store(LocalKeyProvider([one])).put_bytes(b"a")
    where.store(LocalKeyProvider([one])).put_bytes(b"b")
    gone = where.store(LocalKeyProvider([two])).put_bytes(b"c").digest
    where.remove(_key(gone))  # as if the write was interrupted before the ciphertext landed
    status = where.store(LocalKeyProvider([two])).key_status()
    assert status.key_id == key_fingerprint(two)
    assert status.data_keys == {key_fingerprint(one): 2, key_fingerprint(two): 1}
    assert (status.encrypted, status.unencrypted, status.orphaned, status.unreadable) == (2, 1, 1, 0)


def test_a_custom_backend_cannot_be_walked(keys: LocalKeyProvider) -> None:
    class Memory:
        url = "memory://x"
        writes_are_atomic = True

    store = BlobStore("memory://x", backend=Memory(), keys=keys)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="cannot list"):
        store.rotate_keys()


# --- the keys from settings ----------------------------------------------------------------------


def _written(key: bytes) -> dict[str, str]:
    return {
        "hex": key.hex(),
        "HEX": key.hex().upper(),
        "urlsafe": base64.urlsafe_b64encode(key).decode(),
        "urlsafe, unpadded": base64.urlsafe_b64encode(key).decode().rstrip("="),
        "standard": base64.b64encode(key).decode(),
    }


def test_keys_are_read_as_hex_or_base64() -> None:
    key = bytes(range(200, 232))  # has '+' and '/' in standard base64
    for form, text in _written(key).items():
        assert parse_key(f"  {text}\n") == key, form
    for bad in ["", "abc", key.hex()[:-2], key.hex() + "00", "z" * 64, base64.b64encode(key[:31]).decode()]:
        assert parse_key(bad) is None


def test_keys_come_from_the_variable_then_the_file_newest_first(tmp_path: Path) -> None:
    newest, middle, oldest = os.urandom(32), os.urandom(32), os.urandom(32)
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2024-05-01\n{middle.hex()}\n\n  {base64.b64encode(oldest).decode()}\n")
    path.chmod(0o600)
    settings = Settings(home=tmp_path, encryption_key=newest.hex(), encryption_key_file=path)
    provider = LocalKeyProvider.from_settings(settings)
    assert provider is not None
    assert provider.key_ids == tuple(key_fingerprint(k) for k in (newest, middle, oldest))
    assert provider.key_id == key_fingerprint(newest)
    listed = LocalKeyProvider.from_settings(
        Settings(home=tmp_path, encryption_key=f"{middle.hex()}, {newest.hex()}")
    )
    assert listed is not None and listed.key_ids == (key_fingerprint(middle), key_fingerprint(newest))
    assert LocalKeyProvider.from_settings(Settings(home=tmp_path)) is None
    assert LocalKeyProvider.from_settings(Settings(home=tmp_path, encryption_key="  ")) is None


def test_wrapping_round_trips_under_any_known_key() -> None:
    old, new = LocalKeyProvider([b"o" * 32]), LocalKeyProvider([b"n" * 32, b"o" * 32])
    data_key = os.urandom(32)
    assert new.unwrap(old.wrap(data_key), old.key_id) == data_key
    assert new.unwrap(new.wrap(data_key), new.key_id) == data_key
    with pytest.raises(IntegrityError):
        new.unwrap(old.wrap(data_key), new.key_id)
    with pytest.raises(InvalidInput, match="not configured"):
        old.unwrap(new.wrap(data_key), new.key_id)
    with pytest.raises(InvalidInput):
        new.wrap(b"short")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("0123", "STEWARD_ENCRYPTION_KEY: key 1 of 1"),
        ("{good},{bad}", "STEWARD_ENCRYPTION_KEY: key 2 of 2"),
        ("{good},", "STEWARD_ENCRYPTION_KEY: key 2 of 2"),
        ("{good}0", "STEWARD_ENCRYPTION_KEY: key 1 of 1"),
    ],
)
def test_a_bad_key_names_the_setting_but_not_the_value(tmp_path: Path, value: str, where: str) -> None:
    good = os.urandom(32).hex()
    bad = good[:-6] + "zzzzzz"
    text = value.format(good=good, bad=bad)
    settings = Settings(home=tmp_path, encryption_key=text)
    with pytest.raises(InvalidInput, match=where) as caught:
        BlobStore.from_settings(settings)
    assert caught.value.details == {"field": "encryption_key"}
    for secret in (good, bad, good[:16], bad[:16], text):
        assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it"),
        ("", "holds no key"),
        ("# only a comment\n", "holds no key"),
        ("{good}\nnot-a-key\n", "line 2"),
    ],
)
def test_a_bad_key_file_names_the_file_and_line(tmp_path: Path, content: str | None, message: str) -> None:
    good = os.urandom(32).hex()
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content.format(good=good))
    with pytest.raises(InvalidInput, match=message) as caught:
        BlobStore.from_settings(Settings(home=tmp_path, encryption_key_file=path))
    assert str(path) in caught.value.message
    assert good not in caught.value.message and "not-a-key" not in caught.value.message


def test_a_key_file_open_to_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys"
    path.write_text(os.urandom(32).hex())
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="steward.store.keys"):
        LocalKeyProvider.from_settings(Settings(home=tmp_path, encryption_key_file=path))
    assert "chmod 600" in caplog.text


def test_from_settings_encrypts_with_the_configured_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kek: bytes
) -> None:
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", base64.urlsafe_b64encode(kek).decode())
    store = BlobStore.from_settings(load_settings(home=tmp_path))
    assert store.keys is not None and store.keys.key_id == key_fingerprint(kek)
    ref = store.put_bytes(b"configured")
    assert (tmp_path / "artifacts" / _key(ref.digest)).read_bytes().startswith(enc.MAGIC)
    assert store.get_bytes(ref.digest) == b"configured"


# --- no key material anywhere --------------------------------------------------------------------


def _forms(key: bytes) -> list[str]:
    return [*_written(key).values(), key.hex()[:16], key.hex()[-16:]]


def _assert_no_key_material(text: str, keys: list[bytes]) -> None:
    for key in keys:
        for form in _forms(key):
            assert form not in text, "key material leaked"


@pytest.mark.parametrize("where", ["file"], indirect=True)
def test_no_key_material_in_errors_logs_or_reprs(
    where: Where, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek, other = os.urandom(32), os.urandom(32)
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", f"{kek.hex()},{base64.b64encode(other).decode()}")
    settings = load_settings(home=tmp_path)
    store = where.store(LocalKeyProvider.from_settings(settings))
    texts = [repr(settings), str(settings), repr(settings.model_dump(exclude={"encryption_key"}))]
    texts += [repr(store), repr(store.keys)]
    errors: list[StewardError] = []
    with caplog.at_level(logging.DEBUG):
        digest = store.put_bytes(b"the model" * 1000).digest
        store.get_bytes(digest)
        store.rotate_keys()
        store.key_status()
        sidecar = where.sidecar(digest)
        texts.append(where.read(sidecar).decode())
        attempts: list[Callable[[], object]] = [
            lambda: where.store(LocalKeyProvider([os.urandom(32)])).get_bytes(digest),
            lambda: where.store(None).get_bytes(digest),
            lambda: LocalKeyProvider([kek]).unwrap(b"\x01" + b"\x00" * 60, key_fingerprint(kek)),
            lambda: BlobStore.from_settings(Settings(home=tmp_path, encryption_key=kek.hex()[:-1])),
            lambda: BlobStore.from_settings(
                Settings(home=tmp_path, encryption_key=kek.hex() + "," + "x" * 44)
            ),
        ]
        where.write(_key(digest), _flip_a_byte(where.read(_key(digest))))
        attempts.append(lambda: store.get_bytes(digest))
        for attempt in attempts:
            with pytest.raises(StewardError) as caught:
                attempt()
            errors.append(caught.value)
    texts += [f"{e!s} {e!r} {e.details!r} {e.to_dict()!r}" for e in errors]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    _assert_no_key_material("\n".join(texts), [kek, other])
    assert {type(e) for e in errors} == {InvalidInput, IntegrityError}
