"""OIDC bearer JWTs: verified against a real (local) identity provider's keys, or refused with a reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from steward.config import load_settings
from steward.errors import InvalidInput, ServiceUnavailable, Unauthenticated
from steward.governance.oidc import (
    MAX_TOKEN_BYTES,
    GroupRoles,
    OidcVerifier,
    RoleGrant,
    looks_like_jwt,
    parse_group_roles,
)

AUDIENCE = "steward-api"
MAPPING = "ml-team=churn:data-scientist;ml-team=fraud:viewer;sec=*:auditor;platform=*:admin"

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())
_ROGUE = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class Provider:
    """A tiny identity provider: serves a discovery document and a JWKS, counting the requests."""

    url: str = ""
    jwks: dict[str, Any] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    discovery_issuer: str | None = None

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return self.url + "/keys"

    def token(
        self, private: Any = _RSA, *, kid: str | None = "rsa-1", alg: str = "RS256", **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": AUDIENCE, "iat": now, "exp": now + 300, "sub": "u-42"}
        payload |= {"preferred_username": "ada", "groups": ["ml-team", "sec"]}
        payload |= claims
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(payload, private, algorithm=alg, headers=headers)


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider(jwks={"keys": [_jwk(_RSA, "rsa-1", "RS256"), _jwk(_EC, "ec-1", "ES256")]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] += 1
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": state.discovery_issuer or state.issuer, "jwks_uri": state.jwks_url}
            elif self.path == "/keys":
                body = state.jwks
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(provider: Provider, clock: Clock) -> OidcVerifier:
    return OidcVerifier(
        provider.issuer,
        AUDIENCE,
        jwks_url=provider.jwks_url,
        group_roles=parse_group_roles(MAPPING),
        timeout=2.0,
        clock=clock,
    )


def _refused(verifier: OidcVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    error = caught.value
    if token:
        assert token not in error.message and token not in str(error.details)
    for part in token.split("."):
        assert len(part) < 8 or part not in error.message  # no piece of the token is quoted either
    return error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(("private", "kid", "alg"), [(_RSA, "rsa-1", "RS256"), (_EC, "ec-1", "ES256")])
def test_valid_tokens_give_an_oidc_identity_with_the_mapped_roles(
    provider: Provider, verifier: OidcVerifier, private: Any, kid: str, alg: str
) -> None:
    identity = verifier.verify(provider.token(private, kid=kid, alg=alg))

    assert identity.name == "ada" and identity.kind == "oidc" and identity.scopes is None
    assert identity.global_roles == {"auditor"}
    assert dict(identity.project_roles) == {"churn": {"data-scientist"}, "fraud": {"viewer"}}
    assert identity.can("models:write", "churn") and not identity.can("models:write", "fraud")
    assert identity.can("audit:read", "anything")
    assert verifier.authenticate(provider.token(private, kid=kid, alg=alg)) == identity


def test_the_keys_are_fetched_once_and_cached(provider: Provider, verifier: OidcVerifier) -> None:
    for _ in range(3):
        verifier.verify(provider.token())
    verifier.verify(provider.token(_EC, kid="ec-1", alg="ES256"))

    assert provider.hits["/keys"] == 1


def test_requests_racing_on_a_cold_cache_fetch_the_keys_once(
    provider: Provider, verifier: OidcVerifier
) -> None:
    tokens = [provider.token() for _ in range(8)]
    names: list[str] = []
    threads = [threading.Thread(target=lambda t=t: names.append(verifier.verify(t).name)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert names == ["ada"] * 8 and provider.hits["/keys"] == 1


def test_the_username_falls_back_to_sub(provider: Provider, verifier: OidcVerifier) -> None:
    assert verifier.verify(provider.token(preferred_username=None)).name == "u-42"


def test_a_token_without_a_user_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    assert (
        _refused(verifier, provider.token(preferred_username=None, sub=None)).details["reason"]
        == "no_subject"
    )


def test_groups_that_map_to_nothing_authenticate_with_no_roles(
    provider: Provider, verifier: OidcVerifier
) -> None:
    identity = verifier.verify(provider.token(groups=["marketing"]))
    bare = verifier.verify(provider.token(groups=None))

    for who in (identity, bare):
        assert who.name == "ada" and who.global_roles == frozenset() and dict(who.project_roles) == {}
        assert not who.is_member("churn") and not who.can("models:read", "churn")


def test_a_nested_groups_claim_is_reached_by_a_dotted_path(provider: Provider) -> None:
    verifier = OidcVerifier(
        provider.issuer,
        AUDIENCE,
        jwks_url=provider.jwks_url,
        group_roles=parse_group_roles("platform=*:admin"),
        groups_claim="realm_access.roles",
    )

    identity = verifier.verify(provider.token(groups=None, realm_access={"roles": ["platform"]}))

    assert identity.global_roles == {"admin"}


def test_a_groups_claim_of_the_wrong_type_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    assert _refused(verifier, provider.token(groups={"ml-team": True})).details["reason"] == "malformed"


def test_an_expired_token_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    now = int(time.time())
    error = _refused(verifier, provider.token(iat=now - 600, exp=now - 60))

    assert error.details["reason"] == "expired" and "expired" in error.message


def test_clock_skew_within_the_leeway_is_tolerated(provider: Provider, verifier: OidcVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(provider.token(iat=now - 600, exp=now - 10)).name == "ada"
    assert verifier.verify(provider.token(nbf=now + 10, iat=now + 10)).name == "ada"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_not_valid_yet_is_refused(provider: Provider, verifier: OidcVerifier, claim: str) -> None:
    claims: dict[str, Any] = {claim: int(time.time()) + 3600}
    error = _refused(verifier, provider.token(**claims))

    assert error.details["reason"] == "not_yet_valid" and "not valid yet" in error.message


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud"])
def test_a_token_lacking_a_required_claim_is_refused(
    provider: Provider, verifier: OidcVerifier, claim: str
) -> None:
    claims: dict[str, Any] = {claim: None}
    error = _refused(verifier, provider.token(**claims))

    assert error.details["reason"] == "missing_claim" and repr(claim) in error.message


def test_a_token_for_another_audience_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    error = _refused(verifier, provider.token(aud="some-other-app"))

    assert error.details["reason"] == "audience" and AUDIENCE in error.message
    assert verifier.verify(provider.token(aud=["some-other-app", AUDIENCE])).name == "ada"


def test_a_token_from_another_issuer_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    error = _refused(verifier, provider.token(iss="https://evil.example.com"))

    assert error.details["reason"] == "issuer" and provider.issuer in error.message


def test_a_signature_by_a_key_outside_the_jwks_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    error = _refused(verifier, provider.token(_ROGUE, kid="rsa-1"))

    assert error.details["reason"] == "signature"


def test_a_tampered_payload_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    header, payload, signature = provider.token(groups=["ml-team"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = _b64(json.dumps(claims | {"groups": ["platform"]}).encode())

    assert _refused(verifier, f"{header}.{forged}.{signature}").details["reason"] == "signature"


def test_an_unsigned_token_is_refused(provider: Provider, verifier: OidcVerifier) -> None:
    token = jwt.encode(
        {"iss": provider.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60, "iat": int(time.time())},
        "",
        algorithm="none",
        headers={"kid": "rsa-1"},
    )
    assert looks_like_jwt(token)

    error = _refused(verifier, token)

    assert error.details["reason"] == "algorithm" and "unsigned" in error.message


def test_an_hs256_token_keyed_with_the_public_key_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    # Key confusion: a verifier that let the token pick HS256 would check it with the public key as secret.
    public_pem = _RSA.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "iat": now, "exp": now + 60, "groups": ["platform"]}
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'}).encode())}." + _b64(
        json.dumps(claims).encode()
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"

    error = _refused(verifier, token)

    assert error.details["reason"] == "algorithm" and "shared secret" in error.message


def test_a_token_naming_an_algorithm_its_key_is_not_for_is_refused(
    provider: Provider, verifier: OidcVerifier
) -> None:
    # An EC-signed token pointing at the RSA key: refused before any signature check.
    error = _refused(verifier, provider.token(_EC, kid="rsa-1", alg="ES256"))

    assert error.details["reason"] == "bad_key"


def test_an_algorithm_outside_the_settings_is_refused(provider: Provider) -> None:
    verifier = OidcVerifier(provider.issuer, AUDIENCE, jwks_url=provider.jwks_url, algorithms=["RS256"])

    error = _refused(verifier, provider.token(_EC, kid="ec-1", alg="ES256"))

    assert error.details["reason"] == "algorithm" and "RS256" in error.message
    assert provider.hits["/keys"] == 0  # refused before any key was needed


def test_an_unknown_key_id_triggers_one_rate_limited_refetch(
    provider: Provider, verifier: OidcVerifier, clock: Clock
) -> None:
    verifier.verify(provider.token())
    assert provider.hits["/keys"] == 1
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.jwks = {"keys": [*provider.jwks["keys"], _jwk(rotated, "rsa-2", "RS256")]}
    fresh_token = provider.token(rotated, kid="rsa-2")

    clock.now += 30  # within a minute of the last fetch: no refetch, the new key is not known yet
    assert _refused(verifier, fresh_token).details["reason"] == "unknown_key"
    assert provider.hits["/keys"] == 1

    clock.now += 31
    assert verifier.verify(fresh_token).name == "ada"  # one refetch found the new key
    assert provider.hits["/keys"] == 2

    for _ in range(5):  # a flood of made-up key ids costs the provider nothing
        error = _refused(verifier, provider.token(rotated, kid="no-such-key"))
        assert error.details["reason"] == "unknown_key" and "'no-such-key'" in error.message
    assert provider.hits["/keys"] == 2

    clock.now += 61
    _refused(verifier, provider.token(rotated, kid="no-such-key"))
    assert provider.hits["/keys"] == 3


def test_keys_are_refreshed_hourly_so_a_withdrawn_key_stops_working(
    provider: Provider, verifier: OidcVerifier, clock: Clock
) -> None:
    verifier.verify(provider.token())
    provider.jwks = {"keys": [_jwk(_EC, "ec-1", "ES256")]}  # the provider withdraws rsa-1

    clock.now += 3601

    assert _refused(verifier, provider.token()).details["reason"] == "unknown_key"
    assert provider.hits["/keys"] == 2


def test_a_token_without_a_kid_uses_the_only_key(provider: Provider, clock: Clock) -> None:
    provider.jwks = {"keys": [_jwk(_RSA, "rsa-1", "RS256")]}
    verifier = OidcVerifier(provider.issuer, AUDIENCE, jwks_url=provider.jwks_url, clock=clock)

    assert verifier.verify(provider.token(kid=None)).name == "ada"

    provider.jwks = {"keys": [_jwk(_RSA, "rsa-1", "RS256"), _jwk(_EC, "ec-1", "ES256")]}
    clock.now += 3601
    assert _refused(verifier, provider.token(kid=None)).details["reason"] == "unknown_key"


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "stw_0123456789abcdef",
        "one.two",
        "a.b.c.d",
        "not base64!.eyJ9.sig",
        _b64(b"not json") + "." + _b64(b"{}") + ".c2ln",
        _b64(b'["a list"]') + "." + _b64(b"{}") + ".c2ln",
    ],
)
def test_malformed_credentials_are_refused(
    provider: Provider, verifier: OidcVerifier, credential: str
) -> None:
    error = _refused(verifier, credential)

    assert error.details["reason"] == "malformed"
    assert provider.hits["/keys"] == 0


def test_a_signed_token_with_a_claim_of_the_wrong_type_is_malformed(
    provider: Provider, verifier: OidcVerifier
) -> None:
    assert _refused(verifier, provider.token(exp="tomorrow")).details["reason"] == "malformed"


def test_an_oversized_token_is_refused_unread(provider: Provider, verifier: OidcVerifier) -> None:
    token = provider.token(groups=[f"group-{i:05d}" for i in range(1500)])
    assert len(token) > MAX_TOKEN_BYTES

    error = _refused(verifier, token)

    assert error.details["reason"] == "too_large" and "16 KiB" in error.message
    assert provider.hits["/keys"] == 0


def test_looks_like_jwt_tells_jwts_from_api_tokens(provider: Provider) -> None:
    assert looks_like_jwt(provider.token())
    assert not looks_like_jwt("stw_abcdef0123456789")
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
    assert not looks_like_jwt("a b.c.d")


def test_the_keys_are_discovered_from_the_well_known_document(provider: Provider) -> None:
    verifier = OidcVerifier(provider.issuer, AUDIENCE)

    assert verifier.verify(provider.token()).name == "ada"
    assert verifier.verify(provider.token()).name == "ada"

    assert provider.hits["/.well-known/openid-configuration"] == 1 and provider.hits["/keys"] == 1


def test_a_discovery_document_for_another_issuer_is_not_trusted(provider: Provider) -> None:
    provider.discovery_issuer = "https://evil.example.com"
    verifier = OidcVerifier(provider.issuer, AUDIENCE)

    with pytest.raises(ServiceUnavailable, match="another issuer"):
        verifier.verify(provider.token())
    assert provider.hits["/keys"] == 0


def test_an_unreachable_provider_is_unavailable_not_a_bad_token(provider: Provider, clock: Clock) -> None:
    verifier = OidcVerifier(
        provider.issuer, AUDIENCE, jwks_url=provider.url + "/missing", timeout=2.0, clock=clock
    )

    with pytest.raises(ServiceUnavailable, match="HTTP 404"):
        verifier.verify(provider.token())
    with pytest.raises(ServiceUnavailable):  # retried only after a short back-off
        verifier.verify(provider.token())
    assert provider.hits["/missing"] == 1

    clock.now += 6
    with pytest.raises(ServiceUnavailable):
        verifier.verify(provider.token())
    assert provider.hits["/missing"] == 2


def test_cached_keys_outlive_a_provider_outage(
    provider: Provider, verifier: OidcVerifier, clock: Clock
) -> None:
    verifier.verify(provider.token())
    provider.jwks = {"keys": "not a list"}  # the provider breaks
    clock.now += 3601

    assert verifier.verify(provider.token()).name == "ada"


def test_group_roles_parse_with_global_roles_dn_groups_and_blank_entries() -> None:
    mapping = parse_group_roles(" cn=ml,ou=groups = churn:ml-engineer ;; sec=*:auditor; ")

    assert mapping == GroupRoles(
        (RoleGrant("cn=ml,ou=groups", "churn", "ml-engineer"), RoleGrant("sec", None, "auditor"))
    )
    assert parse_group_roles(None) == GroupRoles() == parse_group_roles("")


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("ml-team", "group=project:role"),
        ("ml-team=churn", "group=project:role"),
        ("=churn:viewer", "group=project:role"),
        ("ml-team=churn:", "group=project:role"),
        ("ml-team=churn:wizard", "unknown role 'wizard'"),
        ("ml-team=*:data-scientist", "only admin, auditor may be global"),
        ("ml-team=no such project:viewer", "neither '*' nor a project name"),
    ],
)
def test_a_malformed_group_mapping_names_the_bad_entry(entry: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_group_roles(f"sec=*:auditor;{entry};platform=*:admin")

    assert caught.value.details["field"] == "oidc_group_roles"
    assert repr(entry) in caught.value.message and says in caught.value.message


def test_no_issuer_means_no_verifier(tmp_path: Path) -> None:
    assert OidcVerifier.from_settings(load_settings(home=tmp_path)) is None


def test_the_verifier_is_built_from_steward_settings(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("STEWARD_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("STEWARD_OIDC_GROUP_ROLES", "ml-team=churn:viewer")
    monkeypatch.setenv("STEWARD_OIDC_USERNAME_CLAIM", "email")
    monkeypatch.setenv("STEWARD_OIDC_ALGORITHMS", "RS256")
    verifier = OidcVerifier.from_settings(load_settings(home=tmp_path))
    assert verifier is not None

    identity = verifier.verify(provider.token(email="ada@example.com"))

    assert identity.name == "ada@example.com" and dict(identity.project_roles) == {"churn": {"viewer"}}
    assert provider.hits["/.well-known/openid-configuration"] == 1
    assert _refused(verifier, provider.token(_EC, kid="ec-1", alg="ES256")).details["reason"] == "algorithm"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"oidc_audience": None}, "oidc_audience"),
        ({"oidc_issuer": "ftp://idp.example.com"}, "oidc_issuer"),
        ({"oidc_issuer": "https://user:secret@idp.example.com"}, "oidc_issuer"),
        ({"oidc_jwks_url": "ftp://user:secret@idp.example.com/keys"}, "oidc_jwks_url"),
        ({"oidc_jwks_url": "keys.json"}, "oidc_jwks_url"),
        ({"oidc_algorithms": "RS256,HS256"}, "oidc_algorithms"),
        ({"oidc_algorithms": "none"}, "oidc_algorithms"),
        ({"oidc_algorithms": " , "}, "oidc_algorithms"),
        ({"oidc_group_roles": "ml-team=*:viewer"}, "oidc_group_roles"),
        ({"oidc_leeway_seconds": -1}, "oidc_leeway_seconds"),
    ],
)
def test_bad_oidc_settings_are_refused_naming_the_setting(
    tmp_path: Path, settings: dict[str, Any], field: str
) -> None:
    values = {"oidc_issuer": "https://idp.example.com", "oidc_audience": AUDIENCE} | settings
    overrides = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(InvalidInput) as caught:
        OidcVerifier.from_settings(load_settings(home=tmp_path, **overrides))

    assert caught.value.details["field"] == field and field in caught.value.message
    assert "user:secret" not in caught.value.message
