"""The ``Gatekeeper``: what ``api/auth.py``'s route dependencies consult when auth is on.

It sends a bearer credential to the right verifier (the OIDC provider's keys for a JWT when OIDC is
configured, Steward's own token table otherwise), tells whether the server still awaits its bootstrap
token, and writes the audit entry of every refused request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from steward.errors import StewardError
from steward.governance import audit
from steward.governance.context import Identity
from steward.governance.oidc import OidcVerifier, looks_like_jwt

if TYPE_CHECKING:
    from steward.governance.identity import IdentityService
    from steward.store.platform import Platform


class Gatekeeper:
    """Authentication for a server started with ``--auth`` (``enabled``), or a pass-through without it.

    Args:
        platform: The server's platform (for the audit trail).
        identity: Steward's principals and tokens.
        enabled: Whether requests must authenticate.
        oidc: The identity provider's verifier, when OIDC is configured.
    """

    def __init__(
        self, platform: Platform, identity: IdentityService, enabled: bool, oidc: OidcVerifier | None = None
    ) -> None:
        self.platform = platform
        self.identity = identity
        self.enabled = enabled
        self.oidc = oidc
        self._bootstrapped = False

    def authenticate(self, credential: str) -> Identity:
        """Return the identity a bearer credential proves.

        Raises:
            Unauthenticated: For a malformed, unknown, expired or revoked credential.
            ServiceUnavailable: If the OIDC provider's keys cannot be fetched.
        """
        if self.oidc is not None and looks_like_jwt(credential):
            return self.oidc.verify(credential)
        return self.identity.authenticate(credential)

    def awaiting_bootstrap(self) -> bool:
        """Whether no admin exists yet (then only the bootstrap exchange may act). Once one does, this
        is remembered: admins are never all removed through the API."""
        if not self._bootstrapped and not self.identity.needs_bootstrap():
            self._bootstrapped = True
        return not self._bootstrapped

    def refused(self, request: Request, error: StewardError, actor: str, project: str | None) -> None:
        """Append the audit entry of a refused request: who (if known), what route, why."""
        rid = request.scope.get("state", {}).get("request_id")
        self.record_refusal(request.method, request.url.path, str(rid) if rid else None, error.code,
                            error.message, actor, project)  # fmt: skip

    def body_refused(self, method: str, path: str, request_id: str | None) -> None:
        """Append the audit entry of a request refused for its body's size (before anyone is known)."""
        self.record_refusal(method, path, request_id, "payload_too_large", "request body over the limit")

    def record_refusal(
        self,
        method: str,
        path: str,
        request_id: str | None,
        code: str,
        reason: str,
        actor: str = "anonymous",
        project: str | None = None,
    ) -> None:
        """Append one ``api.refused`` entry (outcome ``denied``)."""
        details = {"method": method, "path": path[:512], "code": code, "reason": reason[:300]}
        with self.platform.metadata.transaction() as conn:
            audit.append(
                conn,
                actor=actor,
                action="api.refused",
                resource_kind="route",
                resource_id=f"{method} {path}"[:256],
                outcome="denied",
                details=details,
                request_id=request_id,
                checkpoint=audit.checkpointer_for(self.platform.settings),
                project=project,
            )
