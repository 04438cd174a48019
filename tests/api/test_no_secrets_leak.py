"""No secret shows in logs, error bodies, audit entries or API answers.

The secrets: API tokens (shown once, in the answer that issues them, and nowhere after), the bootstrap
token, the encryption key, the pseudonymisation secret and the platform's private signing key. A server
with auth on is driven through the identity, tracking, registry and audit routes (including failures),
with every logger at DEBUG; then every answer, every log record and the exported audit trail are
searched for each secret, and the database file for the token secrets.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest

from steward.api.app import create_app
from steward.api.identity import identity_service_of
from steward.config import load_settings
from steward.governance.audit import AuditService
from tests.plugins.server import running_server


def test_secrets_never_leave_where_they_belong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    encryption_key = os.urandom(32).hex()
    privacy_secret = "pseudonymise-with-this-" + os.urandom(8).hex()
    monkeypatch.setenv("STEWARD_ENCRYPTION_KEY", encryption_key)
    monkeypatch.setenv("STEWARD_PRIVACY_SECRET", privacy_secret)
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "home"
    settings = load_settings(home=home, auth=True, audit_checkpoint_every=3)
    app = create_app(settings)
    identities = identity_service_of(app.state)
    bootstrap = identities.start_bootstrap()
    assert bootstrap is not None
    answers: list[str] = []
    issued: list[str] = []
    with running_server(app) as url:
        api = f"{url}/api/v1"
        first = httpx.post(f"{api}/auth/bootstrap", json={"token": bootstrap, "admin": "root"})
        assert first.status_code == 201, first.text
        root = first.json()["token"]
        issued.append(root)
        again = httpx.post(f"{api}/auth/bootstrap", json={"token": bootstrap, "admin": "mallory"})
        answers.append(again.text)
        assert again.status_code == 401
        auth = {"Authorization": f"Bearer {root}"}
        with httpx.Client(base_url=api, headers=auth, timeout=30) as client:
            answers.append(client.post("/principals", json={"name": "svc", "kind": "service"}).text)
            made = client.post("/principals/svc/tokens", json={"name": "ci"})
            assert made.status_code == 201, made.text
            issued.append(made.json()["token"])
            for path in ("/whoami", "/principals", "/principals/svc/tokens", "/me/tokens", "/audit"):
                answers.append(client.get(path).text)
            answers.append(client.post("/experiments", json={"name": "exp"}).text)
            uploaded = client.post("/models/m/files", params={"path": "model.bin"}, content=b"w")
            answers.append(uploaded.text)
            registered = client.post(
                "/models/m/versions", json={"flavor": "sklearn", "files": [uploaded.json()]}
            )
            assert registered.status_code == 201, registered.text  # signed with the platform key
            answers.append(registered.text)
            answers.append(client.get("/models/m/versions/1.0.0/verify").text)
            answers.append(client.get("/runs/no-such-run").text)
            answers.append(
                client.post("/runs/search", json={"experiments": ["exp"], "filter": "bad ((("}).text
            )
            token_id = made.json()["id"]
            answers.append(client.delete(f"/tokens/{token_id}").text)
        for secret in (issued[1], root[:-2] + "xx", "stw_" + "B" * 43):
            answers.append(httpx.get(f"{api}/whoami", headers={"Authorization": f"Bearer {secret}"}).text)
    platform = app.state.platform
    trail = "\n".join(str(record) for record in AuditService(platform).export())
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    signing_key = (home / "keys" / "signing.key").read_text()
    private_lines = "".join(line for line in signing_key.splitlines() if "-----" not in line)
    secrets = {
        "bootstrap token": bootstrap,
        "encryption key": encryption_key,
        "privacy secret": privacy_secret,
        "signing key": private_lines,
        **{f"api token {i}": token for i, token in enumerate(issued)},
    }
    places = {"API answers": "\n".join(answers), "logs": logs, "audit trail": trail}
    found = [
        (name, place) for name, secret in secrets.items() for place, text in places.items() if secret in text
    ]
    assert found == []
    database = (home / "steward.db").read_bytes()
    assert not [t for t in [bootstrap, *issued] if t.encode() in database]
    assert len(trail) > 1000 and "principal" in trail  # the trail was there to search
