"""Who acts now, in which project and request: a context variable every layer can read.

The API server sets it for each authenticated request (``steward.governance.context.acting_as``), so
concurrent requests never see each other's; outside a request nothing is set and embedded mode acts as
the operating-system user in the settings' project. ``identity`` is governance's ``Identity``, kept as
``Any`` here because this module sits below the layer that defines it.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Acting:
    """The acting principal's name, its project, the request it came from and its identity."""

    actor: str
    project: str
    request_id: str | None = None
    identity: Any = None


_acting: ContextVar[Acting | None] = ContextVar("steward_acting", default=None)


def current() -> Acting | None:
    """What ``acting`` set (None outside it)."""
    return _acting.get()


@contextmanager
def acting(value: Acting) -> Iterator[Acting]:
    """Make ``value`` the acting principal inside the ``with`` block (and in threads started from it
    with a copied context)."""
    token = _acting.set(value)
    try:
        yield value
    finally:
        _acting.reset(token)


def set_current(value: Acting | None) -> None:
    """Set the acting principal for the rest of the current context (an API request's task)."""
    _acting.set(value)


def os_user() -> str:
    """The operating-system user's name (``unknown`` if the system cannot tell)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
