"""The content-addressed blob store: bytes named by their SHA-256, stored once, verified on every read.

Blobs live at ``<root>/blobs/<first two hex>/<digest>``, written under ``<root>/tmp/`` and moved into
place whole, so a blob's key never holds anything but its complete content.

With a key provider (``STEWARD_ENCRYPTION_KEY``), blobs are stored encrypted, each under its own data
key, in the envelope format of ``steward.store.encryption``: the ciphertext under the same key (the
plaintext's digest), the wrapped data key in a sidecar beside it. Reads decrypt and still check the
plaintext digest; blobs stored before encryption was turned on are still read as they are.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from steward.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    StewardError,
)
from steward.store import encryption as enc
from steward.store.backends import ByteBackend, FsspecBackend

if TYPE_CHECKING:
    from steward.config import Settings
    from steward.store.keys import KeyProvider

CHUNK_SIZE = 1 << 20
"""Bytes read, hashed and written at a time."""

_DIGEST = re.compile(r"[0-9a-f]{64}")
_SIDECAR = re.compile(r"([0-9a-f]{64})\.[0-9a-f]{14}" + re.escape(enc.SIDECAR_SUFFIX))
_PREFIXES = 256
_MIN_READ = 64 * 1024


@dataclass(frozen=True)
class BlobRef:
    """A stored blob.

    Attributes:
        digest: Lowercase hex SHA-256 of the bytes.
        size: Length of the bytes.
    """

    digest: str
    size: int


class BlobStore:
    """Content-addressed storage of immutable bytes, on a local folder or an S3 bucket.

    Every method taking a digest raises ``InvalidInput`` unless it is 64 lowercase hex characters, and
    every method raises ``ServiceUnavailable`` (naming the URL) when the storage fails.

    With ``keys``, every blob stored is encrypted (``steward.store.encryption``) and every read of an
    encrypted blob decrypts it; reads raise ``IntegrityError`` for an altered ciphertext or sidecar, as
    for altered plaintext. Without ``keys``, reading an encrypted blob raises ``InvalidInput``.

    Args:
        root_url: The store's root: ``file:///path`` or ``s3://bucket/prefix``.
        storage_options: fsspec options, e.g. ``{"endpoint_url": "http://127.0.0.1:9000"}`` for s3fs.
        backend: A ``ByteBackend`` to use instead of the fsspec one ``root_url`` names.
        keys: The key provider wrapping each blob's data key; blobs are stored in the clear without.
        encryption_chunk_size: Plaintext bytes per encrypted chunk (a power of two, 4 KiB to 64 MiB).

    Raises:
        InvalidInput: If the URL is not ``file://`` or ``s3://``, s3fs is needed and not installed, or
            the chunk size is not allowed.
    """

    def __init__(
        self,
        root_url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        backend: ByteBackend | None = None,
        keys: KeyProvider | None = None,
        encryption_chunk_size: int = enc.DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.root_url = root_url.rstrip("/")
        enc.check_chunk_size(encryption_chunk_size)
        self._listing_options: dict[str, Any] | None = None
        if backend is None:
            with self._guard():
                backend = FsspecBackend(root_url, storage_options)
            self._listing_options = dict(storage_options or {})
        self._backend: ByteBackend = backend
        self._keys = keys
        self._encryption_chunk_size = encryption_chunk_size

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """Open the store at ``settings.artifacts_url``, on ``settings.s3_endpoint_url`` if set.

        S3 credentials come from the usual AWS variables (``AWS_ACCESS_KEY_ID``, profiles, roles). With
        ``STEWARD_ENCRYPTION_KEY`` or ``STEWARD_ENCRYPTION_KEY_FILE`` set, blobs are encrypted under it.

        Raises:
            InvalidInput: If an encryption key is malformed (naming the setting, never the value).
        """
        from steward.store.keys import LocalKeyProvider

        url = settings.artifacts_url
        options: dict[str, Any] = {}
        if settings.s3_endpoint_url and url.startswith(("s3://", "s3a://")):
            options["endpoint_url"] = settings.s3_endpoint_url
        return cls(url, storage_options=options, keys=LocalKeyProvider.from_settings(settings))

    @property
    def keys(self) -> KeyProvider | None:
        """The key provider new blobs are encrypted with, or None if they are stored in the clear."""
        return self._keys

    def __repr__(self) -> str:
        return f"BlobStore({self.root_url!r})"

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data`` and return its reference; content already stored is not written again.

        Raises:
            InvalidInput: If ``data`` is not bytes-like.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"expected bytes, got {type(data).__name__}", {"field": "data"})
        data = bytes(data)  # an immutable copy, so the bytes written are the bytes hashed
        digest = hashlib.sha256(data).hexdigest()
        self._put_known(digest, (data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)))
        return BlobRef(digest, len(data))

    def put_file(self, path: str | os.PathLike[str]) -> BlobRef:
        """Store the contents of a local file, read in chunks (on S3, straight to the blob's key).

        Raises:
            InvalidInput: If the file cannot be read.
            Conflict: If the file changed while it was being stored (nothing is stored then).
        """
        try:  # backend failures leave _guard as StewardErrors: an OSError here is the local file's
            with open(path, "rb") as stream:
                if not self._backend.writes_are_atomic:
                    return self.put_stream(stream)
                # Hashed first, so the bytes can go straight to their key; hashed again on the way and
                # refused if the file changed in between.
                first = _Hashing(stream, str(path))
                deque(first, maxlen=0)
                stream.seek(0)
                self._put_known(first.digest(), _Hashing(stream, str(path), expect=first.digest()))
        except OSError as exc:
            raise InvalidInput(f"cannot read {os.fspath(path)}: {exc}", {"field": "path"}) from exc
        return BlobRef(first.digest(), first.size)

    def put_stream(self, stream: BinaryIO) -> BlobRef:
        """Store what the binary ``stream`` yields until ``b""``, hashing it in chunks as it is written.

        Raises:
            InvalidInput: If reading the stream fails or it yields text.
        """
        chunks = _Hashing(stream, "the stream")
        with self._guard():
            if self._keys is not None:
                self._put_encrypted(self._keys, chunks, chunks.digest)
            else:
                tmp = f"tmp/{uuid.uuid4().hex}"
                self._backend.write(tmp, chunks)
                self._publish(tmp, _key(chunks.digest()))
        return BlobRef(chunks.digest(), chunks.size)

    def delete(self, digest: str) -> None:
        """Delete a blob (and its data key, if it is encrypted); deleting a missing blob does nothing."""
        key = _key(digest)
        with self._guard():
            try:
                header = self._read_header(key)
            except FileNotFoundError:
                return
            self._backend.delete(key)
            if header is not None:
                self._backend.delete(enc.sidecar_key(key, header.nonce_prefix))

    def exists(self, digest: str) -> bool:
        """Return whether the blob is stored."""
        key = _key(digest)
        with self._guard():
            return self._backend.exists(key)

    def size(self, digest: str) -> int:
        """Return the size of the blob's bytes (of its plaintext, if it is encrypted).

        A store without keys does not look inside blobs here: it returns an encrypted blob's stored size.

        Raises:
            NotFound: If the blob is not stored.
            IntegrityError: If an encrypted blob's stored size fits no plaintext.
        """
        key = _key(digest)
        with self._guard(digest):
            stored = self._backend.size(key)
            if self._keys is None or stored < enc.HEADER_SIZE + enc.TAG_SIZE:
                return stored
            header = self._read_header(key)
            if header is None or not self._backend.exists(enc.sidecar_key(key, header.nonce_prefix)):
                return stored
        return enc.plaintext_size(stored, header, digest)

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's bytes after checking them against the digest.

        Raises:
            NotFound: If the blob is not stored.
            IntegrityError: If the stored bytes do not match the digest.
        """
        return b"".join(self.iter_chunks(digest))

    def iter_chunks(self, digest: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream the blob's bytes, hashing them as they go.

        A malformed digest raises at once, a missing blob on the first ``next()`` and a mismatch after
        the last chunk: a consumer must read to the end to know the bytes were good.

        Args:
            digest: The blob's digest.
            chunk_size: Largest chunk to yield.

        Raises:
            InvalidInput: If ``chunk_size`` is not positive.
            NotFound: If the blob is not stored.
            IntegrityError: If the stored bytes do not match the digest.
        """
        key = _key(digest)
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be positive, got {chunk_size}", {"field": "chunk_size"})
        return self._verified(digest, key, chunk_size)

    def plain_local_file(self, digest: str) -> str | None:
        """The local file holding the blob's bytes as they are, if there is one: a ``file://`` store, and
        a blob stored in the clear (not encrypted). None otherwise (S3, encrypted, another backend).

        Readers such as DuckDB may then scan the file in place instead of a downloaded copy; the file
        is immutable (content-addressed); a careful reader still hashes it against its digest.
        """
        key = _key(digest)
        local = getattr(self._backend, "local_file", None)
        path = local(key) if local is not None else None
        if path is None:
            return None
        with self._guard(digest):
            if self._read_header(key) is not None:
                return None  # encrypted: only the decrypting read path may be used
        return str(path)

    def download(self, digest: str, dest: str | os.PathLike[str]) -> None:
        """Write the blob's verified bytes to the local file ``dest``, replacing it.

        The bytes go to a temporary file next to ``dest``, which is renamed into place only once they
        match the digest; on any failure ``dest`` is left as it was.

        Raises:
            InvalidInput: If ``dest`` cannot be written.
            NotFound: If the blob is not stored.
            IntegrityError: If the stored bytes do not match the digest.
        """
        chunks = self.iter_chunks(digest)
        target = Path(dest)
        part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, target)
        except OSError as exc:
            raise InvalidInput(f"cannot write {target}: {exc}", {"field": "dest"}) from exc
        finally:
            with suppress(OSError):
                part.unlink(missing_ok=True)

    def key_status(
        self, progress: Callable[[enc.KeyStatus], None] | None = None, workers: int = 8
    ) -> enc.KeyStatus:
        """Count the blobs stored in the clear and the data keys per key-encryption key.

        Args:
            progress: Called with the counts so far after each of the 256 key prefixes.
            workers: Sidecars read at once.

        Raises:
            InvalidInput: If the backend cannot list its objects.
        """
        status = enc.KeyStatus(self._keys.key_id if self._keys is not None else None)
        workers = max(1, workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for names in self._prefixes(workers):
                blobs = {name for name in names if _DIGEST.fullmatch(name)}
                sidecars = [name for name in names if _SIDECAR.fullmatch(name)]
                keyed = {name[:64] for name in sidecars}
                status.encrypted += len(blobs & keyed)
                status.unencrypted += len(blobs - keyed)
                status.orphaned += sum(1 for name in sidecars if name[:64] not in blobs)
                for key_id in pool.map(self._sidecar_key_id, sidecars):
                    if key_id is None:
                        status.unreadable += 1
                    else:
                        status.data_keys[key_id] = status.data_keys.get(key_id, 0) + 1
                status.prefixes_done += 1
                if progress is not None:
                    progress(status)
        return status

    def rotate_keys(
        self, progress: Callable[[enc.RotationReport], None] | None = None, workers: int = 8
    ) -> enc.RotationReport:
        """Wrap every data key under the newest key of the store's provider; the ciphertexts stay as they are.

        Each sidecar is unwrapped with the key it names and replaced whole; sidecars already under the
        newest key are left alone, so running it again does nothing. Afterwards older keys can go.

        Args:
            progress: Called with the counts so far after each of the 256 key prefixes.
            workers: Sidecars rewrapped at once (each is a read and a write, and two provider calls).

        Raises:
            InvalidInput: If the store has no key provider, or its backend cannot list its objects.
        """
        keys = self._keys
        if keys is None:
            raise InvalidInput(
                "no encryption key is configured: set STEWARD_ENCRYPTION_KEY (newest first, comma-separated) "
                "or STEWARD_ENCRYPTION_KEY_FILE",
                {"field": "encryption_key"},
            )
        report = enc.RotationReport(keys.key_id)
        workers = max(1, workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for names in self._prefixes(workers):
                sidecars = [name for name in names if _SIDECAR.fullmatch(name)]
                for name, outcome in zip(sidecars, pool.map(self._rewrap, sidecars), strict=True):
                    if outcome is True:
                        report.rewrapped += 1
                    elif outcome is False:
                        report.current += 1
                    elif outcome is not None:
                        report.record_failure(f"blobs/{name[:2]}/{name}", outcome)
                report.prefixes_done += 1
                if progress is not None:
                    progress(report)
        return report

    def _rewrap(self, name: str) -> bool | str | None:
        # True: rewrapped; False: already current; None: gone meanwhile; a string: why it failed.
        assert self._keys is not None
        digest, key = name[:64], f"blobs/{name[:2]}/{name}"
        try:
            with self._guard(digest):
                stored = self._read_small(key, digest)
            sidecar = enc.rewrap(stored, self._keys, digest)
            if sidecar is None:
                return False
            with self._guard():
                self._write_small(key, sidecar.to_json())
        except NotFound:
            return None
        except StewardError as exc:
            return exc.message
        return True

    def _sidecar_key_id(self, name: str) -> str | None:
        digest = name[:64]
        try:
            with self._guard(digest):
                stored = self._read_small(f"blobs/{name[:2]}/{name}", digest)
            return enc.Sidecar.from_json(stored, digest).key_id
        except StewardError:
            return None

    def _prefixes(self, workers: int) -> Iterator[list[str]]:
        """The names of the objects under each of ``blobs/00`` … ``blobs/ff``, in order.

        Up to ``workers`` listings run ahead (one request or more each on S3), never the whole store.
        """
        if self._listing_options is None:
            raise InvalidInput(
                f"the blob store {self.root_url} is on a custom backend, which cannot list its objects",
                {"field": "artifacts"},
            )
        import fsspec

        options = dict(self._listing_options)
        if self.root_url.startswith(("s3://", "s3a://")):
            options["use_listings_cache"] = False
        with self._guard():
            fs, root = fsspec.url_to_fs(self.root_url, **options)
            root = str(root).rstrip("/")
            try:  # one listing finds the prefixes in use: a small store is walked in a few requests
                present = {
                    str(path).rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(f"{root}/blobs", detail=False)
                }
            except FileNotFoundError:
                present = set()

        def names(prefix: int) -> list[str]:
            if f"{prefix:02x}" not in present:
                return []
            with self._guard():
                try:
                    paths = fs.find(f"{root}/blobs/{prefix:02x}")
                except FileNotFoundError:
                    paths = []
            return [str(path).rsplit("/", 1)[-1] for path in paths]

        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = deque(pool.submit(names, prefix) for prefix in range(min(workers, _PREFIXES)))
            for prefix in range(workers, _PREFIXES + workers):
                listing = pending.popleft().result()
                if prefix < _PREFIXES:
                    pending.append(pool.submit(names, prefix))
                yield listing

    def _put_known(self, digest: str, chunks: Iterable[bytes]) -> None:
        key = _key(digest)
        with self._guard():
            if self._backend.exists(key):
                return
            if self._keys is not None:
                self._put_encrypted(self._keys, chunks, lambda: digest, key)
                return
            if self._backend.writes_are_atomic:
                self._backend.write(key, chunks)
                return
            tmp = f"tmp/{uuid.uuid4().hex}"
            self._backend.write(tmp, chunks)
            self._publish(tmp, key)

    def _put_encrypted(
        self, keys: KeyProvider, plaintext: Iterable[bytes], digest: Callable[[], str], key: str | None = None
    ) -> None:
        # The sidecar is in place before the ciphertext appears, so a blob that exists can be read. Two
        # writers of the same content each leave their own sidecar (its name is the nonce prefix the
        # ciphertext's header carries), so whichever ciphertext lands last finds its key beside it.
        envelope = enc.Envelope.new(keys, self._encryption_chunk_size)
        sealed = envelope.encrypt(plaintext, digest)
        if key is not None and self._backend.writes_are_atomic:
            sidecar = enc.sidecar_key(key, envelope.header.nonce_prefix)
            self._write_small(sidecar, envelope.sidecar.to_json())
            try:
                self._backend.write(key, sealed)
            except BaseException:
                with suppress(OSError):
                    self._backend.delete(sidecar)
                raise
            return
        tmp = f"tmp/{uuid.uuid4().hex}"
        self._backend.write(tmp, sealed)
        moved = False
        try:
            key = _key(digest())
            if self._backend.exists(key):
                return  # stored once: the copy already there (with its own data key) has the same bytes
            sidecar = enc.sidecar_key(key, envelope.header.nonce_prefix)
            self._write_small(sidecar, envelope.sidecar.to_json())
            try:
                self._backend.move(tmp, key)
                moved = True
            except BaseException:
                with suppress(OSError):
                    self._backend.delete(sidecar)
                raise
        finally:
            if not moved:
                with suppress(OSError):
                    self._backend.delete(tmp)

    def _write_small(self, key: str, data: bytes) -> None:
        # Sidecars are replaced whole (by rotation too): never visible half-written.
        if self._backend.writes_are_atomic:
            self._backend.write(key, [data])
            return
        tmp = f"tmp/{uuid.uuid4().hex}"
        self._backend.write(tmp, [data])
        try:
            self._backend.move(tmp, key)
        except BaseException:
            with suppress(OSError):
                self._backend.delete(tmp)
            raise

    def _read_small(self, key: str, digest: str) -> bytes:
        parts: list[bytes] = []
        size = 0
        pieces = self._backend.read(key, enc.MAX_SIDECAR_SIZE + 1)
        try:
            for part in pieces:
                parts.append(part)
                size += len(part)
                if size > enc.MAX_SIDECAR_SIZE:
                    message = f"blob {digest} is corrupt: its data key sidecar is too large"
                    raise IntegrityError(message, {"digest": digest})
        finally:
            pieces.close()
        return b"".join(parts)

    def _read_header(self, key: str) -> enc.Header | None:
        pieces = self._backend.read(key, enc.HEADER_SIZE)
        try:
            return enc.Header.parse(b"".join(_head(pieces)))
        finally:
            pieces.close()

    def _sidecar(self, digest: str, key: str, header: enc.Header) -> enc.Sidecar | None:
        with self._guard():
            try:
                stored = self._read_small(enc.sidecar_key(key, header.nonce_prefix), digest)
            except FileNotFoundError:
                return None  # plaintext that happens to begin like a header
        return enc.Sidecar.from_json(stored, digest)

    def _publish(self, tmp: str, key: str) -> None:
        try:
            if self._backend.exists(key):
                self._backend.delete(tmp)  # stored once: the copy already there has the same bytes
            else:
                self._backend.move(tmp, key)
        except BaseException:
            with suppress(OSError):
                self._backend.delete(tmp)
            raise

    def _verified(self, digest: str, key: str, chunk_size: int) -> Iterator[bytes]:
        sha = hashlib.sha256()
        # Read in pieces of at least 64 KiB (handed out in chunk_size slices): decryption buffers whole
        # encrypted chunks, and tiny reads would make that slow.
        pieces = self._backend.read(key, max(chunk_size, _MIN_READ))
        header: enc.Header | None = None
        try:
            with self._guard(digest):
                head = _head(pieces)
            start = head[0] if len(head) == 1 else b"".join(head)
            header = enc.Header.parse(start) if start.startswith(enc.MAGIC) else None
            sidecar = self._sidecar(digest, key, header) if header is not None else None
            chunks: Iterator[bytes]
            if header is not None and sidecar is not None:
                body = itertools.chain([start[enc.HEADER_SIZE :]], pieces)
                chunks = _resliced(self._decrypted(digest, header, sidecar, body), chunk_size)
            else:
                chunks = _resliced(itertools.chain(head, pieces), chunk_size)
            while True:
                with self._guard(digest):
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                sha.update(chunk)
                yield chunk
        finally:
            pieces.close()
        actual = sha.hexdigest()
        if actual != digest:
            why = f"its stored bytes hash to {actual}"
            if header is not None and sidecar is None:
                why += " (they begin like an encrypted blob, but its data key sidecar is missing)"
            raise IntegrityError(f"blob {digest} is corrupt: {why}", {"digest": digest, "actual": actual})

    def _decrypted(
        self, digest: str, header: enc.Header, sidecar: enc.Sidecar, body: Iterable[bytes]
    ) -> Iterator[bytes]:
        if self._keys is None:
            raise InvalidInput(
                f"blob {digest} is encrypted: set STEWARD_ENCRYPTION_KEY (or STEWARD_ENCRYPTION_KEY_FILE) "
                "to the key it was stored with",
                {"field": "encryption_key", "digest": digest},
            )
        data_key = enc.unwrap_data_key(self._keys, sidecar, digest, header)
        return enc.decrypt(data_key, header, digest, body)

    @contextmanager
    def _guard(self, digest: str | None = None) -> Iterator[None]:
        # Backends raise FileNotFoundError for a missing key and OSError for any other failure.
        try:
            yield
        except OSError as exc:
            if digest is not None and isinstance(exc, FileNotFoundError):
                raise NotFound(f"blob {digest} not found in {self.root_url}", {"digest": digest}) from None
            message = f"blob store {self.root_url} failed: {exc}"
            raise ServiceUnavailable(message, {"url": self.root_url}) from exc


class _Hashing:
    """The chunks of a binary stream, hashed and counted as a backend consumes them."""

    def __init__(self, stream: BinaryIO, source: str, expect: str | None = None) -> None:
        self._stream = stream
        self._source = source
        self._expect = expect
        self._sha = hashlib.sha256()
        self.size = 0
        self.digest = self._sha.hexdigest

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._stream.read(CHUNK_SIZE)
            except (OSError, ValueError) as exc:
                raise InvalidInput(f"could not read {self._source}: {exc}") from exc
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidInput(f"{self._source} must be opened in binary mode")
            if not chunk:
                break
            self._sha.update(chunk)
            self.size += len(chunk)
            yield bytes(chunk)
        if self._expect is not None and self.digest() != self._expect:
            # Raised before the backend finishes the write, so nothing is published.
            raise Conflict(f"{self._source} changed while it was being stored; store it again")


def _head(pieces: Iterator[bytes]) -> list[bytes]:
    """The first pieces of a stored object, enough to hold a header (fewer at its end)."""
    head: list[bytes] = []
    size = 0
    while size < enc.HEADER_SIZE:
        piece = next(pieces, None)
        if piece is None:
            break
        head.append(piece)
        size += len(piece)
    return head


def _resliced(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
        else:
            view = memoryview(chunk)
            for start in range(0, len(chunk), size):
                yield bytes(view[start : start + size])


def _key(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"not a SHA-256 digest in lowercase hex: {digest!r:.80}", {"field": "digest"})
    return f"blobs/{digest[:2]}/{digest}"
