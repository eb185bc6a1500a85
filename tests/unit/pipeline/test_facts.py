"""The facts of each event kind, byte for byte as the aggregate stages read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from karrot_streams.events.model import Event
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import EventType
from karrot_streams.pipeline.facts import facts_for
from karrot_streams.pipeline.messages import Accepted, Incoming

TOPICS = InternalTopics("karrot")
AT = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def accepted(kind: EventType, payload: dict[str, Any], derived: dict[str, Any]) -> Accepted:
    event = Event("e-1", kind, "agg-1", AT, "Record", payload)
    return Accepted(Incoming("item-events", 3, 42, b"k", b"v"), event, {"derived": derived})


def encoded(value: Accepted) -> list[tuple[str, bytes, bytes]]:
    return [(fact.topic, *fact.encoded()) for fact in facts_for(value, TOPICS)]


BASE = b'"occurred_at":1714555800.0,"source":"item-events:3","offset":42,"event_id":"e-1"'


def test_a_listing() -> None:
    listing = accepted(
        EventType.ITEM_CREATED,
        {"itemId": "i-1", "sellerId": "s-1", "price": 1200},
        {"categoryNormalized": "디지털기기"},
    )
    assert encoded(listing) == [
        (
            "karrot.facts.items",
            b'"i-1"',
            b"{" + BASE + b',"kind":"LISTED","item_id":"i-1","seller_id":"s-1",'
            b'"category":"\xeb\x94\x94\xec\xa7\x80\xed\x84\xb8\xea\xb8\xb0\xea\xb8\xb0",'
            b'"amount":1200}',
        )
    ]


def test_a_sale_goes_to_three_stages() -> None:
    sale = accepted(
        EventType.PAYMENT_COMPLETED,
        {"itemId": "i-1", "sellerId": "s-1", "amount": 1000},
        {"feeAmount": 30, "netAmount": 970},
    )
    value = (
        b"{" + BASE + b',"kind":"SOLD","item_id":"i-1","seller_id":"s-1",'
        b'"amount":1000,"fee":30,"net":970}'
    )
    assert encoded(sale) == [
        ("karrot.facts.items", b'"i-1"', value),
        ("karrot.facts.sellers", b'"s-1"', value),
        ("karrot.facts.payment-volume", b'"KRW"', value),
    ]


def test_a_new_user_without_region() -> None:
    user = accepted(EventType.USER_CREATED, {}, {"regionNormalized": None})
    assert encoded(user) == [
        (
            "karrot.facts.new-users",
            b'"UNKNOWN"',
            b"{" + BASE + b',"kind":"USER","region":"UNKNOWN"}',
        )
    ]


def test_other_events_have_no_facts() -> None:
    assert encoded(accepted(EventType.CHAT_MESSAGE_SENT, {}, {})) == []
