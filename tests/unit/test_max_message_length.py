"""The chat-message length rule: the contract's 1000 by default, relaxed by configuration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from karrot_streams.events.failures import InvalidEvent
from karrot_streams.events.types import NAMESPACE
from karrot_streams.events.validation import event_from_avro, validate_payload
from karrot_streams.settings import Settings

CHAT = f"{NAMESPACE}.ChatMessage"


def chat(length: int) -> dict[str, str]:
    return {"chatRoomId": "r1", "senderId": "u1", "message": "가" * length}


def envelope(length: int) -> dict[str, object]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": "CHAT_MESSAGE_SENT",
        "aggregateId": "r1",
        "occurredAt": datetime(2026, 11, 25, tzinfo=UTC),
        "payload": (CHAT, chat(length)),
    }


def test_default_is_the_contracts_1000() -> None:
    assert validate_payload(CHAT, chat(1000))
    with pytest.raises(InvalidEvent, match="1001 characters, at most 1000"):
        validate_payload(CHAT, chat(1001))
    assert Settings().max_message_length == 1000


def test_a_longer_limit_accepts_longer_messages() -> None:
    assert validate_payload(CHAT, chat(1500), max_message_length=2000)
    with pytest.raises(InvalidEvent, match="at most 2000"):
        validate_payload(CHAT, chat(2001), max_message_length=2000)


def test_the_pipeline_path_takes_the_limit() -> None:
    with pytest.raises(InvalidEvent):
        event_from_avro("chat-events", f"{NAMESPACE}.ChatEvent", envelope(1500))
    event = event_from_avro(
        "chat-events", f"{NAMESPACE}.ChatEvent", envelope(1500), max_message_length=2000
    )
    assert len(event.payload["message"]) == 1500


def test_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARROT_MAX_MESSAGE_LENGTH", "2000")
    assert Settings().max_message_length == 2000
    monkeypatch.setenv("KARROT_MAX_MESSAGE_LENGTH", "0")
    with pytest.raises(ValueError, match="max_message_length"):
        Settings()
