"""The ``authorise`` callable of ``steward serve --auth``: the API's gatekeeper in front of model routes.

The inference server (``steward.serving``) cannot import the API layer, so it names this factory by
import path and calls it with its platform and options in each worker process.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING, Final

from steward.api.auth import bearer_credential
from steward.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from steward.serving.app import Access, Authorise
    from steward.serving.server import ServeOptions
    from steward.store.platform import Platform

_CACHE_SECONDS: Final = 1.0


def build_authorise(platform: Platform, options: ServeOptions) -> Authorise:
    """The ``authorise`` callable of ``steward serve --auth``: the API's gatekeeper checks the bearer
    token (Steward's or an OIDC JWT), then ``serving:predict`` in the endpoint's project; refusals are
    audited. A verified token is remembered for a second, so the hot path rarely leaves the event loop.

    Args:
        platform: The server's platform.
        options: The server's options.
    """
    from steward.api.guard import Gatekeeper
    from steward.governance.context import Identity
    from steward.governance.identity import IdentityService
    from steward.governance.oidc import OidcVerifier

    gate = Gatekeeper(
        platform, IdentityService(platform), True, OidcVerifier.from_settings(platform.settings)
    )
    known: dict[str, tuple[Identity, float]] = {}

    def identify(credential: str) -> Identity:
        if gate.awaiting_bootstrap():
            raise Unauthenticated("this server awaits its bootstrap token: run 'steward login --bootstrap'")
        return gate.authenticate(credential)

    async def authorise(access: Access) -> None:
        actor = "anonymous"
        try:
            credential = bearer_credential(access.headers.get("authorization"))
            digest = hashlib.sha256(credential.encode()).hexdigest()
            cached = known.get(digest)
            now = time.monotonic()
            if cached is not None and cached[1] > now:
                identity = cached[0]
            else:
                identity = await asyncio.to_thread(identify, credential)
                if len(known) > 10_000:
                    known.clear()
                known[digest] = (identity, now + _CACHE_SECONDS)
            actor = identity.name
            if not identity.is_member(access.project):
                raise Forbidden(
                    f"{identity.name!r} is not a member of project {access.project!r}",
                    {"project": access.project},
                )
            identity.require(access.permission, access.project)
        except (Unauthenticated, Forbidden) as error:
            await asyncio.to_thread(
                gate.record_refusal,
                access.method,
                access.path,
                access.request_id,
                error.code,
                error.message,
                actor,
                access.project,
            )
            raise

    return authorise
