"""Identities and what they may do where: the principal every service authorises, scopes and audits.

Embedded (local) mode acts as the operating-system user with the ``admin`` role, in the project the
settings name. The API server authenticates each request and acts as its identity, in its project, for
the request's duration (``steward.core.acting``'s context variable).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from steward.core.acting import Acting, acting, current, os_user
from steward.errors import Forbidden
from steward.governance.rbac import permissions_of, roles_with

DEFAULT_PROJECT = "default"
"""The project of everything made without naming one."""


@dataclass(frozen=True)
class Identity:
    """An authenticated principal.

    Attributes:
        name: The principal's name (what audit entries call the actor).
        kind: ``user``, ``service``, ``oidc`` (a bearer JWT's subject) or ``local`` (embedded mode).
        global_roles: Roles that apply in every project (``admin``, ``auditor``).
        project_roles: Roles per project name.
        scopes: The permissions a token was narrowed to; None when it was not.
        token_id: The API token it came from, if any.
    """

    name: str
    kind: str
    global_roles: frozenset[str] = frozenset()
    project_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    scopes: frozenset[str] | None = None
    token_id: str | None = None

    def roles_in(self, project: str) -> frozenset[str]:
        """The roles this identity holds in ``project``."""
        return self.global_roles | self.project_roles.get(project, frozenset())

    def permissions_in(self, project: str) -> frozenset[str]:
        """The permissions this identity holds in ``project`` (narrowed by its token's scopes)."""
        granted = permissions_of(self.roles_in(project))
        return granted if self.scopes is None else granted & self.scopes

    def can(self, permission: str, project: str) -> bool:
        """Whether this identity holds ``permission`` in ``project``."""
        return permission in self.permissions_in(project)

    def is_member(self, project: str) -> bool:
        """Whether this identity may see ``project`` at all (a member, or holding a global role)."""
        return bool(self.roles_in(project))

    def require(self, permission: str, project: str) -> None:
        """Raise unless this identity holds ``permission`` in ``project``.

        Raises:
            Forbidden: Naming the permission and the roles that grant it.
        """
        if not self.can(permission, project):
            raise Forbidden(
                f"{self.name!r} lacks {permission!r} in project {project!r} "
                f"(granted by: {', '.join(roles_with(permission))})",
                {"permission": permission, "project": project},
            )


def local_identity(name: str | None = None) -> Identity:
    """Embedded mode's identity: the OS user, ``admin`` everywhere."""
    return Identity(name or os_user(), "local", frozenset({"admin"}))


def current_identity(default: Identity | None = None) -> Identity:
    """The identity acting now: the request's on the server, else ``default`` (the local admin)."""
    found = current()
    if found is not None and isinstance(found.identity, Identity):
        return found.identity
    return default or local_identity()


@contextmanager
def acting_as(identity: Identity, project: str, request_id: str | None = None) -> Iterator[Acting]:
    """Act as ``identity`` in ``project`` inside the ``with`` block."""
    with acting(Acting(identity.name, project, request_id, identity)) as value:
        yield value
