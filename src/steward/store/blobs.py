"""The content-addressed blob store: bytes named by their SHA-256, stored once, verified on every read.

Blobs live at ``<root>/blobs/<first two hex>/<digest>``, written under ``<root>/tmp/`` and moved into
place whole, so a blob's key never holds anything but its complete content.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from steward.errors import Conflict, IntegrityError, InvalidInput, NotFound, ServiceUnavailable
from steward.store.backends import ByteBackend, FsspecBackend

if TYPE_CHECKING:
    from steward.config import Settings

CHUNK_SIZE = 1 << 20
"""Bytes read, hashed and written at a time."""

_DIGEST = re.compile(r"[0-9a-f]{64}")


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

    Args:
        root_url: The store's root: ``file:///path`` or ``s3://bucket/prefix``.
        storage_options: fsspec options, e.g. ``{"endpoint_url": "http://127.0.0.1:9000"}`` for s3fs.
        backend: A ``ByteBackend`` to use instead of the fsspec one ``root_url`` names.

    Raises:
        InvalidInput: If the URL is not ``file://`` or ``s3://``, or s3fs is needed and not installed.
    """

    def __init__(
        self,
        root_url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        backend: ByteBackend | None = None,
    ) -> None:
        self.root_url = root_url.rstrip("/")
        if backend is None:
            with self._guard():
                backend = FsspecBackend(root_url, storage_options)
        self._backend: ByteBackend = backend

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """Open the store at ``settings.artifacts_url``, on ``settings.s3_endpoint_url`` if set.

        S3 credentials come from the usual AWS variables (``AWS_ACCESS_KEY_ID``, profiles, roles).
        """
        url = settings.artifacts_url
        options: dict[str, Any] = {}
        if settings.s3_endpoint_url and url.startswith(("s3://", "s3a://")):
            options["endpoint_url"] = settings.s3_endpoint_url
        return cls(url, storage_options=options)

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
        tmp = f"tmp/{uuid.uuid4().hex}"
        with self._guard():
            self._backend.write(tmp, chunks)
            self._publish(tmp, _key(chunks.digest()))
        return BlobRef(chunks.digest(), chunks.size)

    def delete(self, digest: str) -> None:
        """Delete a blob; deleting a missing blob does nothing."""
        key = _key(digest)
        with self._guard():
            self._backend.delete(key)

    def exists(self, digest: str) -> bool:
        """Return whether the blob is stored."""
        key = _key(digest)
        with self._guard():
            return self._backend.exists(key)

    def size(self, digest: str) -> int:
        """Return the stored size of the blob in bytes.

        Raises:
            NotFound: If the blob is not stored.
        """
        key = _key(digest)
        with self._guard(digest):
            return self._backend.size(key)

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

    def _put_known(self, digest: str, chunks: Iterable[bytes]) -> None:
        key = _key(digest)
        with self._guard():
            if self._backend.exists(key):
                return
            if self._backend.writes_are_atomic:
                self._backend.write(key, chunks)
                return
            tmp = f"tmp/{uuid.uuid4().hex}"
            self._backend.write(tmp, chunks)
            self._publish(tmp, key)

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
        chunks = self._backend.read(key, chunk_size)
        try:
            while True:
                with self._guard(digest):
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                sha.update(chunk)
                yield chunk
        finally:
            chunks.close()
        actual = sha.hexdigest()
        if actual != digest:
            message = f"blob {digest} is corrupt: its stored bytes hash to {actual}"
            raise IntegrityError(message, {"digest": digest, "actual": actual})

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


def _key(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"not a SHA-256 digest in lowercase hex: {digest!r:.80}", {"field": "digest"})
    return f"blobs/{digest[:2]}/{digest}"
