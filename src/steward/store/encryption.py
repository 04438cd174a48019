"""The envelope format of encrypted blobs: AES-256-GCM in chunks under a per-blob data key.

An encrypted blob is two objects in the blob store:

- the ciphertext, under the blob's usual key ``blobs/ab/<digest>`` (the digest of the *plaintext*,
  so content addressing and de-duplication are unchanged)::

      header (16 bytes): b"\\x89STWENC" | version 1 | log2(chunk size) | 7-byte random nonce prefix
      chunk 0 … chunk n-1: AES-256-GCM of each plaintext chunk (chunk size bytes, the last 0…chunk
                           size), 16-byte tag each

- its sidecar, ``blobs/ab/<digest>.<nonce prefix in hex>.dek``: JSON naming the algorithm, the chunk
  size, the nonce prefix, the id of the key-encryption key and the data key wrapped under it.

Chunk ``i`` is sealed with the nonce ``prefix | i (4 bytes, big-endian) | last (1 byte)`` and the
associated data ``header | i | last``, plus the blob's SHA-256 for the last chunk: chunks cannot be
reordered, dropped, cut short or moved to another blob, and the envelope is bound to its digest (the
plaintext digest is still checked on every read, too). Rotation rewrites only the sidecar.

The sidecar's name carries the nonce prefix so that two processes storing the same content at once
each write their own sidecar: whichever ciphertext lands, the sidecar it names is there.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from steward.errors import IntegrityError, InvalidInput, ServiceUnavailable, StewardError
from steward.store.keys import KEY_SIZE

if TYPE_CHECKING:
    from steward.store.keys import KeyProvider

ALGORITHM = "AES-256-GCM"
"""The only algorithm of format version 1."""

MAGIC = b"\x89STWENC"
"""The first bytes of every encrypted blob."""

VERSION = 1
HEADER_SIZE = 16
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 1 << 20
"""Plaintext bytes per encrypted chunk (1 MiB)."""

MIN_CHUNK_SIZE = 1 << 12
MAX_CHUNK_SIZE = 1 << 26
SIDECAR_SUFFIX = ".dek"
MAX_SIDECAR_SIZE = 64 * 1024

_PREFIX_SIZE = 7
_MAX_CHUNKS = 1 << 32
_FORMAT = "steward-data-key"


@dataclass(frozen=True)
class Header:
    """The clear header of an encrypted blob (authenticated as part of every chunk).

    Attributes:
        chunk_size: Plaintext bytes per chunk, a power of two.
        nonce_prefix: The blob's 7 random bytes of every chunk's nonce; also names its sidecar.
    """

    chunk_size: int
    nonce_prefix: bytes

    def encode(self) -> bytes:
        """Return the header's 16 bytes."""
        shift = self.chunk_size.bit_length() - 1
        return MAGIC + bytes([VERSION, shift]) + self.nonce_prefix

    @classmethod
    def parse(cls, data: bytes) -> Header | None:
        """Read a header from the first bytes of a stored object; None if they are not one.

        Args:
            data: At least the object's first ``HEADER_SIZE`` bytes (fewer means not encrypted).
        """
        if len(data) < HEADER_SIZE or not data.startswith(MAGIC) or data[len(MAGIC)] != VERSION:
            return None
        chunk_size = 1 << data[len(MAGIC) + 1]
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            return None
        return cls(chunk_size, bytes(data[len(MAGIC) + 2 : HEADER_SIZE]))


