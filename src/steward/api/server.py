"""``serve``: run the API under uvicorn, in one process or several workers.

Latency note (TCP_NODELAY): small responses must not wait for Nagle's algorithm and the peer's delayed
ACK. Checked for the versions we run on: uvicorn itself never sets socket options on accepted
connections, but both event loops it can use do. asyncio's ``_SelectorSocketTransport.__init__`` calls
``base_events._set_nodelay(sock)`` on every TCP transport, and uvloop (used by ``loop="auto"`` when
installed) calls ``uv_tcp_nodelay(handle, 1)`` in ``TCPTransport.new`` for every accepted connection.
httptools only parses, it does not touch the socket. The client side is covered as well: httpcore's
sync backend sets TCP_NODELAY on each connection it opens. So nothing needs setting here.
"""

from __future__ import annotations

import os
from typing import Any

from steward.config import Settings

# What ``Settings`` knows that worker processes must see too; the token is a client credential.
_WORKER_SETTINGS = (
    "home", "db", "artifacts", "region", "artifacts_region", "allowed_regions", "privacy_secret",
    "s3_endpoint_url", "project", "auth", "max_request_bytes", "encryption_key", "encryption_key_file",
    "signing_key_file", "audit_checkpoint_every", "oidc_issuer", "oidc_audience", "oidc_jwks_url",
    "oidc_groups_claim", "oidc_username_claim", "oidc_group_roles", "oidc_algorithms", "oidc_leeway_seconds",
)  # fmt: skip

KEEP_ALIVE_SECONDS = 65
"""Idle keep-alive timeout: longer than the client's pool expiry, so the client always closes first."""


def settings_environment(settings: Settings) -> dict[str, str]:
    """Return the ``STEWARD_*`` variables that make ``load_settings()`` in a worker equal ``settings``.

    Args:
        settings: The resolved settings of the parent process.
    """
    env = {}
    for name in _WORKER_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            env[f"STEWARD_{name.upper()}"] = str(value)
    return env


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "info",
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Run the Steward API until interrupted.

    With one worker the app is built here; with several, the metadata store is migrated once in this
    process and each worker builds its own app from ``STEWARD_*`` variables (``uvicorn --factory``).

    Args:
        settings: Where the metadata and artifacts live.
        host: Address to listen on.
        port: TCP port to listen on.
        workers: Number of worker processes.
        log_level: uvicorn's log level (``critical`` … ``trace``).
        tls_cert: A PEM certificate (chain) file: serve HTTPS with it and ``tls_key``.
        tls_key: The certificate's PEM private key file.

    Raises:
        InvalidInput: For malformed settings.
        ServiceUnavailable: If the metadata store cannot be reached.
    """
    import uvicorn

    from steward.api.app import create_app

    if workers <= 1:
        target: Any = create_app(settings)
    else:
        from steward.store.platform import Platform

        Platform.from_settings(settings).close()  # migrate once, before the workers race to do it
        os.environ.update(settings_environment(settings))
        target = "steward.api.app:create_app"
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=host,
        port=port,
        log_level=log_level,
        ws="none",  # no websocket routes; this also skips importing websockets' deprecated legacy API
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
