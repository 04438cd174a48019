"""The platform's Ed25519 signing key: what signs audit checkpoints (and, later, model manifests).

The key lives in ``signing_key_file`` (``STEWARD_SIGNING_KEY_FILE``), by default
``<home>/keys/signing.key``, which is created once (under a file lock, mode 0600, in a folder of mode
0700) and then reused. The file is an unencrypted PKCS#8 PEM private key (``-----BEGIN PRIVATE
KEY-----``), so standard tools read it: ``openssl pkey -in signing.key -pubout`` prints the public key.
A configured ``signing_key_file`` is never created: an operator who names a file provisions it.

A key is known by its id: the first 16 hex digits of the SHA-256 of its raw 32-byte public key. Signing
goes through the small ``Signer`` Protocol, so a KMS or HSM can take the file's place; verifying needs
only the public key (PEM), which anyone may hold. Key material never appears in logs, errors or reprs.

``cryptography`` is imported on first use, so that importing the audit trail stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from steward.config import Settings
from steward.errors import InvalidInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

KEY_FILE_NAME = "signing.key"
"""The name of the key file in ``<home>/keys``."""
KEY_ID_LENGTH = 16
"""Hex digits of a key id."""


@runtime_checkable
class Signer(Protocol):
    """Signs bytes with a private key it may never reveal (a file, a KMS, an HSM).

    Example:
        A KMS-backed signer only has to forward the bytes::

            class KmsSigner:
                def __init__(self, client, key_name, public_pem: bytes) -> None:
                    self._client, self._key, self._pem = client, key_name, public_pem
                    self.key_id = key_id(load_public_key(public_pem))

                def sign(self, data: bytes) -> bytes:
                    return self._client.sign(self._key, data)  # an Ed25519 signature, 64 bytes

                def public_key_pem(self) -> bytes:
                    return self._pem
    """

    @property
    def key_id(self) -> str:
        """The id of the key: see ``key_id``."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the Ed25519 signature (64 bytes) of ``data``."""
        ...

    def public_key_pem(self) -> bytes:
        """Return the public key as PEM (SubjectPublicKeyInfo)."""
        ...


class Ed25519Signer:
    """A ``Signer`` holding an Ed25519 private key in memory.

    Args:
        private_key: The key (``cryptography``'s ``Ed25519PrivateKey``).
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        """The public half."""
        self._key_id = key_id(self.public_key)

    @property
    def key_id(self) -> str:
        """The id of the key: see ``key_id``."""
        return self._key_id

    def sign(self, data: bytes) -> bytes:
        """Return the Ed25519 signature (64 bytes) of ``data``."""
        return self._key.sign(data)

    def public_key_pem(self) -> bytes:
        """Return the public key as PEM (SubjectPublicKeyInfo)."""
        return public_key_pem(self.public_key)

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self._key_id!r})"


def generate() -> Ed25519Signer:
    """Return a signer with a new random key (kept in memory only)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519Signer(Ed25519PrivateKey.generate())


def key_id(public_key: Ed25519PublicKey) -> str:
    """Return a public key's id: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """Return a public key as PEM (SubjectPublicKeyInfo, ``-----BEGIN PUBLIC KEY-----``)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    """Parse an Ed25519 public key from PEM.

    Raises:
        InvalidInput: It is not a PEM Ed25519 public key.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("not a PEM Ed25519 public key", {"field": "public_key"})
    return key


def verify(data: bytes, signature: bytes, public_key: Ed25519PublicKey | bytes | str) -> bool:
    """Return whether ``signature`` is ``public_key``'s Ed25519 signature of ``data``.

    Args:
        data: The signed bytes.
        signature: The signature (64 bytes); anything else is simply not valid.
        public_key: The key, or its PEM.

    Raises:
        InvalidInput: ``public_key`` is PEM that does not parse.
    """
    from cryptography.exceptions import InvalidSignature

    key = load_public_key(public_key) if isinstance(public_key, bytes | str) else public_key
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# -- the key file -------------------------------------------------------------------------------------


def key_path(settings: Settings) -> Path:
    """Return where the platform key lives: ``signing_key_file``, else ``<home>/keys/signing.key``."""
    if settings.signing_key_file is not None:
        return Path(settings.signing_key_file).expanduser()
    return Path(settings.home).expanduser() / "keys" / KEY_FILE_NAME


def _read_key(path: Path) -> Ed25519Signer:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("the signing key %s is readable by others (mode %o): chmod 600 it", path, mode & 0o777)
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        key = None  # the parser's message could quote the file: say nothing of its content
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(
            f"the signing key file {path} is not an unencrypted PEM Ed25519 private key",
            {"field": "signing_key_file"},
        )
    return Ed25519Signer(key)


def _create_key(path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(str(path) + ".lock"):
        if path.exists():  # another process made it while this one waited
            return
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    log.info("created the platform signing key %s", path)


def load_or_create(path: Path, *, create: bool = True) -> Ed25519Signer:
    """Load the key in ``path``, creating it first (once, under a file lock, mode 0600) if allowed.

    Args:
        path: The key file (PKCS#8 PEM).
        create: Whether a missing file is made; else it is an error.

    Raises:
        InvalidInput: The file is missing (and ``create`` is false) or is not an Ed25519 private key.
    """
    if not path.exists():
        if not create:
            raise InvalidInput(f"no signing key at {path}", {"field": "signing_key_file"})
        _create_key(path)
    return _read_key(path)


_signers: dict[tuple[Path, int, int], Ed25519Signer] = {}
_signers_lock = threading.Lock()


def platform_signer(settings: Settings, *, create: bool = True) -> Ed25519Signer:
    """Return the platform's signer, loading its key file once per process (again if the file changes).

    Args:
        settings: Where the key lives (``key_path``).
        create: Whether the default key file may be made if it is missing. A configured
            ``signing_key_file`` is never made.

    Raises:
        InvalidInput: The key file is missing or is not an Ed25519 private key.
    """
    path = key_path(settings)
    with _signers_lock:
        if not path.exists():
            load_or_create(path, create=create and settings.signing_key_file is None)
        stat = path.stat()
        cache_key = (path, stat.st_ino, stat.st_mtime_ns)
        signer = _signers.get(cache_key)
        if signer is None:
            signer = _signers[cache_key] = _read_key(path)
        return signer


def platform_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """Return the platform's public key, or None if its key file does not exist (nothing is created).

    Raises:
        InvalidInput: The key file is not an Ed25519 private key.
    """
    if not key_path(settings).exists():
        return None
    return platform_signer(settings, create=False).public_key
