"""Consistency tokens: their spelling, and when a value includes a token's event."""

from __future__ import annotations

import re

import pytest

from karrot_streams.tables.consistency import (
    TOKEN_LIST_PATTERN,
    TOKEN_PATTERN,
    Token,
    includes,
    parse_tokens,
)
from karrot_streams.tables.replay_guard import position_of

EVENT_ID = "5b0e8c9e-4e5f-4a43-9c39-2b8f1b3a2d10"


def test_a_token_spells_its_position_and_event() -> None:
    token = Token("item-events", 3, 1234, EVENT_ID)
    assert str(token) == f"item-events:3:1234:{EVENT_ID}"
    assert Token.parse(str(token)) == token
    assert re.fullmatch(TOKEN_PATTERN, str(token))
    assert re.fullmatch(TOKEN_LIST_PATTERN, f"{token},{token}")
    assert parse_tokens(f"{token},{token}") == [token, token]
    for text in ("", ",", f"{token},", f"{token}, {token}"):
        with pytest.raises(ValueError, match="not a list"):
            parse_tokens(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nope",
        f"other-events:0:1:{EVENT_ID}",
        f"item-events:-1:1:{EVENT_ID}",
        "item-events:0:1:x",
    ],
)
def test_what_is_not_a_token(text: str) -> None:
    with pytest.raises(ValueError, match="not a consistency token"):
        Token.parse(text)
    assert not re.fullmatch(TOKEN_PATTERN, text)


def test_a_value_includes_what_its_marks_passed_and_does_not_owe() -> None:
    value = {"applied": {"item-events:0": position_of(10)}, "owed": {"item-events:0": [[5, 7]]}}
    assert includes(value, "item-events:0", position_of(10))
    assert includes(value, "item-events:0", 4)
    assert not includes(value, "item-events:0", 6)  # skipped over by a resend, still owed
    assert not includes(value, "item-events:0", position_of(11))
    assert not includes(value, "item-events:1", 0)
    assert not includes({}, "item-events:0", 0)
    assert not includes(None, "item-events:0", 0)


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        ({"payload": {"category": "a"}}, {"category": "a"}),
        ({"payload": ["com.karrot.events.ChatMessage", {"message": "m"}]}, {"message": "m"}),
        ({"payload": None}, {}),
        ({}, {}),
        ([], {}),
    ],
)
def test_the_payload_of_a_stored_event_whatever_wrote_it(data: object, payload: object) -> None:
    """A dead letter's row holds its decoded Avro (found by the console test: a 500)."""
    from karrot_streams.web.consistency import payload_of  # noqa: PLC0415

    assert payload_of(data) == payload
