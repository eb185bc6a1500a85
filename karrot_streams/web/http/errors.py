"""The seed's ErrorResponse ``{code, message, timestamp, path, details}`` and the errors behind it.

Views raise an :class:`ApiError` subclass; the middleware turns it into the JSON body. Each class
fixes the HTTP status and the ``code``; the message says what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from karrot_streams.events.timestamps import iso_utc
from karrot_streams.publishing.errors import PublishUnavailable


class ApiError(Exception):
    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details else None
        self.headers = dict(headers) if headers else {}


class BadRequest(ApiError):
    """The request cannot be read: not JSON, not an object, a bad query parameter."""

    status = 400
    code = "INVALID_REQUEST"


class ValidationFailed(ApiError):
    """The request reads fine but breaks a rule of the contract (the seed's EventValidator)."""

    status = 400
    code = "EVENT_VALIDATION_FAILED"


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHORIZED"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="karrot-streams"'})


class Forbidden(ApiError):
    """A valid token that may not do this (an API token on an admin call)."""

    status = 403
    code = "FORBIDDEN"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(ApiError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class NotYetConsistent(ApiError):
    """A table query's consistency tokens: their events are not in the table yet."""

    status = 409
    code = "NOT_YET_CONSISTENT"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ServiceUnavailable(ApiError):
    """A dependency (Kafka, PostgreSQL, the registry, a peer worker) cannot serve it now."""

    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, details=details, headers={"Retry-After": "5"})


class InternalError(ApiError):
    status = 500
    code = "INTERNAL_ERROR"


#: The ApiError standing for each status aiohttp itself raises (no route, wrong method...).
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    503: ServiceUnavailable,
}


def from_status(status: int, reason: str, path: str) -> ApiError:
    """The ApiError for an HTTP error raised outside our views (routing, aiohttp limits)."""
    if status == 404:
        return NotFound(f"No resource at {path}")
    kind = _BY_STATUS.get(status)
    if kind is not None:
        return kind(reason)
    error = ApiError(reason or "HTTP error")
    error.status = status  # an unusual status keeps its own number
    error.code = reason.upper().replace(" ", "_") or "HTTP_ERROR"
    return error


def from_publish_failure(error: PublishUnavailable) -> ApiError:
    """The 503 for an event Kafka or the event store could not take."""
    return ServiceUnavailable(error.message, details=error.details)


def error_body(error: ApiError, path: str, now: datetime) -> dict[str, Any]:
    return {
        "code": error.code,
        "message": error.message,
        "timestamp": iso_utc(now),
        "path": path,
        "details": error.details,
    }
