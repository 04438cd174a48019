"""``BodyLimitMiddleware``: refuse request bodies larger than ``max_request_bytes`` with 413.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body is counted
as it arrives and refused as soon as it passes the limit, so an endless upload cannot fill memory or
disk. Either way the app never sees a partial body.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.api.errors import error_body
from steward.api.responses import OrjsonResponse


class BodyTooLarge(Exception):
    """Raised inside ``receive`` when a streamed body passes the limit."""


class BodyLimitMiddleware:
    """Answer 413 ``payload_too_large`` to bodies over ``limit`` bytes.

    Args:
        app: The ASGI app to wrap.
        limit: The largest body accepted, in bytes.
        on_refuse: Called (in a worker thread) with the request's method, path and request id for each
            refusal: the server audits it.
    """

    def __init__(
        self, app: ASGIApp, limit: int, on_refuse: Callable[[str, str, str | None], None] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.on_refuse = on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app for one request, counting its body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_refuse is not None:
            rid = scope.get("state", {}).get("request_id")
            await run_in_threadpool(self.on_refuse, scope.get("method", ""), scope.get("path", ""), rid)
        body = error_body(
            "payload_too_large",
            f"the request body is larger than this server accepts ({self.limit} bytes)",
            {"limit": self.limit},
        )
        await OrjsonResponse(body, status_code=413, headers={"connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
