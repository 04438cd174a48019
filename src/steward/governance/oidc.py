"""Enterprise sign-in: the bearer JWTs of an OpenID Connect identity provider, verified.

When ``oidc_issuer`` is set, the API server accepts, next to its own ``stw_…`` tokens, the JWTs that
identity provider (Okta, Entra ID, Keycloak, Auth0, Google…) issues. ``OidcVerifier.verify`` checks a
token's signature against the provider's published keys (its JWKS), its issuer, its audience and its
times, and turns it into an ``Identity`` of kind ``oidc`` whose roles come from the provider's groups
through ``oidc_group_roles`` (``ml-team=churn:data-scientist;sec=*:auditor``).

Safety rules it keeps:

- Only asymmetric algorithms (RS*, PS*, ES*, EdDSA) from ``oidc_algorithms``: ``alg: none`` and HS*
  are refused, so a public key can never be used as an HMAC secret (key confusion). A key must suit
  the algorithm its token names, and RSA keys under 2048 bits are refused.
- ``exp``, ``iat``, ``iss`` and ``aud`` are required; ``nbf`` is checked when present; clocks may be
  ``oidc_leeway_seconds`` apart.
- Tokens larger than 16 KiB are refused unread. No error message contains the token.
- The keys are fetched on first use (over HTTPS, or HTTP for a local provider) with a timeout,
  cached, refreshed hourly, and refetched at most once per minute when a token names an unknown key
  id, so a stream of forged key ids cannot hammer the provider.

Every token failure raises ``Unauthenticated`` with ``details={"reason": ...}`` (``expired``,
``not_yet_valid``, ``audience``, ``issuer``, ``signature``, ``unknown_key``, ``algorithm``,
``malformed``, ``too_large``, ``missing_claim``, ``bad_key``, ``no_subject``). An identity provider that
cannot be reached, or publishes no usable keys, is ``ServiceUnavailable``: the caller's credential may
well be fine.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from steward.config import Settings
from steward.core.names import NAME_PATTERN
from steward.errors import InvalidInput, ServiceUnavailable, Unauthenticated
from steward.governance.context import Identity
from steward.governance.rbac import GLOBAL_ROLES, check_role

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 16 * 1024
"""The largest bearer JWT read at all."""
REFETCH_INTERVAL = 60.0
"""Seconds between two fetches of the provider's keys caused by unknown key ids."""
KEYS_MAX_AGE = 3600.0
"""Seconds after which the cached keys are refreshed (so a key the provider withdrew stops working)."""
FAILURE_BACKOFF = 5.0
"""Seconds during which, after a failed fetch and with no keys cached, no new fetch is tried."""
FETCH_TIMEOUT = 5.0
"""Seconds allowed to fetch the discovery document or the keys."""
MAX_DOCUMENT_BYTES = 1024 * 1024
"""The largest discovery document or key set read."""
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""The algorithms ``oidc_algorithms`` may name."""
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud")
"""Claims every token must carry."""
DISCOVERY_PATH = "/.well-known/openid-configuration"

_SEGMENT = r"[A-Za-z0-9_-]+={0,2}"
_JWT_SHAPE = re.compile(rf"^{_SEGMENT}\.{_SEGMENT}\.(?:{_SEGMENT})?$")
_SAFE_HEADER_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
_MAX_NAME_LENGTH = 256


def looks_like_jwt(credential: str) -> bool:
    """Whether ``credential`` has a JWT's shape: three base64url parts joined by ``.``.

    The API uses it to route a bearer credential to the OIDC verifier rather than to its own tokens.
    It checks the shape only; ``OidcVerifier.verify`` decides whether the token is any good. (The third
    part may be empty, as in an unsigned ``alg: none`` token, so that one is refused with its reason.)
    """
    return isinstance(credential, str) and bool(_JWT_SHAPE.match(credential))


@dataclass(frozen=True)
class RoleGrant:
    """One entry of ``oidc_group_roles``: members of ``group`` hold ``role`` in ``project``.

    Attributes:
        group: The identity provider's group, as its groups claim spells it.
        project: The project, or None for a global role (written ``*``).
        role: A Steward role (``steward.governance.rbac.ROLES``).
    """

    group: str
    project: str | None
    role: str


@dataclass(frozen=True)
class GroupRoles:
    """The mapping of identity-provider groups to Steward roles (``oidc_group_roles``, parsed)."""

    grants: tuple[RoleGrant, ...] = ()

    def roles_for(self, groups: Iterable[str]) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        """Return the global roles and the roles per project that members of ``groups`` hold.

        Groups the mapping does not name grant nothing.
        """
        member_of = set(groups)
        global_roles: set[str] = set()
        project_roles: dict[str, set[str]] = {}
        for grant in self.grants:
            if grant.group not in member_of:
                continue
            if grant.project is None:
                global_roles.add(grant.role)
            else:
                project_roles.setdefault(grant.project, set()).add(grant.role)
        return frozenset(global_roles), {p: frozenset(r) for p, r in project_roles.items()}


def _setting_error(setting: str, message: str, **details: Any) -> InvalidInput:
    return InvalidInput(f"invalid setting {setting}: {message}", {"field": setting, **details})


def parse_group_roles(text: str | None) -> GroupRoles:
    """Parse ``oidc_group_roles``: ``group=project:role`` entries separated by ``;``.

    ``project`` is a project name, or ``*`` for a role held in every project (only ``admin`` and
    ``auditor``, the global roles). A group may appear in several entries; blank entries are ignored.
    A group name may itself contain ``=`` (an LDAP DN such as ``cn=ml,ou=groups``): the entry splits
    at its last ``=``.

    Example: ``"ml-team=churn:data-scientist;ml-team=fraud:viewer;sec=*:auditor;platform=*:admin"``.

    Raises:
        InvalidInput: Naming the first bad entry and what is wrong with it.
    """
    grants: list[RoleGrant] = []
    for raw in (text or "").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        group, _, target = entry.rpartition("=")
        project, colon, role = target.partition(":")
        group, project, role = group.strip(), project.strip(), role.strip()

        def bad(message: str, entry: str = entry) -> InvalidInput:
            return _setting_error("oidc_group_roles", f"entry {entry!r} {message}", entry=entry)

        if not group or not colon or not project or not role:
            raise bad("is not 'group=project:role' (e.g. 'ml-team=churn:data-scientist')")
        if project != "*" and not NAME_PATTERN.match(project):
            raise bad(f"names {project!r}, which is neither '*' nor a project name")
        try:
            check_role(role)
        except InvalidInput as exc:
            raise bad(f"has an {exc.message}") from None
        if project == "*" and role not in GLOBAL_ROLES:
            raise bad(
                f"gives {role!r} in every project ('*'); only {', '.join(sorted(GLOBAL_ROLES))} "
                "may be global, so name the projects"
            )
        grants.append(RoleGrant(group, None if project == "*" else project, role))
    return GroupRoles(tuple(grants))


def parse_algorithms(text: str) -> tuple[str, ...]:
    """Parse ``oidc_algorithms`` (comma-separated), refusing ``none`` and every symmetric algorithm.

    Raises:
        InvalidInput: If it names none, or one that is not asymmetric.
    """
    names = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    for name in names:
        if name not in ASYMMETRIC_ALGORITHMS:
            why = (
                "HS* would let a public key serve as a shared secret" if name.upper().startswith("HS") else ""
            )
            raise _setting_error(
                "oidc_algorithms",
                f"{name!r} is not accepted{' (' + why + ')' if why else ''}; "
                f"choose from {', '.join(ASYMMETRIC_ALGORITHMS)}",
            )
    if not names:
        raise _setting_error("oidc_algorithms", "name at least one algorithm, e.g. 'RS256,ES256'")
    return names


def _check_url(value: str, setting: str) -> str:
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise _setting_error(setting, "the URL must not carry credentials")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _setting_error(setting, f"{value!r} is not an http(s):// URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        log.warning(
            "%s %s is plain HTTP: anyone on the network path could swap the signing keys", setting, value
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unauthenticated(message: str, reason: str) -> Unauthenticated:
    return Unauthenticated(message, {"reason": reason})


def _shown(value: object) -> str:
    """A header value fit to quote in a message (short and plain), else a placeholder."""
    return repr(value) if isinstance(value, str) and _SAFE_HEADER_VALUE.match(value) else "(unprintable)"


@dataclass
class _KeySet:
    """The provider's signing keys at one fetch, with the keys prepared for each algorithm."""

    keys: tuple[dict[str, Any], ...]
    fetched_at: float
    _prepared: dict[tuple[int, str], jwt.PyJWK] = field(default_factory=dict)

    def find(self, kid: str | None) -> int | None:
        """The index of the key ``kid`` names (or of the only key, for a token naming none)."""
        if kid is None:
            return 0 if len(self.keys) == 1 else None
        return next((i for i, key in enumerate(self.keys) if key.get("kid") == kid), None)

    def prepare(self, index: int, algorithm: str) -> jwt.PyJWK:
        """The key at ``index`` as a verifier for ``algorithm``.

        Raises:
            Unauthenticated: If that key does not suit the algorithm.
        """
        found = self._prepared.get((index, algorithm))
        if found is None:
            jwk = self.keys[index]
            if jwk.get("alg") not in (None, algorithm):
                raise _unauthenticated(
                    f"the token says {algorithm} but its key is for {_shown(jwk.get('alg'))}", "bad_key"
                )
            try:
                found = jwt.PyJWK(jwk, algorithm)
            except jwt.PyJWTError:
                raise _unauthenticated(f"the token's key is not a {algorithm} key", "bad_key") from None
            self._prepared[(index, algorithm)] = found
        return found


