"""Identity routes: who am I, bootstrap, projects and members, principals and their API tokens.

Each route parses its input, calls one ``IdentityService`` method and maps the result to JSON, under
``/api/v1``. The service checks what the route dependency cannot: permissions in the project a path
names (not the request's ``X-Steward-Project``), and ``identity:admin`` from a *global* role.

=======  ==========================================  ===========================  =========================
Method   Path                                        Needs                        Answer
=======  ==========================================  ===========================  =========================
GET      ``/whoami``                                 authenticated                identity, roles, project
POST     ``/auth/bootstrap`` ``{token, admin}``      public                       201 ``IssuedToken``
GET      ``/projects``                               authenticated                ``{"projects"}`` readable
POST     ``/projects`` ``{name, description}``       ``projects:admin``           201 ``Project``
GET      ``/projects/{name}``                        ``projects:read`` there      ``Project``
GET      ``/projects/{name}/members``                ``projects:read`` there      ``{"members"}``
POST     ``/projects/{name}/members``                ``projects:admin`` there     201 ``Member``
         ``{principal, role}``
DELETE   ``/projects/{name}/members/{principal}``    ``projects:admin`` there     ``{"removed": [roles]}``
         ``?role=``
GET      ``/principals?kind=``                       global ``identity:admin``    ``{"principals"}``
POST     ``/principals`` ``{name, kind, …}``         global ``identity:admin``    201 ``Principal``
GET      ``/principals/{name}``                      global ``identity:admin``    ``Principal``
POST     ``/principals/{name}/disable|enable``       global ``identity:admin``    ``Principal``
PUT      ``/principals/{name}/global-role``          global ``identity:admin``    ``Principal``
         ``{role}``
GET      ``/principals/{name}/tokens``               global ``identity:admin``    ``{"tokens"}``
POST     ``/principals/{name}/tokens``               global ``identity:admin``    201 ``IssuedToken``
         ``{name, scopes, expires_in}``
DELETE   ``/tokens/{id}``                            global ``identity:admin``    ``TokenInfo`` (revoked)
GET      ``/me/tokens``                              authenticated                ``{"tokens"}`` own
POST     ``/me/tokens`` ``{name, scopes, …}``        authenticated                201 ``IssuedToken``
DELETE   ``/me/tokens/{id}``                         authenticated                ``TokenInfo`` (revoked)
=======  ==========================================  ===========================  =========================

``expires_in`` is a span (``30d``, ``12h``, ``2w``; 90 days if absent) or ``never``. An ``IssuedToken``
carries the secret (``token``) this once, with ``Cache-Control: no-store``; no other answer holds a
secret or a hash. Revoking a revoked token is 409. A project the caller may not read is 404, as if absent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import State

from steward.api.auth import authenticated, public, requires
from steward.api.deps import API_PREFIX
from steward.api.responses import OrjsonResponse
from steward.governance.context import Identity, current_identity, local_identity
from steward.governance.identity import IdentityService, IssuedToken, TokenInfo, parse_lifetime

router = APIRouter(prefix=API_PREFIX, tags=["identity"])

_ADMIN = [requires("identity:admin")]
_SIGNED_IN = [authenticated()]
_NO_STORE = {"Cache-Control": "no-store"}
_Name = Annotated[str, Field(max_length=128)]
_Role = Annotated[str | None, Query(max_length=32, description="Only this role (all, if absent)")]


def identity_service_of(state: State) -> IdentityService:
    """Return the ``IdentityService`` on ``app.state`` (``state.identity``), made on its platform if absent.

    The auth guard must use this same instance: revoking a token or disabling a principal clears the
    authentication cache of the instance that did it.
    """
    if getattr(state, "identity", None) is None:
        state.identity = IdentityService(state.platform)
    return cast(IdentityService, state.identity)


# ``async`` on purpose: a plain ``def`` dependency would cost a threadpool hop on every request.
async def get_identity_service(request: Request) -> IdentityService:
    """Return the app's ``IdentityService`` (``app.state.identity``, made on the app's platform if absent)."""
    return identity_service_of(request.app.state)


Identities = Annotated[IdentityService, Depends(get_identity_service)]
"""A route parameter annotated ``Identities`` receives the app's ``IdentityService``."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BootstrapIn(_Body):
    """Body of ``POST /auth/bootstrap``: the bootstrap token and the name of the first admin."""

    token: str = Field(max_length=256)
    admin: _Name


class ProjectIn(_Body):
    """Body of ``POST /projects``."""

    name: _Name
    description: str = Field(default="", max_length=4096)


class MemberIn(_Body):
    """Body of ``POST /projects/{name}/members``."""

    principal: _Name
    role: str = Field(max_length=32)


