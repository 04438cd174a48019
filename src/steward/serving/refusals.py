"""How the server refuses a request: one HTTP status per error, and the error body of its route family.

The Open Inference Protocol v2 routes (``/v2`` and everything under it) answer with the protocol's error
body, ``{"error": "<message>"}``, which stock clients (``tritonclient``, KServe's) read as the message;
Steward's ``code`` and ``details`` ride along as extra members. Every other route (``/predict/...``, an
unknown path) answers with Steward's own ``{"error": {"code", "message", "details"}}``, as the API does.
The status is the same either way.

Malformed requests (not JSON, the wrong structure) are 400; well-formed input that does not fit the
model's signature (a missing column, a wrong dtype or shape) is 422 (:class:`Unprocessable`); unknown
models and versions 404; bodies over the limit 413; an endpoint still loading 503. A model that fails
while predicting is a 500 ``model_error``: the server logs it under the request id and goes on.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from steward.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    StewardError,
    Unauthenticated,
    UnsafeArtifact,
)


class Unprocessable(InvalidInput):
    """Well-formed input that the model's signature refuses (HTTP 422); ``details["field"]`` names it."""


class PayloadTooLarge(StewardError):
    """The request body is over the server's limit (HTTP 413)."""

    code = "payload_too_large"


class NotReady(ServiceUnavailable):
    """The endpoint has no loaded version yet (HTTP 503)."""

    code = "not_ready"


class ModelError(StewardError):
    """The model raised while predicting (HTTP 500); counted as the version's error."""

    code = "model_error"


_STATUS: Final[tuple[tuple[type[StewardError], int], ...]] = (
    (Unprocessable, 422),
    (UnsafeArtifact, 400),
    (InvalidInput, 400),
    (NotFound, 404),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (ServiceUnavailable, 503),
    (IntegrityError, 500),
    (ModelError, 500),
)


def status_of(error: StewardError) -> int:
    """Return the HTTP status of ``error`` (500 for an error class not listed).

    Args:
        error: The refusal.
    """
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def is_oip(path: str) -> bool:
    """Whether ``path`` is an Open Inference Protocol route (``/v2`` or under ``/v2/``).

    Args:
        path: The request path.
    """
    return path == "/v2" or path.startswith("/v2/")


def error_json(code: str, message: str, details: dict[str, Any] | None = None, *, oip: bool = False) -> bytes:
    """Return an error body as JSON bytes: Steward's ``{"error": {"code", "message", "details"}}``, or
    with ``oip`` the protocol's ``{"error": "<message>", "code", "details"}``.

    Args:
        code: The stable error code (``invalid_input``, ``not_found`` …).
        message: A sentence for a person.
        details: Machine-readable context; ``field`` names the input at fault.
        oip: Shape it for an Open Inference Protocol route (see :func:`is_oip`).
    """
    body: dict[str, Any]
    if oip:
        body = {"error": message, "code": code, "details": details or {}}
    else:
        body = {"error": {"code": code, "message": message, "details": details or {}}}
    return orjson.dumps(body, default=str)
