"""The publish body (the seed's EventRequest) parsed into an Event, and every way it is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from karrot_streams.events.types import NAMESPACE, EventType
from karrot_streams.web.http.errors import ApiError, BadRequest, ValidationFailed
from karrot_streams.web.http.models import RecentQuery
from karrot_streams.web.http.requests import parse_publish, parse_query

NOW = datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)
EVENT_ID = "5b0e8c9e-4e5f-4a43-9c39-2b8f1b3a2d10"

PAYLOADS: dict[str, dict[str, Any]] = {
    "USER_CREATED": {"userId": "u1", "email": "a@karrot.kr", "nickname": "당근", "region": "서울"},
    "ITEM_CREATED": {
        "itemId": "i1",
        "sellerId": "s1",
        "title": "아이폰",
        "price": 120000,
        "category": "디지털기기",
    },
    "PAYMENT_REQUESTED": {
        "paymentId": "p1",
        "buyerId": "b1",
        "sellerId": "s1",
        "itemId": "i1",
        "amount": 5000,
    },
    "PAYMENT_COMPLETED": {
        "paymentId": "p1",
        "buyerId": "b1",
        "sellerId": "s1",
        "itemId": "i1",
        "amount": 5000,
    },
    "CHAT_MESSAGE_SENT": {"chatRoomId": "r1", "senderId": "u1", "message": "안녕하세요"},
}


def body(**fields: Any) -> bytes:
    request: dict[str, Any] = {
        "eventType": "ITEM_CREATED",
        "aggregateId": "item-1",
        "payload": dict(PAYLOADS["ITEM_CREATED"]),
    }
    request.update(fields)
    return json.dumps(request, ensure_ascii=False).encode()


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_publish(raw, event_id=EVENT_ID, now=NOW)
    return caught.value


@pytest.mark.parametrize("event_type", list(PAYLOADS))
def test_every_event_type_parses(event_type: str) -> None:
    raw = body(eventType=event_type, aggregateId="agg-1", payload=PAYLOADS[event_type])
    event = parse_publish(raw, event_id=EVENT_ID, now=NOW)
    assert event.event_type is EventType(event_type)
    assert event.event_id == EVENT_ID
    assert event.aggregate_id == "agg-1"
    assert event.payload_record.startswith(f"{NAMESPACE}.")
    for name, value in PAYLOADS[event_type].items():
        assert event.payload[name] == value


def test_occurred_at_is_now_in_utc_to_the_millisecond() -> None:
    event = parse_publish(body(), event_id=EVENT_ID, now=NOW)
    assert event.occurred_at == datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC)


def test_optional_envelope_fields() -> None:
    event = parse_publish(
        body(correlationId="c-1", userId="u-9", source="web"), event_id=EVENT_ID, now=NOW
    )
    assert (event.correlation_id, event.user_id, event.source) == ("c-1", "u-9", "web")
    event = parse_publish(body(correlationId=None, source="  "), event_id=EVENT_ID, now=NOW)
    assert event.correlation_id is None
    assert event.source is None


def test_optional_payload_field_defaults_to_null_and_unknown_fields_are_dropped() -> None:
    payload = {**PAYLOADS["ITEM_CREATED"], "colour": "red"}
    event = parse_publish(body(payload=payload), event_id=EVENT_ID, now=NOW)
    assert event.payload["region"] is None
    assert "colour" not in event.payload


def test_unknown_top_level_fields_are_ignored() -> None:
    parse_publish(body(extra=1), event_id=EVENT_ID, now=NOW)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "required"),
        (b"   ", "required"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[]", "not an array"),
        (b'"text"', "not a string"),
        (b"null", "not null"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_unreadable_bodies(raw: bytes, fragment: str) -> None:
    error = refused(raw)
    assert isinstance(error, BadRequest)
    assert error.status == 400
    assert fragment in error.message


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"eventType": None}, "eventType", "Event type is required"),
        ({"aggregateId": None}, "aggregateId", "Aggregate ID is required"),
        ({"payload": None}, "payload", "Payload is required"),
        ({"eventType": "ITEM_SOLD_TWICE"}, "eventType", "Unknown eventType"),
        ({"eventType": 5}, "eventType", "must be a string"),
        ({"aggregateId": "   "}, "aggregateId", "aggregateId"),
        ({"aggregateId": 7}, "aggregateId", "must be a string"),
        ({"aggregateId": "a" * 256}, "aggregateId", "longer than 255"),
        ({"payload": "x"}, "payload", "JSON object"),
        ({"payload": [1]}, "payload", "JSON object"),
        ({"correlationId": 5}, "correlationId", "must be a string"),
    ],
)
def test_envelope_errors_name_the_field(fields: dict[str, Any], field: str, fragment: str) -> None:
    error = refused(body(**fields))
    assert isinstance(error, ValidationFailed)
    assert error.details == {"field": field}
    assert fragment in error.message


def test_missing_top_level_field() -> None:
    raw = json.dumps({"eventType": "ITEM_CREATED", "payload": {}}).encode()
    assert refused(raw).details == {"field": "aggregateId"}


@pytest.mark.parametrize(
    ("event_type", "change", "field", "fragment"),
    [
        ("ITEM_CREATED", {"itemId": None}, "payload.itemId", "Required field missing: itemId"),
        ("ITEM_CREATED", {"title": " "}, "payload.title", "title"),
        ("ITEM_CREATED", {"price": "12000"}, "payload.price", "whole number"),
        ("ITEM_CREATED", {"price": 1.5}, "payload.price", "whole number"),
        ("ITEM_CREATED", {"price": True}, "payload.price", "whole number"),
        ("ITEM_CREATED", {"price": -1}, "payload.price", "negative"),
        ("ITEM_CREATED", {"price": 2**63}, "payload.price", "out of range"),
        ("ITEM_CREATED", {"category": ["a"]}, "payload.category", "must be a string"),
        ("USER_CREATED", {"email": "not-an-email"}, "payload.email", "email"),
        ("PAYMENT_COMPLETED", {"amount": 0}, "payload.amount", "positive"),
        ("PAYMENT_REQUESTED", {"amount": None}, "payload.amount", "amount"),
        ("CHAT_MESSAGE_SENT", {"message": "x" * 1001}, "payload.message", "too long"),
        ("CHAT_MESSAGE_SENT", {"message": "a\x00b"}, "payload.message", "NUL"),
    ],
)
def test_payload_errors_name_the_field(
    event_type: str, change: dict[str, Any], field: str, fragment: str
) -> None:
    payload = {**PAYLOADS[event_type], **change}
    error = refused(body(eventType=event_type, payload=payload))
    assert isinstance(error, ValidationFailed)
    assert error.details == {"field": field}
    assert fragment.lower() in error.message.lower()
    assert field.rsplit(".", 1)[-1].lower() in error.message.lower()


def test_lone_surrogates_are_refused() -> None:
    raw = body().replace("아이폰".encode(), b"\\ud800")
    error = refused(raw)
    assert error.details == {"field": "payload.title"}
    assert "surrogate" in error.message


def test_nul_in_an_ignored_key_is_ignored() -> None:
    """Unknown fields are dropped (the document allows them), whatever they hold."""
    raw = body(payload={**PAYLOADS["ITEM_CREATED"], "a\x00": "\x00"})
    event = parse_publish(raw, event_id=EVENT_ID, now=NOW)
    assert "a\x00" not in event.payload


def test_nul_in_an_optional_field_is_refused() -> None:
    error = refused(body(correlationId="a\x00"))
    assert error.details == {"field": "correlationId"}


@pytest.mark.parametrize(("raw", "limit"), [(None, 20), ("0", 0), ("5", 5), ("100", 100)])
def test_limit(raw: str | None, limit: int) -> None:
    query = {} if raw is None else {"limit": raw}
    assert parse_query(RecentQuery, query).limit == limit


@pytest.mark.parametrize("raw", ["-1", "101", "abc", "1.5", "9" * 50, "", " 5"])
def test_bad_limit(raw: str) -> None:
    """An empty ``limit=`` too: the document says integer (schemathesis found it answered 200)."""
    with pytest.raises(BadRequest) as caught:
        parse_query(RecentQuery, {"limit": raw})
    assert caught.value.details == {"field": "limit"}
    assert "whole number from 0 to 100" in caught.value.message
