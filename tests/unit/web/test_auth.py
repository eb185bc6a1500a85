"""Which paths need a token, how the header is read, and which tokens pass."""

from __future__ import annotations

import pytest

from karrot_streams.web.http.auth import TokenCheck, bearer_token, is_api, needs_token


@pytest.mark.parametrize(
    ("path", "api", "token"),
    [
        ("/api/v1/events", True, True),
        ("/api/v1/events/{event_id}", True, True),
        ("/api/v1/categories/{category}/hourly", True, True),
        ("/api/v1", True, True),
        ("/api/v1/unknown/path", True, True),
        ("/api/v1/monitoring", True, False),
        ("/api/v1/monitoring/health", True, False),
        ("/api/v1/monitoring/dlq", True, False),
        ("/api/v1/openapi.json", True, False),
        ("/api/v1/openapi.jsonx", True, True),
        ("/api/v1/openapi.json/x", True, True),
        ("/api/v1/monitoringx", True, True),  # a prefix of the name is not the open folder
        ("/api/v10/events", False, False),
        ("/metrics", False, False),
        ("/", False, False),
    ],
)
def test_paths(path: str, api: bool, token: bool) -> None:
    assert is_api(path) is api
    assert needs_token(path) is token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        ("Bearer a b", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_any_configured_token_passes_and_nothing_else() -> None:
    check = TokenCheck(["api-token", "admin-token", ""])
    assert check.accepts("api-token")
    assert check.accepts("admin-token")
    assert not check.accepts(None)
    assert not check.accepts("")
    assert not check.accepts("api-toke")
    assert not check.accepts("api-token ")
    assert not check.accepts("API-TOKEN")


def test_no_tokens_configured_refuses_everyone() -> None:
    assert not TokenCheck([]).accepts("anything")


def test_non_ascii_and_undecodable_tokens_compare_safely() -> None:
    check = TokenCheck(["토큰"])
    assert check.accepts("토큰")
    assert not check.accepts("\udcff")
