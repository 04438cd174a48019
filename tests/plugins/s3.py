"""S3 for tests: one moto server per test session (per xdist worker), a fresh bucket per test."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.services import service_unavailable

_START_TIMEOUT = 30.0
_FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@dataclass(frozen=True)
class S3Artifacts:
    """Where a test's artifacts go on the moto server.

    Attributes:
        url: ``s3://<fresh bucket>/prefix``.
        endpoint_url: The moto server, ``http://127.0.0.1:<port>``.
    """

    url: str
    endpoint_url: str

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options reaching the bucket (credentials come from the session's AWS variables)."""
        return {"endpoint_url": self.endpoint_url}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1, with dummy AWS credentials set for the session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        service_unavailable("s3", f"moto is not installed ({exc}): pip install 'moto[server]'")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        # Nothing from the machine's AWS set-up may reach the tests: no profile, token or region.
        for name in _FOREIGN_AWS_VARIABLES:
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        # start() waits without a timeout for a server thread that may never come up.
        starter = threading.Thread(target=server.start, daemon=True)
        starter.start()
        starter.join(_START_TIMEOUT)
        if starter.is_alive():
            service_unavailable("s3", f"moto's server did not start within {_START_TIMEOUT:.0f} s")
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def _s3_admin(s3_endpoint: str) -> Any:
    """An s3fs filesystem on the moto server that creates and removes the tests' buckets."""
    try:
        from s3fs import S3FileSystem
    except ImportError as exc:
        service_unavailable("s3", f"s3fs is not installed ({exc}): pip install 'steward-ml[s3]'")
    return S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True, use_listings_cache=False)


@pytest.fixture
def s3_artifacts(s3_endpoint: str, _s3_admin: Any) -> Iterator[S3Artifacts]:
    """A fresh bucket on the moto server, emptied and removed after the test."""
    fs = _s3_admin
    bucket = f"steward-test-{uuid.uuid4().hex[:16]}"
    try:
        fs.mkdir(bucket)
    except Exception as exc:
        service_unavailable("s3", f"cannot create a bucket on {s3_endpoint}: {exc}")
    try:
        yield S3Artifacts(url=f"s3://{bucket}/prefix", endpoint_url=s3_endpoint)
    finally:
        fs.rm(bucket, recursive=True)