def _parse_key_set(document: dict[str, Any], url: str, now: float) -> _KeySet:
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ServiceUnavailable(f"the identity provider's key set at {url} has no 'keys' list")
    usable = tuple(
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("kty") in _KEY_TYPES  # never 'oct': a shared secret is not a published key
        and key.get("use") in (None, "sig")
        and isinstance(key.get("kid", ""), str)
    )
    if not usable:
        raise ServiceUnavailable(f"the identity provider's key set at {url} holds no usable signing key")
    return _KeySet(usable, now)


class _KeyCache:
    """The provider's keys: discovered, fetched on first use, cached, refetched with restraint."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None,
        *,
        timeout: float,
        refetch_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: _KeySet | None = None
        self._last_attempt = float("-inf")
        self._last_error: ServiceUnavailable | None = None

    def lookup(self, kid: str | None) -> tuple[_KeySet, int | None]:
        """Return the key set and the index of the key for ``kid`` (None if it holds none).

        Raises:
            ServiceUnavailable: If no keys are cached and the provider cannot be reached.
        """
        keys = self._keys  # the fast path: no lock while the cache answers
        if keys is not None and self._clock() - keys.fetched_at < KEYS_MAX_AGE:
            index = keys.find(kid)
            if index is not None:
                return keys, index
        with self._lock:
            now = self._clock()
            keys = self._keys
            if keys is not None:
                index = keys.find(kid)
                fresh = now - keys.fetched_at < KEYS_MAX_AGE
                if (fresh and index is not None) or now - self._last_attempt < self._refetch_interval:
                    return keys, index
            elif self._last_error is not None and now - self._last_attempt < FAILURE_BACKOFF:
                raise ServiceUnavailable(self._last_error.message, self._last_error.details)
            self._last_attempt = now
            try:
                self._keys = self._fetch(now)
                self._last_error = None
            except ServiceUnavailable as exc:
                self._last_error = exc
                if keys is None:
                    raise
                log.warning("keeping the cached OIDC signing keys: %s", exc.message)
                return keys, keys.find(kid)
            return self._keys, self._keys.find(kid)

    def _fetch(self, now: float) -> _KeySet:
        if self._jwks_url is None:
            self._jwks_url = self._discover()
        keys = _parse_key_set(self._get_json(self._jwks_url), self._jwks_url, now)
        log.info("fetched %d OIDC signing key(s) from %s", len(keys.keys), self._jwks_url)
        return keys

    def _discover(self) -> str:
        url = self._issuer.rstrip("/") + DISCOVERY_PATH
        document = self._get_json(url)
        if document.get("issuer") != self._issuer:
            raise ServiceUnavailable(
                f"the discovery document at {url} names another issuer than {self._issuer!r} "
                "(oidc_issuer must match the provider's 'issuer' exactly)"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https"):
            raise ServiceUnavailable(f"the discovery document at {url} has no http(s) 'jwks_uri'")
        return jwks_uri

    def _get_json(self, url: str) -> dict[str, Any]:
        body = bytearray()
        try:
            with httpx.stream("GET", url, timeout=self._timeout, headers={"Accept": "application/json"}) as r:
                if r.status_code != 200:
                    raise ServiceUnavailable(f"the identity provider answered HTTP {r.status_code} at {url}")
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise ServiceUnavailable(f"the identity provider's document at {url} exceeds 1 MiB")
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"could not reach the identity provider at {url} ({type(exc).__name__})"
            ) from None
        try:
            document = json.loads(body)
        except ValueError:
            raise ServiceUnavailable(f"the identity provider's document at {url} is not JSON") from None
        if not isinstance(document, dict):
            raise ServiceUnavailable(f"the identity provider's document at {url} is not a JSON object")
        return document


class OidcVerifier:
    """Verifies an OpenID Connect provider's bearer JWTs and says whose they are.

    A token whose groups map to no role still authenticates: its identity has no roles, so the API
    answers 403 (not 401) to everything but the routes any signed-in principal may call. That tells
    the user their sign-in worked and their groups are what to fix.

    Args:
        issuer: The provider, exactly as its tokens' ``iss`` spell it.
        audience: The ``aud`` a token must carry (this server's client id at the provider).
        jwks_url: The provider's key set; discovered from ``<issuer>/.well-known/openid-configuration``
            when None.
        group_roles: Steward roles per provider group.
        groups_claim: The claim listing the user's groups; a dotted path (``realm_access.roles``)
            reaches into nested objects when no claim has that exact name.
        username_claim: The claim naming the user; ``sub`` when the token lacks it.
        algorithms: The accepted algorithms (asymmetric ones, see ``parse_algorithms``).
        leeway_seconds: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        timeout: Seconds allowed for each fetch from the provider.
        refetch_interval: Least seconds between two fetches caused by unknown key ids.
        clock: Monotonic seconds (tests pass a fake one to skip ahead).
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        group_roles: GroupRoles | None = None,
        groups_claim: str = "groups",
        username_claim: str = "preferred_username",
        algorithms: Iterable[str] = ("RS256", "ES256"),
        leeway_seconds: float = 30,
        timeout: float = FETCH_TIMEOUT,
        refetch_interval: float = REFETCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.group_roles = group_roles or GroupRoles()
        self.groups_claim = groups_claim
        self.username_claim = username_claim
        self.algorithms = parse_algorithms(",".join(algorithms))
        self.leeway_seconds = leeway_seconds
        self._keys = _KeyCache(
            issuer, jwks_url, timeout=timeout, refetch_interval=refetch_interval, clock=clock
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        """Build the verifier the settings describe, or None when ``oidc_issuer`` is unset.

        Nothing is fetched yet: the provider's keys are fetched on the first token.

        Raises:
            InvalidInput: Naming the setting at fault (a bad URL, a missing audience, a symmetric
                algorithm, a bad ``oidc_group_roles`` entry).
        """
        issuer = (settings.oidc_issuer or "").strip()
        if not issuer:
            return None
        _check_url(issuer, "oidc_issuer")
        audience = (settings.oidc_audience or "").strip()
        if not audience:
            raise _setting_error(
                "oidc_audience",
                "set STEWARD_OIDC_AUDIENCE to the audience the provider puts in tokens for this server "
                "(usually its client id); without it, any token the provider issues would be accepted",
            )
        jwks_url = (settings.oidc_jwks_url or "").strip() or None
        if jwks_url is not None:
            _check_url(jwks_url, "oidc_jwks_url")
        for setting in ("oidc_groups_claim", "oidc_username_claim"):
            if not str(getattr(settings, setting)).strip():
                raise _setting_error(setting, "name a claim")
        return cls(
            issuer,
            audience,
            jwks_url=jwks_url,
            group_roles=parse_group_roles(settings.oidc_group_roles),
            groups_claim=settings.oidc_groups_claim.strip(),
            username_claim=settings.oidc_username_claim.strip(),
            algorithms=parse_algorithms(settings.oidc_algorithms),
            leeway_seconds=settings.oidc_leeway_seconds,
        )

    def verify(self, token: str) -> Identity:
        """Verify ``token`` and return its identity (kind ``oidc``, roles from its groups, no scopes).

        Raises:
            Unauthenticated: If the token is malformed, too large, unsigned or signed with a refused
                algorithm, signed by an unknown key or badly, expired, not yet valid, or for another
                issuer or audience; ``details["reason"]`` says which. The token is never quoted.
            ServiceUnavailable: If the provider's keys cannot be fetched and none are cached.
        """
        return self._identity(self._claims(token))

    def authenticate(self, credential: str) -> Identity:
        """The same as ``verify``, under the name ``IdentityService`` (the token verifier) uses."""
        return self.verify(credential)

    def _claims(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
            raise _unauthenticated(
                f"the bearer token is larger than {MAX_TOKEN_BYTES // 1024} KiB", "too_large"
            )
        if not looks_like_jwt(token):
            raise _unauthenticated(
                "the bearer token is not a JWT (three base64url parts joined by '.')", "malformed"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthenticated("the token's header is not base64url-encoded JSON", "malformed") from None
        algorithm = self._algorithm(header.get("alg"))
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _unauthenticated("the token's key id (kid) is not a string", "malformed")
        keys, index = self._keys.lookup(kid)
        if index is None:
            if kid is None:
                raise _unauthenticated(
                    f"the token names no key id (kid) and the provider publishes {len(keys.keys)} keys",
                    "unknown_key",
                )
            raise _unauthenticated(
                f"the token is signed with key {_shown(kid)}, which {self.issuer} does not publish",
                "unknown_key",
            )
        return self._decode(token, keys.prepare(index, algorithm), algorithm)

    def _algorithm(self, alg: object) -> str:
        if isinstance(alg, str) and alg in self.algorithms:
            return alg
        accepted = ", ".join(self.algorithms)
        if not isinstance(alg, str) or alg.lower() == "none":
            raise _unauthenticated(
                f"unsigned tokens are refused (accepted algorithms: {accepted})", "algorithm"
            )
        if alg.upper().startswith("HS"):
            raise _unauthenticated(
                f"tokens signed with a shared secret ({_shown(alg)}) are refused (accepted: {accepted})",
                "algorithm",
            )
        raise _unauthenticated(
            f"the algorithm {_shown(alg)} is not accepted (accepted: {accepted})", "algorithm"
        )

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the token has expired: sign in again", "expired") from None
        except jwt.ImmatureSignatureError:
            raise _unauthenticated(
                "the token is not valid yet (its nbf or iat is in the future; check the clocks)",
                "not_yet_valid",
            ) from None
        except jwt.InvalidAudienceError:
            message = f"the token is not meant for this server (audience {self.audience!r})"
            raise _unauthenticated(message, "audience") from None
        except jwt.InvalidIssuerError:
            raise _unauthenticated(f"the token was not issued by {self.issuer}", "issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthenticated(f"the token lacks the {exc.claim!r} claim", "missing_claim") from None
        except jwt.InvalidSignatureError:
            raise _unauthenticated("the token's signature does not verify", "signature") from None
        except jwt.InvalidKeyError:
            raise _unauthenticated(
                "the token's key is too weak (RSA keys need 2048 bits)", "bad_key"
            ) from None
        except jwt.PyJWTError:
            raise _unauthenticated(
                "the token is malformed (a claim has the wrong type)", "malformed"
            ) from None

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        global_roles, project_roles = self.group_roles.roles_for(self._groups(claims))
        return Identity(self._name(claims), "oidc", global_roles, project_roles, scopes=None)

    def _name(self, claims: Mapping[str, Any]) -> str:
        for claim in (self.username_claim, "sub"):
            value = claims.get(claim)
            if isinstance(value, str) and value.strip():
                name = value.strip()
                if len(name) > _MAX_NAME_LENGTH or any(unicodedata.category(c) == "Cc" for c in name):
                    raise _unauthenticated(f"the token's {claim!r} claim is not a usable name", "no_subject")
                return name
        raise _unauthenticated(
            f"the token names no user (no {self.username_claim!r} nor 'sub')", "no_subject"
        )

    def _groups(self, claims: Mapping[str, Any]) -> list[str]:
        value: Any = claims.get(self.groups_claim)
        if value is None and "." in self.groups_claim:
            value = claims
            for part in self.groups_claim.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(g, str) for g in value):
            return value
        raise _unauthenticated(f"the token's {self.groups_claim!r} claim is not a list of names", "malformed")
