"""Key-encryption keys: who wraps and unwraps the data keys of encrypted blobs.

Every encrypted blob has its own random data key (``steward.store.encryption``); a ``KeyProvider``
wraps it under a key-encryption key that never leaves the provider, and unwraps it on read. The local
provider holds its keys in memory, read from ``STEWARD_ENCRYPTION_KEY`` or ``STEWARD_ENCRYPTION_KEY_FILE``;
a cloud KMS provider keeps them in the KMS and only ever sees data keys.

Several keys may be configured at once, newest first, so that ``steward keys rotate`` can unwrap data
keys under an old key and wrap them again under the new one:

- ``STEWARD_ENCRYPTION_KEY=<new>,<old>``: comma-separated;
- a key file: one key a line, newest first; blank lines and lines starting with ``#`` are ignored.

When both are set, the keys of the variable come first. Each key is 32 bytes written as 64 hex digits
or as base64 (URL-safe or standard, padded or not). A key is named by its id, ``local:`` and 16 hex
digits of a SHA-256 of the key: it tells keys apart without revealing them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from steward.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from steward.config import Settings

log = logging.getLogger(__name__)

KEY_SIZE = 32
"""Bytes in a key-encryption key and in a data key (AES-256)."""

_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{43}=?")
_WRAP_VERSION = b"\x01"
_NONCE_SIZE = 12
_WRAPPED_SIZE = len(_WRAP_VERSION) + _NONCE_SIZE + KEY_SIZE + 16
_KEY_SETTING = "STEWARD_ENCRYPTION_KEY"
_FILE_SETTING = "STEWARD_ENCRYPTION_KEY_FILE"


class KeyProvider(Protocol):
    """Wraps data keys under a key-encryption key and unwraps them again.

    ``key_id`` names the key new data keys are wrapped under; it is stored next to each wrapped key, so
    ``unwrap`` is told which key to use, and a provider may know older keys too (for rotation). A
    provider raises ``InvalidInput`` for a key id it does not know and ``IntegrityError`` for a wrapped
    key that does not authenticate; neither message may contain key material.

    Example:
        A provider over a cloud KMS: the key-encryption key stays in the KMS, which encrypts and
        decrypts the 32-byte data keys. ``FakeKms`` stands in for ``boto3.client("kms")`` here; its
        ``encrypt``/``decrypt`` take and return what AWS KMS's do::

            >>> from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            >>> class FakeKms:
            ...     def __init__(self) -> None:
            ...         self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
            ...
            ...     def encrypt(self, KeyId: str, Plaintext: bytes) -> dict[str, bytes]:
            ...         nonce = os.urandom(12)
            ...         sealed = self._aead.encrypt(nonce, Plaintext, KeyId.encode())
            ...         return {"CiphertextBlob": nonce + sealed}
            ...
            ...     def decrypt(self, KeyId: str, CiphertextBlob: bytes) -> dict[str, bytes]:
            ...         nonce, sealed = CiphertextBlob[:12], CiphertextBlob[12:]
            ...         return {"Plaintext": self._aead.decrypt(nonce, sealed, KeyId.encode())}
            >>> class KmsKeyProvider:
            ...     def __init__(self, client: FakeKms, key_arn: str) -> None:
            ...         self._client = client
            ...         self.key_id = key_arn
            ...
            ...     def wrap(self, data_key: bytes) -> bytes:
            ...         return self._client.encrypt(KeyId=self.key_id, Plaintext=data_key)["CiphertextBlob"]
            ...
            ...     def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
            ...         return self._client.decrypt(KeyId=key_id, CiphertextBlob=wrapped)["Plaintext"]
            >>> provider: KeyProvider = KmsKeyProvider(FakeKms(), "arn:aws:kms:eu-west-1:1111:key/demo")
            >>> data_key = os.urandom(32)
            >>> provider.unwrap(provider.wrap(data_key), provider.key_id) == data_key
            True

        A ``BlobStore(url, keys=provider)`` then encrypts every blob it stores (``BlobStore.from_settings``
        builds the local provider below).
    """

    @property
    def key_id(self) -> str:
        """The id of the key that ``wrap`` uses (the newest); stored with every wrapped data key."""
        ...

    def wrap(self, data_key: bytes) -> bytes:
        """Return ``data_key`` encrypted under the key ``key_id`` names."""
        ...

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """Return the data key that ``wrap`` encrypted under the key ``key_id`` names."""
        ...


class LocalKeyProvider:
    """A ``KeyProvider`` holding its key-encryption keys in memory, newest first.

    Data keys are wrapped with AES-256-GCM under the newest key (a random nonce, the key id as
    associated data); any of the keys unwraps.

    Args:
        keys: 32-byte keys, newest first.

    Raises:
        InvalidInput: If there is no key or a key is not 32 bytes.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise InvalidInput("a LocalKeyProvider needs at least one key", {"field": "encryption_key"})
        by_id: dict[str, AESGCM] = {}
        for position, key in enumerate(keys, start=1):
            if not isinstance(key, bytes) or len(key) != KEY_SIZE:
                details = {"field": "encryption_key", "position": position}
                raise InvalidInput(f"key {position} is not {KEY_SIZE} bytes", details)
            by_id.setdefault(key_fingerprint(key), AESGCM(key))
        self._keys = by_id
        self._newest = next(iter(by_id))

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKeyProvider | None:
        """Build the provider from ``STEWARD_ENCRYPTION_KEY`` and ``STEWARD_ENCRYPTION_KEY_FILE``.

        Args:
            settings: The settings; ``encryption_key`` and ``encryption_key_file`` are read.

        Returns:
            The provider, or None when neither setting is set (blobs are then stored in the clear).

        Raises:
            InvalidInput: If a key is malformed or the key file cannot be read; the message names the
                setting (and the line of the file), never the value.
        """
        keys: list[bytes] = []
        if settings.encryption_key and settings.encryption_key.strip():
            entries = settings.encryption_key.split(",")
            for position, entry in enumerate(entries, start=1):
                where = f"{_KEY_SETTING}: key {position} of {len(entries)}"
                keys.append(_parse(entry, where, "encryption_key"))
        if settings.encryption_key_file is not None:
            keys.extend(_read_key_file(settings.encryption_key_file))
        return cls(keys) if keys else None

    @property
    def key_id(self) -> str:
        """The id of the newest key, which wraps new data keys."""
        return self._newest

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every configured key, newest first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"LocalKeyProvider(key_ids={list(self._keys)!r})"

    def wrap(self, data_key: bytes) -> bytes:
        """Encrypt a 32-byte data key under the newest key.

        Raises:
            InvalidInput: If ``data_key`` is not 32 bytes.
        """
        if not isinstance(data_key, bytes) or len(data_key) != KEY_SIZE:
            raise InvalidInput(f"a data key is {KEY_SIZE} bytes", {"field": "data_key"})
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._keys[self._newest].encrypt(nonce, data_key, _associated(self._newest))
        return _WRAP_VERSION + nonce + sealed

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        """Decrypt a data key that ``wrap`` encrypted under the key ``key_id``.

        Raises:
            InvalidInput: If no configured key has that id.
            IntegrityError: If ``wrapped`` was not made by ``wrap`` under that key (edited or truncated).
        """
        aead = self._keys.get(key_id)
        if aead is None:
            raise InvalidInput(
                f"the data key is wrapped by key {key_id!r:.80}, which is not configured "
                f"(known: {', '.join(self._keys)}); add it to {_KEY_SETTING} or {_FILE_SETTING}",
                {"field": "encryption_key", "key_id": key_id},
            )
        if len(wrapped) != _WRAPPED_SIZE or not wrapped.startswith(_WRAP_VERSION):
            raise IntegrityError(f"the wrapped data key is malformed (key {key_id})", {"key_id": key_id})
        nonce, sealed = wrapped[1 : 1 + _NONCE_SIZE], wrapped[1 + _NONCE_SIZE :]
        try:
            return aead.decrypt(nonce, sealed, _associated(key_id))
        except InvalidTag:
            raise IntegrityError(
                f"the wrapped data key does not authenticate under key {key_id}", {"key_id": key_id}
            ) from None


