"""The one error hierarchy of Steward.

Every failure a user can cause or meet is one of these. Each carries a stable ``code`` (the API puts it
in ``{"error": {"code", "message", "details"}}``) and optional ``details`` naming the field at fault.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StewardError(Exception):
    """Base of every error Steward raises on purpose.

    Args:
        message: A sentence for a person: what was wrong and, where it helps, what to do.
        details: Machine-readable context, e.g. ``{"field": "metrics.loss"}``.
    """

    code: ClassVar[str] = "steward_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON error body of the API for this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class NotFound(StewardError):
    """The named object does not exist (or is not visible to the caller)."""

    code = "not_found"


class AlreadyExists(StewardError):
    """An object with that name or id already exists."""

    code = "already_exists"


class InvalidInput(StewardError):
    """The input is malformed: a bad name, a non-finite metric, a wrong type."""

    code = "invalid_input"


class Conflict(StewardError):
    """The input is well formed but clashes with the current state (e.g. a write to a finished run)."""

    code = "conflict"


class Unauthenticated(StewardError):
    """No valid credentials were presented."""

    code = "unauthenticated"


class Forbidden(StewardError):
    """The caller is known but lacks the permission."""

    code = "forbidden"


class PolicyViolation(StewardError):
    """A governance policy gate refused the action."""

    code = "policy_violation"


class IntegrityError(StewardError):
    """Stored bytes or records no longer match their digest or chain."""

    code = "integrity_error"


class ResidencyViolation(StewardError):
    """The action would move data out of its permitted region."""

    code = "residency_violation"


class UnsafeArtifact(StewardError):
    """An artifact would run code when loaded and was not explicitly trusted."""

    code = "unsafe_artifact"


class ServiceUnavailable(StewardError):
    """A backing service (database, object store, server) could not be reached."""

    code = "service_unavailable"


ERRORS_BY_CODE: dict[str, type[StewardError]] = {
    cls.code: cls
    for cls in (
        StewardError,
        NotFound,
        AlreadyExists,
        InvalidInput,
        Conflict,
        Unauthenticated,
        Forbidden,
        PolicyViolation,
        IntegrityError,
        ResidencyViolation,
        UnsafeArtifact,
        ServiceUnavailable,
    )
}
"""Maps an error ``code`` back to its class, so the HTTP client can re-raise what the server raised."""
