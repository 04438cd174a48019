"""What a run records about where it runs: user, host, entry point, git state, Python and packages.

Captured once per process (a ``git`` call costs milliseconds, and 5,000 runs should not pay it 5,000
times).
"""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from steward.tracking.models import SystemInfo


def entry_point() -> str:
    """Return the script or module that started this process, or ``<interactive>``."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path:
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return f"-m {spec.name.removesuffix('.__main__')}"
        return str(Path(path).resolve())
    return "<interactive>"


def git_state(where: Path) -> tuple[str | None, bool | None]:
    """Return ``(commit, dirty)`` of the git work tree holding ``where``, or ``(None, None)``."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, env=env
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return commit.stdout.strip() or None, dirty


def installed_packages() -> dict[str, str]:
    """Return ``{distribution name: version}`` of every installed distribution, sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if name and version:
            found.setdefault(name.lower(), version)  # the first on sys.path is the one imported
    return dict(sorted(found.items()))


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """A distribution's ``Name`` and ``Version`` from its metadata's header lines.

    ``dist.metadata`` parses the whole file as an e-mail message on every access (a few hundred
    distributions cost a first run ~0.3 s); the two fields sit in the first lines of the header.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = None
    for line in text.split("\n\n", 1)[0].splitlines():
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
        if name and version:
            break
    return name, version


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def capture() -> SystemInfo:
    """Return this process's ``SystemInfo`` (computed once per process)."""
    point = entry_point()
    where = Path(point).parent if point.startswith("/") else Path.cwd()
    commit, dirty = git_state(where)
    return SystemInfo(
        user=_user(),
        host=socket.gethostname(),
        entry_point=point,
        git_commit=commit,
        git_dirty=dirty,
        python_version=platform.python_version(),
        packages=installed_packages(),
    )
