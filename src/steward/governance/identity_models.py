"""The dataclasses of identity and tenancy, and the checks of what users give for them.

``steward.governance.identity`` re-exports every public name here; ``IdentityService`` is there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row

from steward.core.names import validate_name
from steward.core.time import from_ms
from steward.errors import InvalidInput
from steward.governance.rbac import GLOBAL_ROLES, check_permission

DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
"""How long a token lives unless told otherwise."""
MAX_TOKEN_LIFETIME = timedelta(days=3650)
"""The longest lifetime a token may be given (beyond that, ask for one that never expires)."""
KINDS = ("user", "service")
"""The kinds of principal: people and service accounts."""
RESERVED_NAMES = frozenset({"anonymous", "bootstrap"})
"""Names the audit trail uses for actors that are no principal."""
_LIFETIME = re.compile(r"^\s*(\d{1,7})\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def iso(moment: datetime | None) -> str | None:
    """Return ``moment`` in ISO 8601, or None."""
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class Project:
    """A tenant: every experiment, model and dataset belongs to one."""

    id: str
    name: str
    description: str
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times ISO 8601, UTC)."""
        return {"id": self.id, "name": self.name, "description": self.description,
                "created_at": iso(self.created_at), "created_by": self.created_by}  # fmt: skip


@dataclass(frozen=True)
class Principal:
    """A user (``kind`` ``user``) or service account (``service``) that can hold roles and tokens."""

    id: str
    name: str
    kind: str
    display_name: str
    email: str
    global_role: str | None
    created_at: datetime
    created_by: str
    disabled_at: datetime | None

    @property
    def disabled(self) -> bool:
        """Whether the principal is disabled (it cannot authenticate)."""
        return self.disabled_at is not None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (times ISO 8601, UTC)."""
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "display_name": self.display_name,
            "email": self.email, "global_role": self.global_role, "created_at": iso(self.created_at),
            "created_by": self.created_by, "disabled_at": iso(self.disabled_at),
        }  # fmt: skip


@dataclass(frozen=True)
class Member:
    """A principal's roles in one project."""

    name: str
    kind: str
    roles: tuple[str, ...]
    disabled: bool

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "kind": self.kind, "roles": list(self.roles), "disabled": self.disabled}


@dataclass(frozen=True)
class TokenInfo:
    """What is known of an API token: never its secret (which is not stored) nor its hash."""

    id: str
    principal: str | None
    name: str
    scopes: tuple[str, ...] | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """Return a JSON-ready dict (times ISO 8601, UTC), with the ``status`` at ``now`` if given."""
        found = {
            "id": self.id, "principal": self.principal, "name": self.name,
            "scopes": list(self.scopes) if self.scopes is not None else None,
            "created_at": iso(self.created_at), "created_by": self.created_by,
            "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }  # fmt: skip
        if now is not None:
            found["status"] = self.status(now)
        return found


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: ``secret`` is shown this once and never stored (nor shown by ``repr``)."""

    id: str
    principal: str
    name: str
    scopes: tuple[str, ...] | None
    expires_at: datetime | None
    secret: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict, secret (``token``) included: send it only to whom it was issued."""
        return {
            "id": self.id, "principal": self.principal, "name": self.name, "token": self.secret,
            "scopes": list(self.scopes) if self.scopes is not None else None,
            "expires_at": iso(self.expires_at),
        }  # fmt: skip


def parse_lifetime(text: str) -> timedelta | None:
    """Parse a token lifetime: ``90s``, ``30m``, ``12h``, ``30d``, ``2w`` or ``never`` (None).

    Raises:
        InvalidInput: It is neither a span nor ``never``.
    """
    if text.strip().lower() == "never":
        return None
    found = _LIFETIME.match(text)
    if not found:
        raise InvalidInput(
            f"invalid token lifetime {text[:32]!r}: give a span (30d, 12h, 2w) or 'never'",
            {"field": "expires_in"},
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


# -- rows to models ---------------------------------------------------------------------------------


def project_of(row: Row[Any]) -> Project:
    """Build a ``Project`` from its row."""
    return Project(row.id, row.name, row.description, from_ms(row.created_at), row.created_by)


def principal_of(row: Row[Any]) -> Principal:
    """Build a ``Principal`` from its row."""
    return Principal(
        row.id, row.name, row.kind, row.display_name, row.email, row.global_role, from_ms(row.created_at),
        row.created_by, from_ms(row.disabled_at),
    )  # fmt: skip


def token_info_of(row: Row[Any], principal: str | None) -> TokenInfo:
    """Build a ``TokenInfo`` from its row (which holds no hash) and its principal's name."""
    scopes = tuple(json.loads(row.scopes)) if row.scopes is not None else None
    return TokenInfo(
        row.id, principal, row.name, scopes, from_ms(row.created_at), row.created_by, from_ms(row.expires_at),
        from_ms(row.revoked_at), from_ms(row.last_used_at),
    )  # fmt: skip


def check_principal(name: str, display_name: str, email: str, global_role: str | None) -> None:
    """Check what a new principal is given.

    Raises:
        InvalidInput: For a bad or reserved name, an overlong display name, a bad e-mail address or a
            role that is not global.
    """
    validate_name(name, "principal")
    if name.lower() in RESERVED_NAMES:
        raise InvalidInput(f"{name!r} is reserved: choose another principal name", {"field": "name"})
    if len(display_name) > 256:
        raise InvalidInput("a display name is at most 256 characters", {"field": "display_name"})
    if email and (len(email) > 256 or not _EMAIL.match(email)):
        raise InvalidInput(f"invalid e-mail address {email[:64]!r}", {"field": "email"})
    if global_role is not None and global_role not in GLOBAL_ROLES:
        raise InvalidInput(
            f"{global_role!r} is not a global role; global roles are {', '.join(sorted(GLOBAL_ROLES))}",
            {"field": "global_role"},
        )


def check_token(
    name: str, scopes: Iterable[str] | None, expires_in: timedelta | None, now: int
) -> tuple[tuple[str, ...] | None, int | None]:
    """Check a new token's name, scopes and lifetime; return its scopes (sorted) and ``expires_at``.

    Raises:
        InvalidInput: For a bad name, no or an unknown scope, or a lifetime out of range.
    """
    if name:
        validate_name(name, "token")
    found: tuple[str, ...] | None = None
    if scopes is not None:
        listed = [scopes] if isinstance(scopes, str) else list(scopes)
        if not listed:
            raise InvalidInput("give at least one scope, or none for all the principal's permissions",
                               {"field": "scopes"})  # fmt: skip
        found = tuple(sorted({check_permission(scope) for scope in listed}))
    if expires_in is None:
        return found, None
    if not isinstance(expires_in, timedelta) or not timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME:
        raise InvalidInput(
            f"a token lifetime is more than 0 and at most {MAX_TOKEN_LIFETIME.days} days "
            "(ask for 'never' for one that does not expire)",
            {"field": "expires_in"},
        )
    return found, now + int(expires_in.total_seconds() * 1000)
