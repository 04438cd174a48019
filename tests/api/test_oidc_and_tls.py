"""The server end to end with an enterprise identity provider's JWTs, and over TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from steward.api.app import create_app
from steward.api.identity import identity_service_of
from steward.config import load_settings
from tests.governance.test_oidc import AUDIENCE, MAPPING, Provider, provider
from tests.plugins.server import running_server

__all__ = ["provider"]  # the identity provider fixture, served on 127.0.0.1


@pytest.fixture
def oidc_server(provider: Provider, tmp_path: Path) -> Iterator[str]:
    settings = load_settings(
        home=tmp_path / "home", auth=True, oidc_issuer=provider.issuer, oidc_audience=AUDIENCE,
        oidc_jwks_url=provider.jwks_url, oidc_group_roles=MAPPING,
    )  # fmt: skip
    app = create_app(settings)
    identity_service_of(app.state).create_user("root", global_role="admin")  # bootstrap done
    with running_server(app) as url:
        yield f"{url}/api/v1"


def _get(url: str, token: str, project: str = "churn", method: str = "GET", **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Steward-Project": project}
    return httpx.request(method, url, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


def test_a_providers_jwt_acts_with_the_roles_its_groups_map_to(oidc_server: str, provider: Provider) -> None:
    token = provider.token(groups=["ml-team"])
    made = _get(f"{oidc_server}/experiments", token, method="POST", json={"name": "from-okta"})
    assert made.status_code == 201, made.text
    assert _get(f"{oidc_server}/experiments", token, project="fraud").status_code == 200  # viewer there
    refused = _get(f"{oidc_server}/experiments", token, project="fraud", method="POST", json={"name": "x"})
    assert refused.status_code == 403
    assert _get(f"{oidc_server}/whoami", token).json()["name"] == "ada"
    auditor = provider.token(groups=["sec"], preferred_username="sam")
    entries = _get(f"{oidc_server}/audit", auditor, params={"action": "experiment.create"}).json()["entries"]
    assert [(e["actor"], e["resource_id"]) for e in entries] == [("ada", "from-okta")]


def test_a_jwt_with_unmapped_groups_is_403_and_bad_jwts_are_401(oidc_server: str, provider: Provider) -> None:
    assert _get(f"{oidc_server}/experiments", provider.token(groups=["nobody"])).status_code == 403
    for token in (
        provider.token(exp=int(time.time()) - 3600),
        provider.token(aud="another-app"),
        provider.token(iss="https://evil.example"),
        provider.token()[:-4] + "AAAA",
    ):
        response = _get(f"{oidc_server}/experiments", token)
        assert response.status_code == 401, response.text
        assert token[-20:] not in response.text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_server_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    app = create_app(load_settings(home=tmp_path / "home"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", ws="none", ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = httpx.get(
            f"https://127.0.0.1:{port}/api/v1/health",
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=10,
        )
        assert answer.json()["status"] == "ok"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).raise_for_status()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