@dataclass(frozen=True)
class Sidecar:
    """The wrapped data key of one encrypted blob, stored beside its ciphertext.

    Attributes:
        key_id: The key-encryption key that wrapped the data key.
        wrapped_key: The data key, wrapped (opaque: the provider's format).
        chunk_size: Plaintext bytes per chunk (as in the header).
        nonce_prefix: As in the header.
        algorithm: ``AES-256-GCM``.
    """

    key_id: str
    wrapped_key: bytes = field(repr=False)
    chunk_size: int
    nonce_prefix: bytes
    algorithm: str = ALGORITHM

    def to_json(self) -> bytes:
        """Return the sidecar's stored form (JSON)."""
        document = {
            "format": _FORMAT,
            "version": VERSION,
            "algorithm": self.algorithm,
            "chunk_size": self.chunk_size,
            "nonce_prefix": self.nonce_prefix.hex(),
            "key_id": self.key_id,
            "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
        }
        return json.dumps(document, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, digest: str) -> Sidecar:
        """Read a stored sidecar.

        Args:
            data: The stored bytes.
            digest: The blob's digest, for messages.

        Raises:
            IntegrityError: If the bytes are not a sidecar of this format.
        """
        try:
            document: Any = json.loads(data)
            fields = (document["format"], document["version"], document["algorithm"])
            chunk_size, key_id = document["chunk_size"], document["key_id"]
            prefix = bytes.fromhex(document["nonce_prefix"])
            wrapped = base64.b64decode(document["wrapped_key"], validate=True)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise _corrupt(digest, "its data key sidecar is not valid") from None
        if fields != (_FORMAT, VERSION, ALGORITHM):
            raise _corrupt(digest, "its data key sidecar names an unknown format or algorithm")
        if not isinstance(key_id, str) or not key_id or type(chunk_size) is not int or len(prefix) != 7:
            raise _corrupt(digest, "its data key sidecar is not valid")
        return cls(key_id, wrapped, chunk_size, prefix)


