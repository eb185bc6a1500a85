"""The seed's EventValidator rules and the contract's consistency checks, accepted and rejected."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from karrot_streams.events.failures import InvalidEvent
from karrot_streams.events.types import NAMESPACE
from karrot_streams.events.validation import event_from_avro, validate_payload

USER = f"{NAMESPACE}.UserCreated"
ITEM = f"{NAMESPACE}.ItemCreated"
PAYMENT = f"{NAMESPACE}.Payment"
CHAT = f"{NAMESPACE}.ChatMessage"

GOOD: dict[str, dict[str, Any]] = {
    USER: {"userId": "u1", "email": "a.b+c@karrot.kr", "nickname": "당근", "region": None},
    ITEM: {
        "itemId": "i1",
        "sellerId": "s1",
        "title": "아이폰",
        "price": 0,
        "category": "디지털기기",
        "region": "서울",
    },
    PAYMENT: {"paymentId": "p1", "buyerId": "b1", "sellerId": "s1", "itemId": "i1", "amount": 1},
    CHAT: {"chatRoomId": "r1", "senderId": "u1", "message": "x" * 1000},
}


@pytest.mark.parametrize("record", list(GOOD))
def test_valid_payloads_pass(record: str) -> None:
    assert validate_payload(record, GOOD[record]) == GOOD[record]


@pytest.mark.parametrize(
    ("record", "field", "value", "message"),
    [
        (USER, "userId", "  ", "Required field missing: userId"),
        (USER, "email", None, "Required field missing: email"),
        (USER, "email", "no-at-sign", "Invalid email format"),
        (USER, "email", "a b@x", "Invalid email format"),
        (USER, "nickname", "", "Required field missing: nickname"),
        (ITEM, "price", -1, "Price cannot be negative"),
        (ITEM, "price", None, "Required field missing: price"),
        (ITEM, "price", "100", "price must be a whole number"),
        (ITEM, "price", True, "price must be a whole number"),
        (ITEM, "title", "\t", "Required field missing: title"),
        (PAYMENT, "amount", 0, "Amount must be positive"),
        (PAYMENT, "amount", -5, "Amount must be positive"),
        (PAYMENT, "buyerId", None, "Required field missing: buyerId"),
        (CHAT, "message", "x" * 1001, "Message too long"),
        (CHAT, "chatRoomId", 42, "chatRoomId must be a string"),
    ],
)
def test_rule_violations_name_the_field(
    record: str, field: str, value: object, message: str
) -> None:
    payload = {**GOOD[record], field: value}
    with pytest.raises(InvalidEvent, match=message) as caught:
        validate_payload(record, payload)
    assert caught.value.field == field


def envelope(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "eventType": "ITEM_CREATED",
        "aggregateId": "i1",
        "occurredAt": datetime(2026, 11, 25, tzinfo=UTC),
        "correlationId": None,
        "userId": None,
        "source": None,
        "payload": (ITEM, GOOD[ITEM]),
    }
    record.update(overrides)
    return record


def test_envelope_becomes_event() -> None:
    event = event_from_avro("item-events", f"{NAMESPACE}.ItemEvent", envelope())
    assert event.event_type == "ITEM_CREATED"
    assert event.topic == "item-events"
    assert event.payload["category"] == "디지털기기"


@pytest.mark.parametrize(
    ("topic", "writer", "overrides", "field"),
    [
        ("item-events", f"{NAMESPACE}.UserEvent", {}, "schema"),
        ("user-events", f"{NAMESPACE}.UserEvent", {}, "eventType"),
        ("item-events", f"{NAMESPACE}.ItemEvent", {"eventId": "not-a-uuid"}, "eventId"),
        ("item-events", f"{NAMESPACE}.ItemEvent", {"eventType": "ITEM_SOLD"}, "eventType"),
        ("item-events", f"{NAMESPACE}.ItemEvent", {"aggregateId": " "}, "aggregateId"),
        ("item-events", f"{NAMESPACE}.ItemEvent", {"aggregateId": "a" * 256}, "aggregateId"),
        (
            "payment-events",
            f"{NAMESPACE}.PaymentEvent",
            {"eventType": "PAYMENT_COMPLETED", "payload": (ITEM, GOOD[ITEM])},
            "payload",
        ),
    ],
)
def test_consistency_checks(topic: str, writer: str, overrides: dict[str, Any], field: str) -> None:
    record = envelope(**overrides)
    with pytest.raises(InvalidEvent) as caught:
        event_from_avro(topic, writer, record)
    assert caught.value.field == field
    expected_id = record["eventId"]
    assert caught.value.event_id == expected_id
