"""The key of keyed pseudonymisation: from the settings, or created once in the Steward home."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from filelock import FileLock

from steward.config import Settings
from steward.errors import InvalidInput

KEY_BYTES = 32


def privacy_secret(settings: Settings) -> bytes:
    """Return the pseudonymisation key: ``privacy_secret`` if set, else the one kept in the home.

    The home key (``<home>/keys/privacy.key``, mode 0600) is made once, at random, and then reused, so
    the same value always becomes the same pseudonym on this installation (joinable, not reversible).

    Raises:
        InvalidInput: The configured secret is shorter than 16 bytes.
    """
    if settings.privacy_secret is not None:
        key = settings.privacy_secret.encode()
        if len(key) < 16:
            message = "STEWARD_PRIVACY_SECRET must be at least 16 bytes"
            raise InvalidInput(message, {"field": "privacy_secret"})
        return key
    path = Path(settings.home) / "keys" / "privacy.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(KEY_BYTES))
            os.replace(path.with_suffix(".tmp"), path)
    return bytes.fromhex(path.read_text().strip())
