"""The HTTP plumbing of the inference server, on raw ASGI: reading a request's headers once, its body
within a limit, and sending one whole answer.

Request ids are the client's ``X-Request-Id`` when it sent a sane one (1-128 visible ASCII characters),
else a new one: 32 hex digits, time-ordered like ``steward.core.ids.new_id`` but made without a system
call per request.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from typing import Any, Final

from steward.core.ids import new_id
from steward.errors import InvalidInput, StewardError
from steward.serving.refusals import PayloadTooLarge

JSON: Final = b"application/json"
OCTETS: Final = b"application/octet-stream"
_MAX_ID: Final = 128


class Disconnected(Exception):
    """The client went away before its body arrived."""


class MethodNotAllowed(StewardError):
    """The path exists, the method does not (HTTP 405)."""

    code = "method_not_allowed"


class _Ids:
    def __init__(self) -> None:
        self._prefix = int(new_id()[-12:], 16)  # random per process
        self._counter = 0

    def next(self) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFFFF
        return f"{time.time_ns() // 1_000_000:012x}{self._prefix:012x}{self._counter:08x}"


_ids = _Ids()


def request_id(sent: bytes | None) -> str:
    """The client's request id if it is sane, else a new one.

    Args:
        sent: The ``X-Request-Id`` header's value, if any.
    """
    if sent and len(sent) <= _MAX_ID and sent.isascii() and all(0x21 <= c <= 0x7E for c in sent):
        return sent.decode("ascii")
    return _ids.next()


class HttpRequest:
    """The parts of an HTTP request the handlers read, taken from the ASGI scope in one pass.

    Args:
        scope: The ASGI ``http`` scope.
    """

    __slots__ = (
        "accounted", "body_length", "encoding", "header_length", "id", "key", "method", "path", "scope",
        "started",
    )  # fmt: skip

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.started = time.perf_counter()
        self.accounted = False
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.body_length: bytes | None = None
        self.header_length: bytes | None = None
        self.encoding: bytes | None = None
        self.key: str | None = None
        sent_id: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                self.body_length = value
            elif name == b"x-request-id":
                sent_id = value
            elif name == b"x-steward-key":
                self.key = value.decode("latin-1")
            elif name == b"inference-header-content-length":
                self.header_length = value
            elif name == b"content-encoding":
                self.encoding = value
        self.id = request_id(sent_id)

    def headers(self) -> dict[str, str]:
        """Every header, decoded (lower-case names)."""
        return {name.decode("latin-1"): value.decode("latin-1") for name, value in self.scope["headers"]}


def _too_large(limit: int, what: str = "request body") -> PayloadTooLarge:
    return PayloadTooLarge(f"the {what} is larger than this server accepts ({limit} bytes)", {"limit": limit})


async def read_body(request: HttpRequest, receive: Any, limit: int) -> bytes:
    """Read the whole body: a declared or streamed size over ``limit`` is refused before more is read, and
    a gzip or deflate body is decompressed (within the same limit).

    Args:
        request: The request.
        receive: The ASGI receive callable.
        limit: The largest body accepted, in bytes.

    Raises:
        PayloadTooLarge: Over the limit.
        InvalidInput: For a bad Content-Length, or a body that does not decompress.
        Disconnected: If the client went away.
    """
    declared = int_header(request.body_length, "content-length")
    if declared is not None and declared > limit:
        raise _too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise Disconnected
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
    if len(body) > limit:
        raise _too_large(limit)
    if request.encoding is not None and request.encoding not in (b"identity", b""):
        body = _decompressed(body, request.encoding, limit)
    return body


async def send_answer(
    send: Any,
    status: int,
    body: bytes,
    request_id: str,
    content_type: bytes = JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send one whole answer with its content type, length and ``X-Request-Id``.

    Args:
        send: The ASGI send callable.
        status: The HTTP status.
        body: The body.
        request_id: The request's id.
        content_type: The body's media type.
        extra: More headers.
    """
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def int_header(value: bytes | None, name: str) -> int | None:
    """A header's whole-number value (None when absent).

    Raises:
        InvalidInput: If it is not a whole number >= 0.
    """
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"the {name} header must be a whole number", {"field": name}) from None
    if number < 0:
        raise InvalidInput(f"the {name} header must not be negative", {"field": name})
    return number


def _decompressed(body: bytes, encoding: bytes, limit: int) -> bytes:
    if encoding == b"gzip":
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == b"deflate":
        decoder = zlib.decompressobj()
    else:
        raise InvalidInput(
            f"unsupported Content-Encoding {encoding.decode('latin-1')[:32]!r}; use gzip or deflate",
            {"field": "content-encoding"},
        )
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the body is not valid {encoding.decode()}: {exc}", {"field": "body"}) from None
    if len(data) > limit or decoder.unconsumed_tail:
        raise _too_large(limit, "decompressed request body")
    return data
