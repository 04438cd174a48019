"""The tokens ``steward login`` stores: ``<STEWARD_HOME>/credentials.json``, readable by its owner only.

One token per server URI (``http://host:port``, without a trailing ``/``)::

    {"version": 1, "servers": {"https://steward.example.com": {"token": "stw_…", "saved_at": "…"}}}

The file is written whole to a temporary file created with mode 0600 and renamed into place, so it is
never readable by others, not even for a moment, and a crash leaves the old file or the new one.
``STEWARD_TOKEN``, when set, takes precedence over what is stored here.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steward.errors import InvalidInput

FILE_NAME = "credentials.json"
"""The file's name inside the Steward home."""
FILE_MODE = 0o600
"""Owner read and write only."""


def credentials_path(home: Path) -> Path:
    """Where the credentials of the Steward home ``home`` live."""
    return Path(home).expanduser() / FILE_NAME


def server_key(uri: str) -> str:
    """The key a server's token is stored under: its URI without a trailing ``/``."""
    return uri.strip().rstrip("/")


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": 1, "servers": {}}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(found, dict) or not isinstance(found.get("servers"), dict):
            raise ValueError("no 'servers' object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"the credentials file {path} is damaged ({exc}): delete it and run 'steward login' again",
            {"field": "credentials"},
        ) from None
    return found


def _write(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes it 0600 already; say so rather than rely on it
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_token(home: Path, uri: str, token: str) -> Path:
    """Store ``token`` for the server ``uri`` (replacing any earlier one); return the file's path.

    Raises:
        InvalidInput: The token is empty or the file is damaged.
    """
    if not token or not token.strip():
        raise InvalidInput("an empty token cannot be stored", {"field": "token"})
    path = credentials_path(home)
    content = _read(path)
    saved_at = datetime.now(UTC).isoformat(timespec="seconds")
    content["servers"][server_key(uri)] = {"token": token.strip(), "saved_at": saved_at}
    content["version"] = 1
    _write(path, content)
    return path


def load_token(home: Path, uri: str | None) -> str | None:
    """The token stored for the server ``uri``, or None (no file, no entry, or no ``uri``).

    Raises:
        InvalidInput: The file is damaged.
    """
    if not uri:
        return None
    entry = _read(credentials_path(home))["servers"].get(server_key(uri))
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) and token else None


def forget(home: Path, uri: str) -> bool:
    """Remove the token stored for the server ``uri``; return whether there was one.

    Raises:
        InvalidInput: The file is damaged.
    """
    path = credentials_path(home)
    content = _read(path)
    if content["servers"].pop(server_key(uri), None) is None:
        return False
    _write(path, content)
    return True