def key_fingerprint(key: bytes) -> str:
    """Return the id of a local key: ``local:`` and 16 hex digits of a domain-separated SHA-256.

    Args:
        key: The 32-byte key.
    """
    return "local:" + hashlib.sha256(b"steward key id\x00" + key).hexdigest()[:16]


def parse_key(text: str) -> bytes | None:
    """Decode a key written as 64 hex digits or base64 of 32 bytes; None if it is neither.

    Args:
        text: The written key; surrounding whitespace is ignored.
    """
    text = text.strip()
    if _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE64.fullmatch(text):
        raw = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_").rstrip("=") + "=")
        return raw if len(raw) == KEY_SIZE else None
    return None


def _parse(text: str, where: str, field: str) -> bytes:
    key = parse_key(text)
    if key is None:
        raise InvalidInput(
            f"invalid setting {where}: a key is {KEY_SIZE} bytes written as 64 hex digits or base64",
            {"field": field},
        )
    return key


def _read_key_file(path: Path) -> list[bytes]:
    where = f"{_FILE_SETTING} ({path})"
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        message = f"invalid setting {where}: cannot read it ({reason})"
        raise InvalidInput(message, {"field": "encryption_key_file"}) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the encryption key file %s is open to other users: chmod 600 it", path)
    keys = [
        _parse(line, f"{where}: line {number}", "encryption_key_file")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        message = f"invalid setting {where}: the file holds no key"
        raise InvalidInput(message, {"field": "encryption_key_file"})
    return keys


def _associated(key_id: str) -> bytes:
    return b"steward data key\x00" + key_id.encode()
