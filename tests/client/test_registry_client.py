"""The remote registry: what its users rely on beyond the contract (digest checks, URL escaping, errors)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from steward.client.http import HttpClient
from steward.client.registry import RemoteRegistryService
from steward.config import load_settings
from steward.errors import IntegrityError, InvalidInput, NotFound, StewardError
from steward.registry.models import RegistryBackend
from steward.registry.service import RegistryService
from steward.store.platform import Platform


def offline(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteRegistryService:
    """A remote registry whose requests go to ``handler`` instead of the network."""
    return RemoteRegistryService(HttpClient("http://steward.test", transport=httpx.MockTransport(handler)))


def serving(data: bytes, digest: str | None) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"X-Steward-Digest": digest} if digest is not None else {}
    return lambda request: httpx.Response(200, content=data, headers=headers)


def test_read_file_returns_bytes_that_match_the_digest_header() -> None:
    registry = offline(serving(b"weights", hashlib.sha256(b"weights").hexdigest()))
    assert registry.read_file("churn", "1.0.0", "model.bin") == b"weights"


@pytest.mark.parametrize("digest", [hashlib.sha256(b"other").hexdigest(), None])
def test_read_file_refuses_bytes_that_do_not_match_the_digest_header(digest: str | None) -> None:
    registry = offline(serving(b"weights", digest))
    with pytest.raises(IntegrityError) as info:
        registry.read_file("churn", "1.0.0", "model.bin")
    assert info.value.details["actual"] == hashlib.sha256(b"weights").hexdigest()


def test_path_parts_are_escaped_so_nothing_is_rerouted() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"models": []})

    registry = offline(handler)
    registry.dataset_lineage("folder/../ds-1")
    with pytest.raises(IntegrityError):  # the handler sends no digest
        registry.read_file("churn", "1.0.0", "weights/../layer 1.bin", fmt="onnx")
    assert seen == [
        "/api/v1/lineage/datasets/folder%2F%2E%2E%2Fds-1",
        "/api/v1/models/churn/versions/1%2E0%2E0/files/weights/%2E%2E/layer%201%2Ebin?format=onnx",
    ]


def test_names_that_would_reroute_a_request_are_refused_before_sending() -> None:
    registry = offline(lambda request: pytest.fail(f"sent {request.url}"))
    for call in (
        lambda: registry.get_model("churn/versions"),
        lambda: registry.get_version("churn", "1.0.0/lineage"),
        lambda: registry.set_alias("churn", "a/b", "1.0.0"),
        lambda: registry.add_format("churn", "1.0.0", "onnx/x", "onnx", {}, []),
    ):
        with pytest.raises(InvalidInput):
            call()
    with pytest.raises(NotFound):
        registry.delete_alias("churn", "a/b")
    assert registry.dataset_lineage("") == []


class _StreamCheckingTransport(httpx.BaseTransport):
    """Answers an upload like the server, after checking its body arrives as a stream, not as bytes."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert not isinstance(request.stream, httpx.ByteStream)  # read from the file as it is sent
        assert request.url.params["path"] == "nested/model.bin"
        assert request.headers["content-type"] == "application/octet-stream"
        body = request.read()
        digest = hashlib.sha256(body).hexdigest()
        return httpx.Response(201, json={"path": "nested/model.bin", "digest": digest, "size": len(body)})


def test_upload_streams_the_file(tmp_path: Path) -> None:
    local = tmp_path / "model.bin"
    local.write_bytes(b"weights" * 1000)
    registry = RemoteRegistryService(HttpClient("http://steward.test", transport=_StreamCheckingTransport()))
    stored = registry.upload_file("churn", local, "nested/model.bin")
    assert stored.size == 7000 and stored.digest == hashlib.sha256(b"weights" * 1000).hexdigest()


@pytest.fixture
def remote(steward_server: str) -> Iterator[RemoteRegistryService]:
    """The remote registry on a fresh test server."""
    with HttpClient(steward_server) as http:
        yield RemoteRegistryService(http)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[RegistryService]:
    """The embedded registry on its own home, to compare errors with."""
    platform = Platform.from_settings(load_settings(home=tmp_path / "embedded-home"))
    yield RegistryService(platform)
    platform.close()


def test_server_errors_are_raised_as_the_same_class_message_and_details(
    remote: RemoteRegistryService, embedded: RegistryService
) -> None:
    cases: list[Callable[[RegistryBackend], object]] = [
        lambda r: r.get_model("nope"),
        lambda r: r.get_version("nope", "1.0.0"),
        lambda r: r.resolve("models:/a/b/c"),
        lambda r: r.set_alias("nope", "latest", "1.0.0"),
        lambda r: r.get_card("nope", "1.0.0", "pdf"),
        lambda r: r.alias_history("nope"),
    ]
    for case in cases:
        with pytest.raises(StewardError) as local:
            case(embedded)
        with pytest.raises(StewardError) as over_http:
            case(remote)
        assert type(over_http.value) is type(local.value)
        assert (over_http.value.message, over_http.value.details) == (
            local.value.message,
            local.value.details,
        )
