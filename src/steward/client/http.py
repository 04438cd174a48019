"""``HttpClient``: one keep-alive HTTP connection pool to a Steward server, speaking Steward's errors.

An error response ``{"error": {"code", "message", "details"}}`` is raised again as the same
``StewardError`` subclass with the same message and details; a server that cannot be reached is
``ServiceUnavailable`` naming the URL. JSON bodies are encoded by orjson (numpy arrays included).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from steward.config import Settings
from steward.errors import (
    ERRORS_BY_CODE,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    StewardError,
    Unauthenticated,
)

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_JSON_HEADERS = {"Content-Type": "application/json"}
_ERROR_BY_STATUS: dict[int, type[StewardError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}
KEEPALIVE_EXPIRY = 30.0
"""Seconds an idle connection is kept; shorter than the server's keep-alive timeout (65 s)."""


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # non-contiguous or odd dtypes orjson does not take natively
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(content: Any) -> bytes:
    """Encode ``content`` as JSON bytes (numpy arrays and scalars allowed).

    Raises:
        InvalidInput: If something in ``content`` has no JSON form.
    """
    try:
        return orjson.dumps(content, default=_default, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"cannot send as JSON: {exc}", {"field": "body"}) from None


def segment(value: str) -> str:
    """Quote ``value`` as one URL path segment (``/`` and ``.`` escaped, so paths cannot be re-routed)."""
    return quote(value, safe="").replace(".", "%2E")


def error_from_response(response: httpx.Response) -> StewardError:
    """Return the ``StewardError`` an error response stands for.

    Steward's own error body gives the class (by ``code``), message and details; any other error response
    (a proxy's 502, an HTML page) is mapped by status and quoted briefly.
    """
    try:
        error = orjson.loads(response.content)["error"]
        cls = ERRORS_BY_CODE.get(error["code"], StewardError)
        message, details = error["message"], error.get("details") or {}
        if not isinstance(message, str) or not isinstance(details, dict):
            raise TypeError("not a Steward error body")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        cls = _ERROR_BY_STATUS.get(response.status_code, StewardError)
        text = response.text.strip().replace("\n", " ")[:200]
        return cls(
            f"{response.request.method} {response.request.url} answered {response.status_code}: {text}",
            {"status": response.status_code},
        )
    return cls(message, details)


class HttpClient:
    """A client of one Steward server, safe to share between threads.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8080``; routes are under ``/api/v1``.
        token: Bearer token sent with every request; never logged or shown in ``repr``.
        timeout: Seconds to wait for connecting and for each read or write.
        transport: An ``httpx`` transport to use instead of the network (for tests).
        project: The project every request acts in (the ``X-Steward-Project`` header).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        project: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "steward-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if project:
            headers["X-Steward-Project"] = project
        self._client = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=32, max_keepalive_connections=8, keepalive_expiry=KEEPALIVE_EXPIRY
            ),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpClient:
        """The client of the server ``settings.uri`` names, acting in ``settings.project``, with
        ``STEWARD_TOKEN`` or else the token ``steward login`` stored for that server."""
        from steward.client.credentials import load_token

        assert settings.uri, "from_settings needs settings.uri"
        token = settings.token or load_token(settings.home, settings.uri)
        return cls(settings.uri, token=token, project=settings.project)

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def _unavailable(self, exc: httpx.TransportError) -> ServiceUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            message = f"Steward server at {self.base_url} did not answer in time ({type(exc).__name__})"
        else:
            message = f"cannot reach the Steward server at {self.base_url}: {exc or type(exc).__name__}"
        return ServiceUnavailable(message, {"url": self.base_url})

    def _build(
        self,
        method: str,
        path: str,
        json: Any,
        content: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        timeout: float | None = None,
    ) -> httpx.Request:
        if json is not None:
            content = encode_json(json)
            headers = {**_JSON_HEADERS, **(headers or {})}
        if timeout is None:
            return self._client.build_request(method, path, content=content, params=params, headers=headers)
        return self._client.build_request(
            method, path, content=content, params=params, headers=headers, timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        content: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request and return the successful response (body read).

        Args:
            method: HTTP method.
            path: Path under ``/api/v1``, e.g. ``/runs/abc``; callers quote variable parts (``segment``).
            json: A JSON body (encoded by orjson); or
            content: raw bytes, a file object or an iterator of bytes, streamed.
            params: Query parameters.
            headers: Extra headers.
            timeout: Seconds to wait for each read or write instead of the client's default (long
                work: a training set, a materialisation).

        Raises:
            StewardError: The subclass the server answered with (``NotFound``, ``Conflict`` …).
            ServiceUnavailable: If the server cannot be reached or does not answer in time.
        """
        request = self._build(method, path, json, content, params, headers, timeout)
        try:
            response = self._client.send(request)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        if response.is_error:
            raise error_from_response(response)
        return response

    def json(self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Send a request and return its decoded JSON body (``None`` for an empty one).

        Raises:
            StewardError: As for ``request``.
        """
        response = self.request(method, path, json=json, params=params)
        return orjson.loads(response.content) if response.content else None

    @contextmanager
    def stream(
        self, method: str, path: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[httpx.Response]:
        """Send a request and yield the successful response with its body still unread.

        Raises:
            StewardError: As for ``request`` (the error body is read to raise it).
            ServiceUnavailable: If the server cannot be reached, here or while the body is read.
        """
        request = self._build(method, path, None, None, params, None)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        try:
            if response.is_error:
                response.read()
                raise error_from_response(response)
            yield response
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        finally:
            response.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
