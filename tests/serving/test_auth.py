"""``steward serve --auth``: model routes need ``serving:predict`` in the endpoint's project; health,
server metadata and ``/metrics`` stay public; refusals are audited."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from steward.cli.serve import AUTHORISER
from steward.governance import audit
from steward.governance.identity import IdentityService
from steward.store.platform import Platform
from tests.serving.conftest import Models, make_app, serving


@pytest.fixture(scope="module")
def server(models: Models) -> Iterator[tuple[str, dict[str, str]]]:
    platform = Platform.from_settings(models.settings)
    identities = IdentityService(platform)
    identities.create_user("serving-root", global_role="admin")
    identities.ensure_project("default")
    identities.create_project("elsewhere")
    tokens = {}
    for name, project, role in [("scientist", "default", "data-scientist"), ("reader", "default", "viewer"),
                                ("outsider", "elsewhere", "ml-engineer")]:  # fmt: skip
        identities.create_user(name)
        identities.add_member(project, name, role)
        tokens[name] = identities.issue_token(name).secret
    app = make_app(models, references=("bc@production",), authoriser=AUTHORISER)
    with serving(app) as url:
        yield url, tokens
    platform.close()


def _predict(url: str, models: Models, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/predict/bc", json={"records": models.records([0])}, headers=headers, timeout=30)


def test_a_token_with_serving_predict_is_served(server: tuple[str, dict[str, str]], models: Models) -> None:
    url, tokens = server
    for _ in range(3):  # the second and third use the remembered identity
        assert _predict(url, models, tokens["scientist"]).status_code == 200
    infer = httpx.get(f"{url}/v2/models/bc", headers={"Authorization": f"Bearer {tokens['scientist']}"})
    assert infer.status_code == 200


def test_missing_bad_or_insufficient_credentials_are_refused(
    server: tuple[str, dict[str, str]], models: Models
) -> None:
    url, tokens = server
    assert _predict(url, models, None).status_code == 401
    assert _predict(url, models, "stw_not-a-real-token").status_code == 401
    refused = _predict(url, models, tokens["reader"])
    assert refused.status_code == 403 and "serving:predict" in refused.json()["error"]["message"]
    assert _predict(url, models, tokens["outsider"]).status_code == 403  # another project's member
    assert httpx.get(f"{url}/v2/models/bc", timeout=30).status_code == 401


def test_probes_and_metrics_need_no_token(server: tuple[str, dict[str, str]]) -> None:
    url, _ = server
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/bc/ready", "/metrics"):
        assert httpx.get(f"{url}{path}", timeout=30).status_code == 200, path


def test_refusals_are_audited(server: tuple[str, dict[str, str]], models: Models) -> None:
    url, tokens = server
    answer = _predict(url, models, tokens["reader"])
    platform = Platform.from_settings(models.settings)
    with platform.metadata.read() as conn:
        entries = audit.entries(conn, action="api.refused", project="default")
    platform.close()
    mine = [e for e in entries if e.request_id == answer.headers["x-request-id"]]
    assert mine and mine[0].actor == "reader" and mine[0].outcome == "denied"
