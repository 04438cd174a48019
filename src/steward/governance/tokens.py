"""API token secrets: how they are made, recognised and stored.

A secret is ``stw_`` followed by the unpadded base64url encoding of 32 random bytes
(``secrets.token_bytes``: 256 bits), 47 characters in all. The database keeps only the SHA-256 (hex) of
the whole secret string, under a unique index: a presented secret is checked by looking its hash up, so
no comparison ever runs over the secret itself and a stolen database holds nothing that authenticates.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from steward.errors import Unauthenticated

PREFIX = "stw_"
"""What every Steward API token starts with (so scanners and people can tell one on sight)."""
SECRET_BYTES = 32
"""Random bytes in a secret (256 bits)."""
TOKEN_LENGTH = len(PREFIX) + 43
"""Characters in a secret: the prefix and 43 base64url characters."""

# 32 bytes are 256 bits: 42 full base64 characters and one carrying the last 4 bits, whose low 2 bits
# are zero, so the last character is one of 16.
_TOKEN = re.compile(r"^stw_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")
MALFORMED = "malformed token: a Steward API token is 'stw_' and 43 base64url characters"
"""The message of the error a malformed secret gets."""


def generate() -> str:
    """Return a new random secret (``stw_`` + 43 base64url characters)."""
    body = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")
    return PREFIX + body


def hash_token(secret: str) -> str:
    """Return the SHA-256 (hex) of ``secret``: the only form in which a token is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_token(value: object) -> bool:
    """Whether ``value`` has the shape of a Steward API token (prefix, length, alphabet)."""
    return isinstance(value, str) and len(value) == TOKEN_LENGTH and _TOKEN.match(value) is not None


def parse(value: object) -> str:
    """Return ``value`` if it is a well-formed secret.

    The check is cheap and runs before any database lookup, so garbage never costs a query.

    Raises:
        Unauthenticated: ``malformed token`` (the message never repeats the value).
    """
    if not looks_like_token(value):
        raise Unauthenticated(MALFORMED)
    assert isinstance(value, str)
    return value