@dataclass
class Envelope:
    """A new data key and nonce prefix for one blob about to be stored.

    Build one with ``Envelope.new``; ``encrypt`` seals the plaintext and ``sidecar`` is what to store
    beside it.
    """

    header: Header
    sidecar: Sidecar
    _aead: AESGCM = field(repr=False)

    @classmethod
    def new(cls, keys: KeyProvider, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Envelope:
        """Draw a random data key and nonce prefix and wrap the key with ``keys``.

        Raises:
            InvalidInput: If ``chunk_size`` is not a power of two in 4 KiB…64 MiB.
            ServiceUnavailable: If the key provider fails.
        """
        check_chunk_size(chunk_size)
        data_key = AESGCM.generate_key(bit_length=KEY_SIZE * 8)
        prefix = os.urandom(_PREFIX_SIZE)
        key_id = keys.key_id
        wrapped = _call_provider(lambda: keys.wrap(data_key), "wrap")
        header = Header(chunk_size, prefix)
        return cls(header, Sidecar(key_id, wrapped, chunk_size, prefix), AESGCM(data_key))

    def encrypt(self, plaintext: Iterable[bytes], digest: Callable[[], str]) -> Iterator[bytes]:
        """Yield the header and the sealed chunks of ``plaintext``, holding at most two chunks.

        Args:
            plaintext: The blob's bytes, in pieces of any size.
            digest: Returns the plaintext's SHA-256 in hex; called once ``plaintext`` is exhausted.

        Raises:
            InvalidInput: If the blob has more than 2**32 chunks.
        """
        yield self.header.encode()
        chunk_size = self.header.chunk_size
        buffer = bytearray()
        held: bytes | None = None  # a full chunk, sealed once it is known not to be the last
        index = 0
        for piece in plaintext:
            if not buffer and len(piece) == chunk_size:
                ready: list[bytes] = [bytes(piece)]
            else:
                buffer += piece
                ready = []
                while len(buffer) >= chunk_size:
                    ready.append(bytes(buffer[:chunk_size]))
                    del buffer[:chunk_size]
            for chunk in ready:
                if held is not None:
                    yield self._seal(held, index, None)
                    index += 1
                held = chunk
        if held is not None and buffer:
            yield self._seal(held, index, None)
            index += 1
            held = None
        last = bytes(buffer) if held is None else held
        yield self._seal(last, index, bytes.fromhex(digest()))

    def _seal(self, chunk: bytes, index: int, digest: bytes | None) -> bytes:
        if index >= _MAX_CHUNKS:
            raise InvalidInput("a blob may have at most 2**32 encrypted chunks", {"field": "data"})
        nonce, aad = _nonce_and_aad(self.header, index, digest)
        return self._aead.encrypt(nonce, chunk, aad)


def check_chunk_size(chunk_size: int) -> None:
    """Refuse an encryption chunk size that is not a power of two in 4 KiB…64 MiB.

    Raises:
        InvalidInput: If it is not.
    """
    if (
        type(chunk_size) is not int
        or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE
        or chunk_size & (chunk_size - 1)
    ):
        raise InvalidInput(
            f"the encryption chunk size must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}",
            {"field": "encryption_chunk_size"},
        )


def sidecar_key(blob_key: str, nonce_prefix: bytes) -> str:
    """Return the key of the sidecar of the ciphertext stored under ``blob_key``."""
    return f"{blob_key}.{nonce_prefix.hex()}{SIDECAR_SUFFIX}"


def unwrap_data_key(keys: KeyProvider, sidecar: Sidecar, digest: str, header: Header | None = None) -> bytes:
    """Unwrap a blob's data key, after checking that the sidecar belongs to the ciphertext.

    Args:
        keys: The provider that knows the key ``sidecar.key_id`` names.
        sidecar: The blob's sidecar.
        digest: The blob's digest, for messages.
        header: The header of the blob's ciphertext, if it is being read.

    Raises:
        IntegrityError: If the sidecar does not match the header or the wrapped key does not unwrap.
        InvalidInput: If the provider does not know the key id.
        ServiceUnavailable: If the provider fails.
    """
    if header is not None and header != Header(sidecar.chunk_size, sidecar.nonce_prefix):
        raise _corrupt(digest, "its data key sidecar belongs to another ciphertext")
    try:
        data_key = _call_provider(lambda: keys.unwrap(sidecar.wrapped_key, sidecar.key_id), "unwrap")
    except StewardError as exc:
        details = {**exc.details, "digest": digest}
        raise type(exc)(f"blob {digest} cannot be decrypted: {exc.message}", details) from None
    if not isinstance(data_key, bytes) or len(data_key) != KEY_SIZE:
        raise _corrupt(digest, "its data key did not unwrap to 32 bytes")
    return data_key


def decrypt(data_key: bytes, header: Header, digest: str, body: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the plaintext chunks of an encrypted blob's body (what follows the header).

    Each chunk is authenticated before it is yielded; a body cut short, reordered or altered raises at
    the first chunk that does not authenticate.

    Args:
        data_key: The blob's data key (``unwrap_data_key``).
        header: The blob's header.
        digest: The blob's digest (bound to the last chunk).
        body: The stored bytes after the header, in pieces of any size.

    Raises:
        IntegrityError: If a chunk does not authenticate or the body is cut short.
    """
    aead = AESGCM(data_key)
    record = header.chunk_size + TAG_SIZE
    buffer = bytearray()
    start = 0  # where the next record begins in buffer: records are opened in place, not copied out
    index = 0
    for piece in body:
        if start:
            del buffer[:start]
            start = 0
        buffer += piece
        while len(buffer) - start > record:  # more follows: not the last chunk
            with memoryview(buffer) as view, view[start : start + record] as sealed:
                plain = _open(aead, header, sealed, index, None, digest)
            start += record
            index += 1
            yield plain
    if len(buffer) - start < TAG_SIZE:
        raise _corrupt(digest, f"its encrypted chunk {index} is cut short")
    with memoryview(buffer) as view, view[start:] as sealed:
        plain = _open(aead, header, sealed, index, bytes.fromhex(digest), digest)
    yield plain


def plaintext_size(stored_size: int, header: Header, digest: str) -> int:
    """Return the plaintext size of an encrypted blob from its stored size.

    Raises:
        IntegrityError: If no plaintext encrypts to that many bytes.
    """
    body = stored_size - HEADER_SIZE
    record = header.chunk_size + TAG_SIZE
    chunks = max(1, -(-body // record))
    if body < TAG_SIZE or body - (chunks - 1) * record < TAG_SIZE:
        raise _corrupt(digest, "its ciphertext is cut short")
    return body - chunks * TAG_SIZE


def rewrap(stored: bytes, keys: KeyProvider, digest: str) -> Sidecar | None:
    """Wrap a sidecar's data key under the provider's newest key.

    Args:
        stored: The stored sidecar.
        keys: Knows the sidecar's key and the newest.
        digest: The blob's digest, for messages.

    Returns:
        The new sidecar, or None if the data key is already wrapped by ``keys.key_id``.

    Raises:
        IntegrityError: If the sidecar is malformed or its key does not unwrap.
        InvalidInput: If the provider does not know the sidecar's key id.
        ServiceUnavailable: If the provider fails.
    """
    sidecar = Sidecar.from_json(stored, digest)
    newest = keys.key_id
    if sidecar.key_id == newest:
        return None
    data_key = unwrap_data_key(keys, sidecar, digest)
    wrapped = _call_provider(lambda: keys.wrap(data_key), "wrap")
    return replace(sidecar, key_id=newest, wrapped_key=wrapped)


@dataclass
class RotationReport:
    """What ``BlobStore.rotate_keys`` did, updated as it goes.

    Attributes:
        key_id: The key every data key is now wrapped by.
        rewrapped: Data keys wrapped again under ``key_id``.
        current: Data keys that already were.
        failed: Data keys that could not be rewrapped (unknown key, corrupt sidecar).
        failures: The first few failures: ``(sidecar key, message)``.
        prefixes_done: Of the store's 256 key prefixes, how many are done.
    """

    key_id: str
    rewrapped: int = 0
    current: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    prefixes_done: int = 0

    def record_failure(self, key: str, message: str) -> None:
        """Count a failure, keeping the first 20 messages."""
        self.failed += 1
        if len(self.failures) < 20:
            self.failures.append((key, message))


@dataclass
class KeyStatus:
    """How a blob store's blobs are encrypted (``BlobStore.key_status``).

    Attributes:
        key_id: The key new data keys are wrapped by (None when the store has no key).
        data_keys: Data keys per key id that wraps them.
        encrypted: Blobs with a data key.
        unencrypted: Blobs stored in the clear (written before encryption was turned on).
        orphaned: Data keys whose blob is gone (left by an interrupted write; harmless).
        unreadable: Sidecars that could not be read as such.
        prefixes_done: Of the store's 256 key prefixes, how many are done.
    """

    key_id: str | None
    data_keys: dict[str, int] = field(default_factory=dict)
    encrypted: int = 0
    unencrypted: int = 0
    orphaned: int = 0
    unreadable: int = 0
    prefixes_done: int = 0


def _open(
    aead: AESGCM, header: Header, sealed: memoryview, index: int, last: bytes | None, digest: str
) -> bytes:
    nonce, aad = _nonce_and_aad(header, index, last)
    try:
        return aead.decrypt(nonce, sealed, aad)
    except InvalidTag:
        where = "last " if last is not None else ""
        raise _corrupt(digest, f"its encrypted {where}chunk {index} does not authenticate") from None


def _nonce_and_aad(header: Header, index: int, digest: bytes | None) -> tuple[bytes, bytes]:
    position = index.to_bytes(4, "big") + (b"\x01" if digest is not None else b"\x00")
    return header.nonce_prefix + position, header.encode() + position + (digest or b"")


def _call_provider(call: Callable[[], bytes], what: str) -> bytes:
    try:
        return call()
    except StewardError:
        raise
    except Exception as exc:  # a KMS client's own errors: callers see Steward's
        message = f"the key provider failed to {what} a data key: {type(exc).__name__}: {exc}"
        raise ServiceUnavailable(message[:500], {"field": "encryption_key"}) from exc


def _corrupt(digest: str, why: str) -> IntegrityError:
    return IntegrityError(f"blob {digest} is corrupt: {why}", {"digest": digest})
