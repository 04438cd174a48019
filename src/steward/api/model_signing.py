"""Model signing routes: verify a version's platform signature and digests, under ``/api/v1``.

=======  ==================================================  ==========================
Method   Path                                                Answer
=======  ==================================================  ==========================
GET      ``/models/{name}/versions/{version}/verify``        ``VerificationReport``
=======  ==================================================  ==========================

The answer is 200 with ``"ok": false`` and the failed checks for a version that does not verify (the
check worked; the version did not pass it), 404 for an unknown model or version. Signing a version
registered before signing is an admin's job on the server host (``steward models sign``), not a route.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from steward.api.auth import requires
from steward.api.deps import API_PREFIX, Registry

router = APIRouter(prefix=API_PREFIX, tags=["registry"])


@router.get(
    "/models/{name}/versions/{version}/verify",
    summary="Verify a version's signature and digests",
    dependencies=[requires("models:read")],
)
def verify_version(name: str, version: str, registry: Registry) -> dict[str, Any]:
    """Check the version's signature against the platform key and re-hash every file it records."""
    return registry.verify_version(name, version).to_json()
