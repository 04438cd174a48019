"""Identity and tenancy: projects and their members, users and service accounts, API tokens, bootstrap.

``IdentityService`` is the one entry point the API, the CLI and the server's auth guard call. Every state
change writes an audit entry in the same transaction; no secret or token hash ever goes into one, nor
into an error.

Who may do what (checked here, against the acting identity: the request's on the server, the local
admin in embedded mode):

- principals and everyone's tokens: ``identity:admin`` from a *global* role (a project's ``admin`` role
  does not reach principals, which span projects);
- a project and its members: ``projects:read`` in that project (others get ``NotFound``, as if it did
  not exist); adding and removing members: ``projects:admin`` in that project;
- a principal's own tokens (``issue_own_token`` …): any authenticated principal; a token narrowed to
  scopes can only issue tokens within those scopes.

``authenticate`` keeps what it found for ``CACHE_TTL_MS`` (5 s) per token hash, so a request rarely
pays a database round trip. Revoking a token, disabling a principal or changing roles in this process
clears the cache at once; another server process sees the change within 5 s. A token's
``last_used_at`` is bookkeeping, written at most once a minute per token and not audited.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import sqlalchemy.exc
from sqlalchemy import Connection, Row

from steward.core.ids import new_id
from steward.core.names import validate_name
from steward.core.time import from_ms, now_ms
from steward.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from steward.governance import audit, tokens
from steward.governance import identity_repository as repo
from steward.governance.context import DEFAULT_PROJECT, Identity, current_identity, local_identity
from steward.governance.identity_models import (
    DEFAULT_TOKEN_LIFETIME,
    KINDS,
    MAX_TOKEN_LIFETIME,
    RESERVED_NAMES,
    IssuedToken,
    Member,
    Principal,
    Project,
    TokenInfo,
    check_principal,
    check_token,
    iso,
    parse_lifetime,
    principal_of,
    project_of,
    token_info_of,
)
from steward.governance.rbac import GLOBAL_ROLES, check_role, permissions_of

if TYPE_CHECKING:
    from steward.store.platform import Platform

__all__ = [
    "CACHE_TTL_MS",
    "DEFAULT_TOKEN_LIFETIME",
    "KINDS",
    "MAX_TOKEN_LIFETIME",
    "RESERVED_NAMES",
    "TOUCH_EVERY_MS",
    "IdentityService",
    "IssuedToken",
    "Member",
    "Principal",
    "Project",
    "TokenInfo",
    "parse_lifetime",
]

log = logging.getLogger("steward.identity")

CACHE_TTL_MS = 5_000
"""How long ``authenticate`` trusts what it found for a token (another process's revocation shows
within this)."""
TOUCH_EVERY_MS = 60_000
"""``last_used_at`` is written at most this often per token."""
_CACHE_MAX = 10_000


@dataclass
class _Cached:
    identity: Identity
    expires_at: int | None
    until: int


class IdentityService:
    """Projects, principals, memberships, API tokens, authentication and bootstrap of one platform.

    Args:
        platform: The platform whose metadata store holds them.
        clock: Unix milliseconds now (tests move it).
    """

    def __init__(self, platform: Platform, *, clock: Callable[[], int] = now_ms) -> None:
        self.platform = platform
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._generation = 0
        self._admin_seen_until = 0

    # -- helpers ------------------------------------------------------------------------------------

    def _acting(self) -> Identity:
        return current_identity(local_identity(self.platform.local_actor))

    def now(self) -> datetime:
        """The service's clock, as an aware UTC ``datetime`` (what token statuses are judged at)."""
        return from_ms(self._clock())

    def _record(self, conn: Connection, action: str, kind: str, resource: str, **fields: Any) -> None:
        fields.setdefault("actor", self.platform.actor)
        audit.append(
            conn, action=action, resource_kind=kind, resource_id=resource,
            request_id=self.platform.request_id, checkpoint=audit.checkpointer_for(self.platform.settings),
            **fields,
        )  # fmt: skip

    def _refuse(self, error: Exception, action: str, kind: str, resource: str, **fields: Any) -> NoReturn:
        """Audit a refusal (in its own transaction, since the caller's rolls back) and raise ``error``."""
        message = getattr(error, "message", str(error))
        with self.platform.metadata.transaction() as conn:
            self._record(
                conn, action, kind, resource, outcome="denied", details={"reason": message}, **fields
            )
        raise error

    def _require(self, permission: str, project: str, action: str, kind: str, resource: str) -> None:
        try:
            self._acting().require(permission, project)
        except Forbidden as exc:
            self._refuse(exc, action, kind, resource, project=project)

    def _require_global(self, permission: str, action: str, kind: str, resource: str) -> Identity:
        identity = self._acting()
        granted = permissions_of(identity.global_roles)
        if identity.scopes is not None:
            granted &= identity.scopes
        if permission not in granted:
            error = Forbidden(
                f"{identity.name!r} lacks {permission!r} across projects (granted by the global role admin)",
                {"permission": permission},
            )
            self._refuse(error, action, kind, resource)
        return identity

    def _forget(self) -> None:
        """Drop every cached authentication (after a change to tokens, principals or roles)."""
        with self._lock:
            self._cache.clear()
            self._generation += 1
            self._admin_seen_until = 0

    # -- projects -----------------------------------------------------------------------------------

    def ensure_project(self, name: str) -> Project:
        """Return the project ``name``, creating it (audited) if it does not exist yet.

        This is how ``default`` comes to exist; it checks no permission, so callers decide who may.

        Raises:
            InvalidInput: For a bad name.
        """
        validate_name(name, "project")
        with self.platform.metadata.read() as conn:
            row = repo.find_project(conn, name)
        if row is None:
            try:
                with self.platform.metadata.transaction() as conn:
                    if repo.find_project(conn, name) is None:
                        self._insert_project(conn, name, "", implicit=True)
            except sqlalchemy.exc.IntegrityError:
                pass  # another process made it first
            with self.platform.metadata.read() as conn:
                row = repo.find_project(conn, name)
        assert row is not None
        return project_of(row)

    def _insert_project(self, conn: Connection, name: str, description: str, *, implicit: bool) -> None:
        values = {"id": new_id(), "name": name, "description": description, "created_at": self._clock(),
                  "created_by": self.platform.actor}  # fmt: skip
        repo.insert_project(conn, values)
        details = {"implicit": True} if implicit else {}
        self._record(conn, "project.create", "project", name, project=name, details=details)

    def create_project(self, name: str, description: str = "") -> Project:
        """Create a project. A creator without a global role becomes its ``admin`` member.

        Raises:
            InvalidInput: For a bad name or a description over 4,096 characters.
            AlreadyExists: A project of that name exists.
        """
        validate_name(name, "project")
        if len(description) > 4096:
            raise InvalidInput("a project description is at most 4,096 characters", {"field": "description"})
        identity = self._acting()
        with self.platform.metadata.transaction() as conn:
            if repo.find_project(conn, name) is not None:
                raise AlreadyExists(f"project {name!r} already exists", {"field": "name"})
            self._insert_project(conn, name, description, implicit=False)
            creator = repo.find_principal(conn, identity.name) if identity.kind in KINDS else None
            if creator is not None and "admin" not in identity.global_roles:
                self._add_membership(conn, name, creator, "admin")
            created = project_of(self._project_row(conn, name))
        self._forget()
        return created

    def list_projects(self, identity: Identity | None = None) -> list[Project]:
        """The projects ``identity`` (the acting one by default) may read, by name.

        Global ``admin`` and ``auditor`` see every project; others those they are members of.
        """
        identity = identity or self._acting()
        self.ensure_project(DEFAULT_PROJECT)
        names = None if identity.global_roles else list(identity.project_roles)
        with self.platform.metadata.read() as conn:
            rows = repo.project_rows(conn, names)
        return [project_of(row) for row in rows if identity.can("projects:read", row.name)]

    def get_project(self, name: str) -> Project:
        """The project ``name``.

        Raises:
            NotFound: It does not exist, or the acting identity may not read it.
        """
        validate_name(name, "project")
        if name == DEFAULT_PROJECT:
            self.ensure_project(name)
        with self.platform.metadata.read() as conn:
            row = repo.find_project(conn, name)
        if row is None or not self._acting().can("projects:read", name):
            raise NotFound(f"project {name!r} not found", {"field": "project"})
        return project_of(row)

    def _project_row(self, conn: Connection, name: str) -> Row[Any]:
        row = repo.find_project(conn, name)
        if row is None:
            raise NotFound(f"project {name!r} not found", {"field": "project"})
        return row

    def _principal_row(self, conn: Connection, name: str) -> Row[Any]:
        row = repo.find_principal(conn, name)
        if row is None:
            raise NotFound(f"principal {name!r} not found", {"field": "principal"})
        return row

    def _add_membership(self, conn: Connection, project: str, principal: Row[Any], role: str) -> bool:
        project_row = self._project_row(conn, project)
        if repo.has_membership(conn, project_row.id, principal.id, role):
            return False
        repo.insert_membership(conn, {
            "project_id": project_row.id, "principal_id": principal.id, "role": role,
            "added_at": self._clock(), "added_by": self.platform.actor,
        })  # fmt: skip
        details = {"principal": principal.name, "role": role}
        self._record(conn, "project.add_member", "project", project, project=project, details=details)
        return True

    def add_member(self, project: str, principal: str, role: str) -> Member:
        """Give ``principal`` ``role`` in ``project`` (holding it already changes nothing).

        Raises:
            InvalidInput: For a bad name or an unknown role.
            Forbidden: The acting identity lacks ``projects:admin`` in ``project``.
            NotFound: No such project or principal.
        """
        validate_name(project, "project")
        validate_name(principal, "principal")
        check_role(role)
        self._require("projects:admin", project, "project.add_member", "project", project)
        if project == DEFAULT_PROJECT:
            self.ensure_project(project)
        with self.platform.metadata.transaction() as conn:
            self._add_membership(conn, project, self._principal_row(conn, principal), role)
        self._forget()
        return self._member(project, principal)

    def remove_member(self, project: str, principal: str, role: str | None = None) -> list[str]:
        """Take ``role`` (every role, for None) in ``project`` from ``principal``; return the roles removed.

        Raises:
            Forbidden: The acting identity lacks ``projects:admin`` in ``project``.
            NotFound: No such project or principal, or it holds no such role there.
        """
        validate_name(project, "project")
        validate_name(principal, "principal")
        if role is not None:
            check_role(role)
        self._require("projects:admin", project, "project.remove_member", "project", project)
        with self.platform.metadata.transaction() as conn:
            project_row = self._project_row(conn, project)
            principal_row = self._principal_row(conn, principal)
            removed = repo.delete_memberships(conn, project_row.id, principal_row.id, role)
            if not removed:
                what = f"the role {role!r}" if role else "any role"
                raise NotFound(
                    f"{principal!r} does not hold {what} in project {project!r}", {"field": "principal"}
                )
            details = {"principal": principal, "roles": removed}
            self._record(conn, "project.remove_member", "project", project, project=project, details=details)
        self._forget()
        return removed

    def members(self, project: str) -> list[Member]:
        """The members of ``project`` with their roles, by name.

        Raises:
            NotFound: No such project, or the acting identity may not read it.
        """
        return self._members(self.get_project(project).id)

    def _members(self, project_id: str) -> list[Member]:
        with self.platform.metadata.read() as conn:
            rows = repo.member_rows(conn, project_id)
        grouped: dict[str, list[Row[Any]]] = {}
        for row in rows:
            grouped.setdefault(row.name, []).append(row)
        return [Member(name, group[0].kind, tuple(r.role for r in group), group[0].disabled_at is not None)
                for name, group in grouped.items()]  # fmt: skip

    def _member(self, project: str, principal: str) -> Member:
        with self.platform.metadata.read() as conn:
            project_id = self._project_row(conn, project).id
        for member in self._members(project_id):
            if member.name == principal:
                return member
        raise NotFound(f"{principal!r} is not a member of project {project!r}", {"field": "principal"})

    # -- principals ---------------------------------------------------------------------------------

    def create_user(
        self, name: str, display_name: str = "", email: str = "", global_role: str | None = None
    ) -> Principal:
        """Create a user (needs global ``identity:admin``).

        Raises:
            InvalidInput: For a bad or reserved name, a bad e-mail or a role that is not global.
            AlreadyExists: A principal of that name exists.
            Forbidden: The acting identity lacks global ``identity:admin``.
        """
        return self._create_principal("user", name, display_name, email, global_role)

    def create_service_account(
        self, name: str, display_name: str = "", global_role: str | None = None
    ) -> Principal:
        """Create a service account (for CI, pipelines, serving); as ``create_user`` otherwise."""
        return self._create_principal("service", name, display_name, "", global_role)

    def _create_principal(
        self, kind: str, name: str, display_name: str, email: str, global_role: str | None
    ) -> Principal:
        check_principal(name, display_name, email, global_role)
        self._require_global("identity:admin", "principal.create", "principal", name)
        with self.platform.metadata.transaction() as conn:
            self._insert_principal(conn, kind, name, display_name, email, global_role)
        self._forget()
        return self._get_principal(name)

    def _insert_principal(
        self, conn: Connection, kind: str, name: str, display_name: str, email: str, global_role: str | None,
        actor: str = "",
    ) -> str:  # fmt: skip
        if repo.find_principal(conn, name) is not None:
            raise AlreadyExists(f"principal {name!r} already exists", {"field": "name"})
        principal_id = new_id()
        repo.insert_principal(conn, {
            "id": principal_id, "name": name, "kind": kind, "display_name": display_name, "email": email,
            "global_role": global_role, "created_at": self._clock(),
            "created_by": actor or self.platform.actor,
        })  # fmt: skip
        details = {"kind": kind, "global_role": global_role}
        self._record(
            conn, "principal.create", "principal", name, details=details, actor=actor or self.platform.actor
        )
        return principal_id

    def get_principal(self, name: str) -> Principal:
        """The principal ``name`` (needs global ``identity:admin``).

        Raises:
            NotFound: No such principal.
        """
        self._require_global("identity:admin", "principal.read", "principal", name)
        return self._get_principal(name)

    def _get_principal(self, name: str) -> Principal:
        with self.platform.metadata.read() as conn:
            return principal_of(self._principal_row(conn, name))

    def list_principals(self, kind: str | None = None) -> list[Principal]:
        """Every principal (or those of ``kind``), by name (needs global ``identity:admin``)."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(
                f"unknown principal kind {kind!r}; kinds are {', '.join(KINDS)}", {"field": "kind"}
            )
        self._require_global("identity:admin", "principal.read", "principal", "*")
        with self.platform.metadata.read() as conn:
            return [principal_of(row) for row in repo.principal_rows(conn, kind)]

    def _check_admins_left(self, conn: Connection, row: Row[Any], action: str) -> None:
        if row.global_role == "admin" and row.disabled_at is None and repo.enabled_admins(conn) == [row.id]:
            raise Conflict(
                f"cannot {action} {row.name!r}: it is the last enabled admin; "
                "make another principal admin first",
                {"field": "principal"},
            )

    def disable_principal(self, name: str) -> Principal:
        """Disable a principal: none of its tokens authenticate any more (needs global ``identity:admin``).

        Raises:
            NotFound: No such principal.
            Conflict: It is disabled already, or it is the last enabled admin.
        """
        self._require_global("identity:admin", "principal.disable", "principal", name)
        with self.platform.metadata.transaction() as conn:
            row = self._principal_row(conn, name)
            if row.disabled_at is not None:
                raise Conflict(f"principal {name!r} is disabled already", {"field": "principal"})
            self._check_admins_left(conn, row, "disable")
            repo.set_principal(conn, row.id, disabled_at=self._clock())
            self._record(conn, "principal.disable", "principal", name)
        self._forget()
        return self._get_principal(name)

    def enable_principal(self, name: str) -> Principal:
        """Enable a disabled principal again (needs global ``identity:admin``).

        Raises:
            NotFound: No such principal.
            Conflict: It is not disabled.
        """
        self._require_global("identity:admin", "principal.enable", "principal", name)
        with self.platform.metadata.transaction() as conn:
            row = self._principal_row(conn, name)
            if row.disabled_at is None:
                raise Conflict(f"principal {name!r} is not disabled", {"field": "principal"})
            repo.set_principal(conn, row.id, disabled_at=None)
            self._record(conn, "principal.enable", "principal", name)
        self._forget()
        return self._get_principal(name)

    def set_global_role(self, name: str, role: str | None) -> Principal:
        """Give ``name`` the global role ``role`` (``admin``, ``auditor``), or take it away (None).

        Raises:
            InvalidInput: ``role`` is not a global role.
            NotFound: No such principal.
            Conflict: It would leave no enabled admin.
        """
        if role is not None and role not in GLOBAL_ROLES:
            known = ", ".join(sorted(GLOBAL_ROLES))
            raise InvalidInput(
                f"{role!r} is not a global role; global roles are {known}", {"field": "global_role"}
            )
        self._require_global("identity:admin", "principal.set_global_role", "principal", name)
        with self.platform.metadata.transaction() as conn:
            row = self._principal_row(conn, name)
            if row.global_role != role:
                if role != "admin":
                    self._check_admins_left(conn, row, "take the admin role from")
                repo.set_principal(conn, row.id, global_role=role)
                details = {"before": row.global_role, "after": role}
                self._record(conn, "principal.set_global_role", "principal", name, details=details)
        self._forget()
        return self._get_principal(name)

    # -- tokens -------------------------------------------------------------------------------------

    def issue_token(
        self,
        principal: str,
        name: str = "",
        scopes: Iterable[str] | None = None,
        expires_in: timedelta | None = DEFAULT_TOKEN_LIFETIME,
    ) -> IssuedToken:
        """Issue an API token for ``principal`` (needs global ``identity:admin``).

        Args:
            principal: Who the token acts as.
            name: What it is for (``ci``, ``laptop``), to tell tokens apart.
            scopes: Permissions to narrow it to (it never exceeds the principal's roles); None for all.
            expires_in: Its lifetime (90 days by default); None, asked for explicitly, never expires.

        Returns:
            The token, with its secret: shown this once, never stored.

        Raises:
            InvalidInput: For a bad name, an unknown scope or a lifetime out of range.
            NotFound: No such principal.
            Conflict: The principal is disabled.
        """
        self._require_global("identity:admin", "token.issue", "principal", principal)
        return self._issue_for(principal, name, scopes, expires_in)

    def _issue_for(
        self, principal: str, name: str, scopes: Iterable[str] | None, expires_in: timedelta | None
    ) -> IssuedToken:
        found_scopes, expires_at = check_token(name, scopes, expires_in, self._clock())
        with self.platform.metadata.transaction() as conn:
            row = self._principal_row(conn, principal)
            if row.disabled_at is not None:
                raise Conflict(
                    f"principal {principal!r} is disabled: enable it first", {"field": "principal"}
                )
            return self._insert_token(conn, row.id, principal, name, found_scopes, expires_at)

    def _insert_token(
        self, conn: Connection, principal_id: str, principal: str, name: str, scopes: tuple[str, ...] | None,
        expires_at: int | None, actor: str = "",
    ) -> IssuedToken:  # fmt: skip
        secret, token_id = tokens.generate(), new_id()
        repo.insert_token(conn, {
            "id": token_id, "principal_id": principal_id, "token_hash": tokens.hash_token(secret),
            "purpose": repo.API, "name": name, "scopes": json.dumps(scopes) if scopes is not None else None,
            "created_at": self._clock(), "created_by": actor or self.platform.actor, "expires_at": expires_at,
        })  # fmt: skip
        details = {"principal": principal, "name": name, "scopes": scopes, "expires_at": expires_at}
        self._record(
            conn, "token.issue", "api_token", token_id, details=details, actor=actor or self.platform.actor
        )
        return IssuedToken(token_id, principal, name, scopes, from_ms(expires_at), secret)

    def _own_principal(self) -> tuple[Identity, str]:
        identity = self._acting()
        with self.platform.metadata.read() as conn:
            row = repo.find_principal(conn, identity.name) if identity.kind in KINDS else None
        if row is None:
            raise NotFound(
                f"{identity.name!r} is not a Steward user or service account: only those hold API tokens",
                {"field": "principal"},
            )
        return identity, row.id

    def issue_own_token(
        self, name: str = "", scopes: Iterable[str] | None = None,
        expires_in: timedelta | None = DEFAULT_TOKEN_LIFETIME,
    ) -> IssuedToken:  # fmt: skip
        """Issue a token for the acting principal itself (as ``issue_token``, no admin needed).

        A request made with a scoped token can only issue tokens within those scopes (none given: the
        same scopes), so a narrowed token never mints a wider one.

        Raises:
            NotFound: The acting identity is no user or service account (the local OS user, an OIDC one).
            Forbidden: The scopes asked for exceed those of the token in use.
        """
        identity, _ = self._own_principal()
        if identity.scopes is not None:
            if scopes is None:
                scopes = sorted(identity.scopes)
            else:
                scopes = list(scopes)
                wider = sorted(set(scopes) - identity.scopes)
                if wider:
                    limited = ", ".join(sorted(identity.scopes))
                    message = (
                        f"this token is limited to {limited}: it cannot issue one with {', '.join(wider)}"
                    )
                    error = Forbidden(message, {"field": "scopes"})
                    self._refuse(error, "token.issue", "principal", identity.name)
        return self._issue_for(identity.name, name, scopes, expires_in)

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        """``principal``'s API tokens (every principal's, for None), oldest first; no secret, no hash.

        Raises:
            NotFound: No such principal.
        """
        self._require_global("identity:admin", "token.read", "principal", principal or "*")
        with self.platform.metadata.read() as conn:
            principal_id = self._principal_row(conn, principal).id if principal is not None else None
            return self._token_infos(conn, repo.token_rows(conn, principal_id))

    def list_own_tokens(self) -> list[TokenInfo]:
        """The acting principal's own API tokens, oldest first."""
        _, principal_id = self._own_principal()
        with self.platform.metadata.read() as conn:
            return self._token_infos(conn, repo.token_rows(conn, principal_id))

    def _token_infos(self, conn: Connection, rows: list[Row[Any]]) -> list[TokenInfo]:
        names = repo.principal_names(conn, (row.principal_id for row in rows if row.principal_id))
        return [token_info_of(row, names.get(row.principal_id)) for row in rows]

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token (needs global ``identity:admin``): it stops authenticating at once here, within
        ``CACHE_TTL_MS`` in other server processes.

        Revoking is not idempotent on purpose: a second revocation is a ``Conflict`` naming when the
        first happened, so a script learns the token was already dead rather than that it just died.

        Raises:
            NotFound: No such token.
            Conflict: It is revoked already.
        """
        self._require_global("identity:admin", "token.revoke", "api_token", token_id)
        return self._revoke(token_id, None)

    def revoke_own_token(self, token_id: str) -> TokenInfo:
        """Revoke one of the acting principal's own tokens (as ``revoke_token``; another's: ``NotFound``)."""
        _, principal_id = self._own_principal()
        return self._revoke(token_id, principal_id)

    def _revoke(self, token_id: str, owner: str | None) -> TokenInfo:
        with self.platform.metadata.transaction() as conn:
            row = repo.token_row(conn, token_id)
            if row is None or (owner is not None and row.principal_id != owner):
                raise NotFound(f"token {token_id[:64]!r} not found", {"field": "token_id"})
            if row.revoked_at is not None:
                raise Conflict(f"token {token_id!r} was revoked already, at {iso(from_ms(row.revoked_at))}",
                               {"field": "token_id"})  # fmt: skip
            repo.revoke_token(conn, token_id, self._clock())
            principal = repo.principal_names(conn, [row.principal_id]).get(row.principal_id)
            self._record(
                conn,
                "token.revoke",
                "api_token",
                token_id,
                details={"principal": principal, "name": row.name},
            )
            revoked = repo.token_row(conn, token_id)
            assert revoked is not None
            info = token_info_of(revoked, principal)
        self._forget()
        return info

    # -- authentication -----------------------------------------------------------------------------

    def authenticate(self, credential: str) -> Identity:
        """Return the identity an API token secret proves.

        Raises:
            Unauthenticated: Malformed, unknown, revoked or expired token, the bootstrap token, or a
                disabled principal, each with its own message (none repeats the secret).
        """
        token_hash = tokens.hash_token(tokens.parse(credential))
        now = self._clock()
        with self._lock:
            cached = self._cache.get(token_hash)
            generation = self._generation
        if cached is not None and cached.until > now:
            if cached.expires_at is None or cached.expires_at > now:
                return cached.identity
            raise Unauthenticated(f"this token expired at {iso(from_ms(cached.expires_at))}")
        with self.platform.metadata.read() as conn:
            row = repo.token_for_hash(conn, token_hash)
            if row is None:
                raise Unauthenticated("unknown token")
            identity = replace(_identity_of(row, now), project_roles=repo.roles_of(conn, row.principal_id))
        if row.last_used_at is None or row.last_used_at <= now - TOUCH_EVERY_MS:
            self._touch(row.id, now)
        with self._lock:
            if generation == self._generation:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[token_hash] = _Cached(identity, row.expires_at, now + CACHE_TTL_MS)
        return identity

    def _touch(self, token_id: str, now: int) -> None:
        try:
            with self.platform.metadata.transaction() as conn:
                repo.touch_token(conn, token_id, now, now - TOUCH_EVERY_MS + 1)
        except ServiceUnavailable as exc:  # bookkeeping must not refuse a valid token
            log.warning("could not record the use of token %s: %s", token_id, exc.message)

    # -- bootstrap ----------------------------------------------------------------------------------

    def needs_bootstrap(self) -> bool:
        """Whether no enabled principal holds the global ``admin`` role (the server waits for bootstrap).

        A found admin is remembered for ``CACHE_TTL_MS``, so the guard may ask on every request.
        """
        now = self._clock()
        if self._admin_seen_until > now:
            return False
        with self.platform.metadata.read() as conn:
            found = bool(repo.enabled_admins(conn, 1))
        if found:
            self._admin_seen_until = now + CACHE_TTL_MS
        return not found

    def start_bootstrap(self) -> str | None:
        """If bootstrap is needed, make a new one-time bootstrap token (replacing any earlier unused one)
        and return its secret, to show once; else None.
        """
        if not self.needs_bootstrap():
            return None
        secret, token_id = tokens.generate(), new_id()
        with self.platform.metadata.transaction() as conn:
            if repo.enabled_admins(conn, 1):
                return None
            replaced = repo.delete_bootstrap_tokens(conn)
            repo.insert_token(conn, {
                "id": token_id, "principal_id": None, "token_hash": tokens.hash_token(secret),
                "purpose": repo.BOOTSTRAP, "name": "bootstrap", "created_at": self._clock(),
                "created_by": self.platform.actor,
            })  # fmt: skip
            self._record(conn, "bootstrap.start", "api_token", token_id, details={"replaced": replaced})
        return secret

    def redeem_bootstrap(self, secret: str, admin_name: str) -> IssuedToken:
        """Spend the bootstrap token: create the user ``admin_name`` with the global ``admin`` role and
        return its first API token (default lifetime). The bootstrap token is gone afterwards.

        Raises:
            InvalidInput: For a bad admin name.
            Unauthenticated: Malformed, unknown or already used bootstrap token, or an admin exists.
            Conflict: A principal named ``admin_name`` exists.
        """
        check_principal(admin_name, "", "", "admin")
        try:
            token_hash = tokens.hash_token(tokens.parse(secret))
            with self.platform.metadata.transaction() as conn:
                row = repo.token_for_hash(conn, token_hash)
                if row is None or row.purpose != repo.BOOTSTRAP or not repo.delete_token(conn, row.id):
                    raise Unauthenticated("unknown or already used bootstrap token")
                if repo.enabled_admins(conn, 1):
                    raise Unauthenticated("this server has an admin already: log in with an API token")
                if repo.find_principal(conn, admin_name) is not None:
                    message = f"a principal named {admin_name!r} exists already: choose another admin name"
                    raise Conflict(message, {"field": "admin"})
                principal_id = self._insert_principal(conn, "user", admin_name, "", "", "admin", admin_name)
                expires_at = self._clock() + int(DEFAULT_TOKEN_LIFETIME.total_seconds() * 1000)
                issued = self._insert_token(
                    conn, principal_id, admin_name, "bootstrap", None, expires_at, admin_name
                )
                self._record(conn, "bootstrap.redeem", "principal", admin_name, actor=admin_name,
                             details={"bootstrap_token": row.id})  # fmt: skip
        except Unauthenticated as exc:
            self._refuse(exc, "bootstrap.redeem", "principal", admin_name, actor="anonymous")
        self._forget()
        return issued


def _identity_of(row: Row[Any], now: int) -> Identity:
    """The identity a token row proves (project roles still empty), or ``Unauthenticated`` saying why not."""
    if row.purpose == repo.BOOTSTRAP:
        raise Unauthenticated(
            "this is the bootstrap token: redeem it with 'steward login --bootstrap <token> --admin <name>'"
        )
    if row.revoked_at is not None:
        raise Unauthenticated("this token was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(f"this token expired at {iso(from_ms(row.expires_at))}")
    if row.principal is None:
        raise Unauthenticated("unknown token")
    if row.disabled_at is not None:
        raise Unauthenticated(f"principal {row.principal!r} is disabled")
    scopes = frozenset(json.loads(row.scopes)) if row.scopes is not None else None
    global_roles = frozenset({row.global_role}) if row.global_role else frozenset()
    return Identity(row.principal, row.kind, global_roles, {}, scopes, row.id)
