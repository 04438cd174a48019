"""Byte backends: where the blob store's objects live (a local folder or an S3 bucket), bytes only.

Content addressing, temporaries and verification sit one layer up, in ``steward.store.blobs``; a backend
only stores, reads, moves and deletes objects named by keys relative to its root (``blobs/ab/ab12…``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import fsspec
from fsspec.utils import get_protocol

from steward.errors import InvalidInput

_LOCAL = ("file", "local")
_S3 = ("s3", "s3a")
_READ_AHEAD = 16 << 20  # each ranged GET costs a round trip: fetch a remote object in large blocks


class ByteBackend(Protocol):
    """Stores whole objects under keys relative to a root.

    A missing key raises ``FileNotFoundError``; any other storage failure raises ``OSError``. The blob
    store turns these into ``NotFound`` and ``ServiceUnavailable``.

    Attributes:
        url: The root, for messages (``file:///…``, ``s3://bucket/prefix``).
        writes_are_atomic: Whether an object being written is invisible until it is complete (an S3
            PUT). If not (a local file), the blob store writes to a temporary key and moves it.

    Example:
        A backend keeping objects in a dict (a dict assignment is atomic, like an S3 PUT)::

            >>> from collections.abc import Generator, Iterable
            >>> class DictBackend:
            ...     writes_are_atomic = True
            ...
            ...     def __init__(self) -> None:
            ...         self.url = "memory://demo"
            ...         self.objects: dict[str, bytes] = {}
            ...
            ...     def exists(self, key: str) -> bool:
            ...         return key in self.objects
            ...
            ...     def size(self, key: str) -> int:
            ...         return len(self._get(key))
            ...
            ...     def read(self, key: str, chunk_size: int) -> Generator[bytes, None, None]:
            ...         data = self._get(key)
            ...         for start in range(0, len(data), chunk_size):
            ...             yield data[start : start + chunk_size]
            ...
            ...     def write(self, key: str, chunks: Iterable[bytes]) -> None:
            ...         self.objects[key] = b"".join(chunks)
            ...
            ...     def move(self, src: str, dst: str) -> None:
            ...         self.objects[dst] = self.objects.pop(src)
            ...
            ...     def delete(self, key: str) -> None:
            ...         self.objects.pop(key, None)
            ...
            ...     def _get(self, key: str) -> bytes:
            ...         try:
            ...             return self.objects[key]
            ...         except KeyError:
            ...             raise FileNotFoundError(key) from None
            >>> backend: ByteBackend = DictBackend()
            >>> backend.write("a/b", [b"hello ", b"world"])
            >>> list(backend.read("a/b", chunk_size=6))
            [b'hello ', b'world']
            >>> from steward.store.blobs import BlobStore
            >>> BlobStore(backend.url, backend=backend).put_bytes(b"hi").size
            2
    """

    url: str
    writes_are_atomic: bool

    def exists(self, key: str) -> bool:
        """Return whether an object is stored under ``key``."""
        ...

    def size(self, key: str) -> int:
        """Return the size in bytes of the object under ``key``."""
        ...

    def read(self, key: str, chunk_size: int) -> Generator[bytes, None, None]:
        """Yield the object's bytes in chunks of at most ``chunk_size``, holding it open until closed."""
        ...

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        """Store the concatenated ``chunks`` under ``key``, consuming them as they come.

        If ``chunks`` raises or the write fails, nothing is left under ``key`` and the error propagates.
        """
        ...

    def move(self, src: str, dst: str) -> None:
        """Move an object to another key, replacing what is there; ``dst`` appears whole at once."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object under ``key``; a missing key is not an error."""
        ...


class FsspecBackend:
    """A ``ByteBackend`` over fsspec, for ``file://`` folders and ``s3://`` buckets.

    Local files are written with ``fsync`` and moved with ``os.replace``, so a key never holds a
    partial file. On S3, s3fs is imported only here; an object appears when its upload completes.

    Args:
        url: The root: ``file:///path``, a plain local path, or ``s3://bucket/prefix``.
        storage_options: Passed to the fsspec filesystem, e.g. ``{"endpoint_url": …, "key": …,
            "secret": …}`` for s3fs. Without credentials, s3fs reads the usual AWS variables.

    Raises:
        InvalidInput: If the URL's scheme is not supported, or s3fs is needed but not installed.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        options = dict(storage_options or {})
        protocol = get_protocol(url)
        self._failures: tuple[type[Exception], ...] = ()
        if protocol in _S3:
            self._failures = _s3_failures()
            # Another process may write the bucket: never answer from a cached listing.
            options.setdefault("use_listings_cache", False)
        elif protocol not in _LOCAL:
            raise InvalidInput(
                f"unsupported artifact store URL {url!r}: use file://… or s3://…", {"field": "artifacts"}
            )
        self.url = url.rstrip("/")
        self._local = protocol in _LOCAL
        self.writes_are_atomic = not self._local
        self._options = options
        with self._translated():
            self._filesystem, root = fsspec.url_to_fs(url, **options)
        self._root = str(root).rstrip("/")
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"FsspecBackend({self.url!r})"

    @property
    def _fs(self) -> Any:
        # s3fs's event loop does not survive a fork: a child process opens its own filesystem.
        if self._pid != os.getpid():
            self._filesystem = fsspec.url_to_fs(self.url, **self._options)[0]
            self._pid = os.getpid()
        return self._filesystem

    def exists(self, key: str) -> bool:
        """Return whether an object is stored under ``key``."""
        with self._translated():
            return bool(self._fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        """Return the size in bytes of the object under ``key``."""
        with self._translated():
            return int(self._fs.size(self._path(key)))

    def read(self, key: str, chunk_size: int) -> Generator[bytes, None, None]:
        """Yield the object's bytes in chunks of at most ``chunk_size``."""
        block_size = max(chunk_size, _READ_AHEAD)
        with self._translated(), self._fs.open(self._path(key), "rb", block_size=block_size) as stream:
            while chunk := stream.read(chunk_size):
                yield bytes(chunk)

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        """Store the concatenated ``chunks`` under ``key``; nothing is left there on failure."""
        path = self._path(key)
        with self._translated():
            if self._local:
                _write_local(path, chunks)
            else:
                _write_remote(self._fs, path, chunks)

    def move(self, src: str, dst: str) -> None:
        """Move an object to another key (``os.replace`` locally, copy then delete on S3)."""
        src_path, dst_path = self._path(src), self._path(dst)
        with self._translated():
            if self._local:
                os.makedirs(os.path.dirname(dst_path), exist_ok=True)
                os.replace(src_path, dst_path)
                _fsync_dir(os.path.dirname(dst_path))
            else:
                self._fs.cp_file(src_path, dst_path)
                self._fs.rm_file(src_path)

    def delete(self, key: str) -> None:
        """Delete the object under ``key``; a missing key is not an error."""
        with self._translated(), suppress(FileNotFoundError):
            self._fs.rm_file(self._path(key))

    def local_file(self, key: str) -> str | None:
        """The local path of the object under ``key``, or None on S3 (or if nothing is stored there)."""
        if not self._local:
            return None
        path = self._path(key)
        return path if os.path.isfile(path) else None

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        # The protocol promises OSError for storage failures; botocore raises its own kinds.
        try:
            yield
        except self._failures as exc:
            raise OSError(f"{self.url}: {exc}") from exc


def _s3_failures() -> tuple[type[Exception], ...]:
    try:
        importlib.import_module("s3fs")
        exceptions = importlib.import_module("botocore.exceptions")
    except ImportError as exc:
        raise InvalidInput(
            f"s3:// artifact stores need s3fs ({exc}): pip install 'steward-ml[s3]'", {"field": "artifacts"}
        ) from None
    return (exceptions.BotoCoreError, exceptions.ClientError)


def _write_local(path: str, chunks: Iterable[bytes]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with suppress(OSError):
            os.unlink(path)
        raise


def _write_remote(fs: Any, path: str, chunks: Iterable[bytes]) -> None:
    out = fs.open(path, "wb")
    try:
        for chunk in chunks:
            out.write(chunk)
        out.close()
    except BaseException:
        with suppress(Exception):
            out.discard()  # aborts a multipart upload already begun
        # Marked closed so that neither we nor the garbage collector's close() publishes the partial object.
        out.closed = True
        raise


def _fsync_dir(path: str) -> None:
    # Makes the rename itself durable; some filesystems and platforms cannot open a directory.
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
