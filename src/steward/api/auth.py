"""Authentication and authorisation of every API route.

Every route declares what it needs with ``dependencies=[requires("models:write")]`` (or
``authenticated()`` for routes any signed-in principal may call, or ``public()`` for the few that need
no credentials: health, docs, the bootstrap exchange). ``tests/api/test_auth.py`` walks the app's routes
and fails if one declares nothing.

The dependency authenticates the request, picks its project (the ``X-Steward-Project`` header, else the
server's ``project`` setting), checks the permission there and then *acts as* that identity in that
project for the rest of the request (``steward.core.acting``), so the services scope their queries to
the project and record the right actor.

- With auth off (``steward server`` without ``--auth``) every request acts as the server's OS user with
  the ``admin`` role, like embedded mode.
- With auth on, a missing or bad credential is 401 and a missing permission 403; both are audited.
  Credentials are API tokens (``stw_…``, checked against their hash) or, when OIDC is configured,
  bearer JWTs from the identity provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from steward.core.acting import Acting, set_current
from steward.core.names import NAME_PATTERN
from steward.errors import Forbidden, InvalidInput, StewardError, Unauthenticated
from steward.governance.context import Identity, local_identity
from steward.governance.oidc import MAX_TOKEN_BYTES
from steward.governance.rbac import check_permission

PROJECT_HEADER = "x-steward-project"
"""The request header naming the project a request acts in."""

PUBLIC = "public"
AUTHENTICATED = "authenticated"


class Guard(Protocol):
    """What a route's dependency consults: is auth on, who verifies credentials, who records refusals."""

    enabled: bool

    def authenticate(self, credential: str) -> Identity:
        """Return the identity of a bearer credential, or raise ``Unauthenticated``."""
        ...

    def awaiting_bootstrap(self) -> bool:
        """Whether the server still waits for its bootstrap token to make the first admin."""
        ...

    def refused(self, request: Request, error: StewardError, actor: str, project: str | None) -> None:
        """Record a refused request in the audit trail."""
        ...


def _bearer(request: Request) -> str:
    return bearer_credential(request.headers.get("authorization"))


def bearer_credential(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        Unauthenticated: If there is no header, another scheme, or an empty or oversized token.
    """
    if not header:
        raise Unauthenticated("this server needs a bearer token (steward login, or STEWARD_TOKEN)")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > MAX_TOKEN_BYTES:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return credential


def _project(request: Request) -> str:
    name = request.headers.get(PROJECT_HEADER) or request.app.state.settings.project
    if not NAME_PATTERN.match(name):
        raise InvalidInput(f"invalid project name {name[:64]!r}", {"field": PROJECT_HEADER})
    return str(name)


def _request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


async def _identify(request: Request, guard: Guard | None) -> Identity:
    if guard is None or not guard.enabled:
        return local_identity(request.app.state.platform.local_actor)
    credential = _bearer(request)
    if guard.awaiting_bootstrap():
        raise Unauthenticated("this server awaits its bootstrap token: run 'steward login --bootstrap'")
    return await run_in_threadpool(guard.authenticate, credential)


def _dependency(permission: str) -> Callable[[Request], Awaitable[Identity | None]]:
    async def authorise(request: Request) -> Identity | None:
        if permission == PUBLIC:
            return None
        guard: Guard | None = getattr(request.app.state, "guard", None)
        project: str | None = None
        actor = "anonymous"
        try:
            identity = await _identify(request, guard)
            actor = identity.name
            project = _project(request)
            if permission != AUTHENTICATED:
                if not identity.is_member(project):
                    raise Forbidden(f"{identity.name!r} is not a member of project {project!r}",
                                    {"project": project})  # fmt: skip
                identity.require(permission, project)
        except (Unauthenticated, Forbidden) as error:
            if guard is not None and guard.enabled:
                await run_in_threadpool(guard.refused, request, error, actor, project)
            raise
        set_current(Acting(identity.name, project, _request_id(request), identity))
        request.state.identity = identity
        return identity

    authorise.permission = permission  # type: ignore[attr-defined]  # read by the route walk
    authorise.__name__ = f"requires_{permission.replace(':', '_')}"
    return authorise


_DEPENDENCIES: dict[str, DependsParam] = {}


def requires(permission: str) -> Any:
    """The route dependency that admits only identities holding ``permission`` in the request's project.

    Use as ``@router.get(..., dependencies=[requires("models:read")])``.
    """
    if permission not in (PUBLIC, AUTHENTICATED):
        check_permission(permission)
    found = _DEPENDENCIES.get(permission)
    if found is None:
        found = _DEPENDENCIES[permission] = Depends(_dependency(permission))
    return found


def authenticated() -> Any:
    """The route dependency that admits any authenticated identity (in any project)."""
    return requires(AUTHENTICATED)


def public() -> Any:
    """The route dependency of routes that need no credentials (health, docs, bootstrap)."""
    return requires(PUBLIC)


def permission_of(dependant_calls: list[Callable[..., Any]]) -> str | None:
    """Return the permission declared among a route's dependency callables (None if none is)."""
    for call in dependant_calls:
        found = getattr(call, "permission", None)
        if isinstance(found, str):
            return found
    return None


def api_routes(app: Any) -> list[APIRoute]:
    """Every ``APIRoute`` of ``app``, through the routers it includes (FastAPI keeps those apart)."""
    found: list[APIRoute] = []

    def walk(routes: Any) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes)

    walk(app.routes)
    return found


def route_permission(route: APIRoute) -> str | None:
    """The permission ``route`` declares (``public``, ``authenticated`` or ``resource:action``), if any."""
    return permission_of([d.call for d in route.dependant.dependencies if d.call is not None])
