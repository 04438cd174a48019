"""The API's error mapping: each failure is one HTTP status and ``{"error": {code, message, details}}``.

- ``StewardError`` subclasses map to their status (``STATUS_BY_ERROR``), with the error's own body.
- FastAPI's request validation errors are 422 ``invalid_input`` naming the field (``details.field``).
- Unknown routes and methods keep their 404/405, in the same body shape.
- Anything else is a 500 ``internal_error`` that names a request id; the traceback goes to the server
  log under that id and never to the client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.api.responses import OrjsonResponse
from steward.core.acting import current
from steward.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    PolicyViolation,
    ResidencyViolation,
    ServiceUnavailable,
    StewardError,
    Unauthenticated,
    UnsafeArtifact,
)

log = logging.getLogger("steward.api")

STATUS_BY_ERROR: dict[type[StewardError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    InvalidInput: 400,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    PolicyViolation: 403,
    ResidencyViolation: 403,
    UnsafeArtifact: 400,
    IntegrityError: 500,
    ServiceUnavailable: 503,
}
"""HTTP status of each error class; a subclass takes its nearest listed ancestor's, else 500."""

_CODE_BY_STATUS = {
    400: InvalidInput.code,
    401: Unauthenticated.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: "method_not_allowed",
    409: Conflict.code,
}


def status_of(error: StewardError) -> int:
    """Return the HTTP status for ``error``: its class's, or its nearest mapped ancestor's, else 500."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the API's error body ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def request_id(request: Request) -> str:
    """Return the id ``RequestIdMiddleware`` gave this request (``"-"`` outside it)."""
    return str(request.scope.get("state", {}).get("request_id", "-"))


async def _audit_bad_input(request: Request, code: str, message: str) -> None:
    """With auth on, record a request refused as bad input (400/422) in the audit trail, as credential
    and permission refusals are: hostile input leaves a trace."""
    guard = getattr(request.app.state, "guard", None)
    if guard is None or not guard.enabled:
        return
    record = getattr(guard, "record_refusal", None)
    if record is None:
        return
    identity = getattr(request.state, "identity", None)
    actor = identity.name if identity is not None else "anonymous"
    acting = current()
    project = acting.project if acting is not None else None
    rid = request_id(request)
    await run_in_threadpool(
        record, request.method, request.url.path, None if rid == "-" else rid, code, message, actor, project
    )


async def _steward_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StewardError)
    status = status_of(exc)
    if status == 400:
        await _audit_bad_input(request, exc.code, exc.message)
    if status >= 500:
        log.error(
            "%s %s failed (request id %s): %s: %s",
            request.method,
            request.url.path,
            request_id(request),
            type(exc).__name__,
            exc.message,
        )
    return OrjsonResponse(exc.to_dict(), status_code=status)


def _field(loc: Sequence[int | str], kind: str) -> str:
    if kind == "json_invalid":  # its loc ends in a character position, not a field
        return "body"
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": _field(e.get("loc", ()), str(e.get("type"))),
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    message = f"invalid {first['field']}: {first['message']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    body = error_body(InvalidInput.code, message, {"field": first["field"], "errors": errors})
    await _audit_bad_input(request, InvalidInput.code, message)
    return OrjsonResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return OrjsonResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


class ResponseAbortedError(Exception):
    """Raised inside a streamed response to drop the connection before the body is complete.

    The client then sees a body shorter than its ``Content-Length`` and refuses it. Whoever raises it has
    logged why; the middleware adds nothing.
    """


class RequestIdMiddleware:
    """Give each request an id (``X-Request-ID``) and turn an unexpected exception into a JSON 500.

    The 500 body names the request id so that a user can quote it; the traceback is logged with the same
    id. A client-supplied ``X-Request-ID`` is reused when it is short and printable.

    Args:
        app: The ASGI app to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app for one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ResponseAbortedError:
            if not started:  # nothing was sent: say so properly
                await self._internal_error(scope, receive, send, rid)
        except Exception:
            log.exception("%s %s failed (request id %s)", scope.get("method"), scope.get("path"), rid)
            if not started:  # once headers are out, all that is left is to let the connection drop
                await self._internal_error(scope, receive, send, rid)

    @staticmethod
    async def _internal_error(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        body = error_body("internal_error", f"internal error (request id {rid})", {"request_id": rid})
        await OrjsonResponse(body, status_code=500, headers={"x-request-id": rid})(scope, receive, send)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if 0 < len(text) <= 64 and text.isprintable():
                return text
    return None


def install_error_handling(app: FastAPI) -> None:
    """Register the exception handlers and the request-id middleware on ``app``."""
    app.add_exception_handler(StewardError, _steward_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(RequestIdMiddleware)
