"""The seed's ErrorResponse shape, and aiohttp's own errors mapped onto it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from karrot_streams.web.http.errors import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    error_body,
    from_status,
)


def test_error_body_has_the_seed_fields() -> None:
    error = ValidationFailed("Price cannot be negative", details={"field": "payload.price"})
    body = error_body(error, "/api/v1/events", datetime(2024, 5, 1, 0, 0, tzinfo=UTC))
    assert body == {
        "code": "EVENT_VALIDATION_FAILED",
        "message": "Price cannot be negative",
        "timestamp": "2024-05-01T00:00:00.000Z",
        "path": "/api/v1/events",
        "details": {"field": "payload.price"},
    }


def test_details_default_to_null() -> None:
    body = error_body(NotFound("nope"), "/x", datetime.now(UTC))
    assert body["details"] is None


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest("x"), 400),
        (ValidationFailed("x"), 400),
        (Unauthorized("x"), 401),
        (NotFound("x"), 404),
        (MethodNotAllowed("x"), 405),
        (PayloadTooLarge("x"), 413),
        (ServiceUnavailable("x"), 503),
        (ApiError("x"), 500),
    ],
)
def test_statuses(error: ApiError, status: int) -> None:
    assert error.status == status


def test_unauthorized_asks_for_a_bearer_token() -> None:
    assert Unauthorized("x").headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, BadRequest), (404, NotFound), (405, MethodNotAllowed), (413, PayloadTooLarge)],
)
def test_from_status(status: int, kind: type[ApiError]) -> None:
    assert isinstance(from_status(status, "Reason", "/api/v1/x"), kind)


def test_from_an_unusual_status_keeps_it() -> None:
    error = from_status(418, "I'm a teapot", "/api/v1/x")
    assert (error.status, error.code) == (418, "I'M_A_TEAPOT")