class PrincipalIn(_Body):
    """Body of ``POST /principals``: a user or a service account."""

    name: _Name
    kind: Literal["user", "service"] = "user"
    display_name: str = Field(default="", max_length=256)
    email: str = Field(default="", max_length=256)
    global_role: str | None = Field(default=None, max_length=32)


class GlobalRoleIn(_Body):
    """Body of ``PUT /principals/{name}/global-role``: ``admin``, ``auditor`` or null (none)."""

    role: str | None = Field(max_length=32)


class TokenIn(_Body):
    """Body of ``POST /principals/{name}/tokens`` and ``POST /me/tokens``."""

    name: str = Field(default="", max_length=128)
    scopes: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=64)
    expires_in: str = Field(default="90d", max_length=32, description="a span (30d, 12h) or 'never'")


def _json(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> OrjsonResponse:
    return OrjsonResponse(content, status_code=status_code, headers=headers)


def _issued(token: IssuedToken) -> OrjsonResponse:
    return _json(token.to_json(), 201, _NO_STORE)


def _tokens(found: list[TokenInfo], identities: IdentityService) -> OrjsonResponse:
    now = identities.now()
    return _json({"tokens": [t.to_json(now) for t in found]})


def _acting(request: Request, identities: IdentityService) -> Identity:
    found = getattr(request.state, "identity", None)
    if isinstance(found, Identity):
        return found
    return current_identity(local_identity(identities.platform.local_actor))


# -- who am I, bootstrap ------------------------------------------------------------------------------


@router.get("/whoami", summary="The identity of this request", dependencies=_SIGNED_IN)
def whoami(request: Request, identities: Identities) -> OrjsonResponse:
    """Return the caller's name, kind, global roles, roles per project, the request's project and the
    permissions held there (narrowed by the token's scopes)."""
    identity = _acting(request, identities)
    project = identities.platform.project
    return _json({
        "name": identity.name, "kind": identity.kind, "global_roles": sorted(identity.global_roles),
        "projects": {name: sorted(roles) for name, roles in sorted(identity.project_roles.items())},
        "project": project, "permissions": sorted(identity.permissions_in(project)),
        "scopes": sorted(identity.scopes) if identity.scopes is not None else None,
        "token_id": identity.token_id,
    })  # fmt: skip


@router.post("/auth/bootstrap", status_code=201, summary="Make the first admin", dependencies=[public()])
def bootstrap(body: BootstrapIn, identities: Identities) -> OrjsonResponse:
    """Spend the server's one-time bootstrap token: create ``admin`` with the global ``admin`` role and
    return its first API token. 401 for a wrong or used token, or once an admin exists."""
    return _issued(identities.redeem_bootstrap(body.token, body.admin))


# -- projects ---------------------------------------------------------------------------------------------


@router.get("/projects", summary="List the projects you may read", dependencies=_SIGNED_IN)
def list_projects(request: Request, identities: Identities) -> OrjsonResponse:
    """Return ``{"projects": [...]}``: those the caller is a member of (every one, for a global role)."""
    found = identities.list_projects(_acting(request, identities))
    return _json({"projects": [p.to_json() for p in found]})


@router.post(
    "/projects", status_code=201, summary="Create a project", dependencies=[requires("projects:admin")]
)
def create_project(body: ProjectIn, identities: Identities) -> OrjsonResponse:
    """Create a project; a creator without a global role becomes its admin. 409 if the name is taken."""
    return _json(identities.create_project(body.name, body.description).to_json(), 201)


@router.get("/projects/{name}", summary="Get a project", dependencies=_SIGNED_IN)
def get_project(name: str, identities: Identities) -> OrjsonResponse:
    """Return the project; 404 if it does not exist or the caller may not read it."""
    return _json(identities.get_project(name).to_json())


@router.get("/projects/{name}/members", summary="List a project's members", dependencies=_SIGNED_IN)
def list_members(name: str, identities: Identities) -> OrjsonResponse:
    """Return ``{"members": [...]}`` with each member's roles, by name."""
    return _json({"members": [m.to_json() for m in identities.members(name)]})


@router.post(
    "/projects/{name}/members", status_code=201, summary="Give a principal a role", dependencies=_SIGNED_IN
)
def add_member(name: str, body: MemberIn, identities: Identities) -> OrjsonResponse:
    """Give ``principal`` ``role`` in the project (needs ``projects:admin`` there)."""
    return _json(identities.add_member(name, body.principal, body.role).to_json(), 201)


@router.delete(
    "/projects/{name}/members/{principal}", summary="Take a principal's roles away", dependencies=_SIGNED_IN
)
def remove_member(name: str, principal: str, identities: Identities, role: _Role = None) -> OrjsonResponse:
    """Take ``role`` (every role, if absent) in the project from ``principal``; 404 if it held none."""
    return _json({"removed": identities.remove_member(name, principal, role)})


# -- principals and their tokens ----------------------------------------------------------------------------


@router.get("/principals", summary="List users and service accounts", dependencies=_ADMIN)
def list_principals(
    identities: Identities,
    kind: Annotated[str | None, Query(max_length=16, description="user or service")] = None,
) -> OrjsonResponse:
    """Return ``{"principals": [...]}`` by name."""
    return _json({"principals": [p.to_json() for p in identities.list_principals(kind)]})


@router.post("/principals", status_code=201, summary="Create a user or service account", dependencies=_ADMIN)
def create_principal(body: PrincipalIn, identities: Identities) -> OrjsonResponse:
    """Create a principal; 409 if the name is taken."""
    if body.kind == "service":
        made = identities.create_service_account(body.name, body.display_name, body.global_role)
    else:
        made = identities.create_user(body.name, body.display_name, body.email, body.global_role)
    return _json(made.to_json(), 201)


@router.get("/principals/{name}", summary="Get a principal", dependencies=_ADMIN)
def get_principal(name: str, identities: Identities) -> OrjsonResponse:
    """Return the principal; 404 if there is none."""
    return _json(identities.get_principal(name).to_json())


@router.post("/principals/{name}/disable", summary="Disable a principal", dependencies=_ADMIN)
def disable_principal(name: str, identities: Identities) -> OrjsonResponse:
    """Disable the principal: its tokens stop authenticating. 409 if disabled already or the last admin."""
    return _json(identities.disable_principal(name).to_json())


@router.post("/principals/{name}/enable", summary="Enable a principal again", dependencies=_ADMIN)
def enable_principal(name: str, identities: Identities) -> OrjsonResponse:
    """Enable a disabled principal; 409 if it is not disabled."""
    return _json(identities.enable_principal(name).to_json())


@router.put("/principals/{name}/global-role", summary="Set a principal's global role", dependencies=_ADMIN)
def set_global_role(name: str, body: GlobalRoleIn, identities: Identities) -> OrjsonResponse:
    """Give the principal ``admin`` or ``auditor`` in every project, or no global role (null)."""
    return _json(identities.set_global_role(name, body.role).to_json())


@router.get("/principals/{name}/tokens", summary="List a principal's tokens", dependencies=_ADMIN)
def list_tokens(name: str, identities: Identities) -> OrjsonResponse:
    """Return ``{"tokens": [...]}``, oldest first, each with its ``status``; never a secret or hash."""
    return _tokens(identities.list_tokens(name), identities)


@router.post(
    "/principals/{name}/tokens", status_code=201, summary="Issue a token for a principal", dependencies=_ADMIN
)
def issue_token(name: str, body: TokenIn, identities: Identities) -> OrjsonResponse:
    """Issue a token; the answer carries its secret (``token``) this once."""
    lifetime = parse_lifetime(body.expires_in)
    return _issued(identities.issue_token(name, body.name, body.scopes, lifetime))


@router.delete("/tokens/{token_id}", summary="Revoke a token", dependencies=_ADMIN)
def revoke_token(token_id: str, identities: Identities) -> OrjsonResponse:
    """Revoke any principal's token; 409 if it is revoked already."""
    return _json(identities.revoke_token(token_id).to_json(identities.now()))


@router.get("/me/tokens", summary="List your own tokens", dependencies=_SIGNED_IN)
def list_own_tokens(identities: Identities) -> OrjsonResponse:
    """Return the caller's own tokens (as ``GET /principals/{name}/tokens``)."""
    return _tokens(identities.list_own_tokens(), identities)


@router.post("/me/tokens", status_code=201, summary="Issue yourself a token", dependencies=_SIGNED_IN)
def issue_own_token(body: TokenIn, identities: Identities) -> OrjsonResponse:
    """Issue the caller a token; a scoped token can only issue tokens within its scopes (403 otherwise)."""
    lifetime = parse_lifetime(body.expires_in)
    return _issued(identities.issue_own_token(body.name, body.scopes, lifetime))


@router.delete("/me/tokens/{token_id}", summary="Revoke one of your own tokens", dependencies=_SIGNED_IN)
def revoke_own_token(token_id: str, identities: Identities) -> OrjsonResponse:
    """Revoke one of the caller's own tokens; 404 for anyone else's."""
    return _json(identities.revoke_own_token(token_id).to_json(identities.now()))
