"""A registry that lost its state gives old ids to other schemas: both readings must work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import encode
from karrot_streams.avro.registry import SchemaRegistry, WriterSchema
from karrot_streams.events.model import Event
from karrot_streams.events.types import NAMESPACE, EventType
from karrot_streams.pipeline.classify import classify
from karrot_streams.pipeline.messages import Accepted, Incoming, Rejected

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def writer(subject: str, schema_id: int) -> WriterSchema:
    loaded = schemas.load(subject)
    return WriterSchema(schema_id, loaded.record_name, loaded.parsed)


def user_event() -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=EventType.USER_CREATED,
        aggregate_id="u1",
        occurred_at=NOW,
        payload_record=f"{NAMESPACE}.UserCreated",
        payload={"userId": "u1", "email": "u1@karrot.example", "nickname": "당근", "region": None},
    )


def item_event() -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=EventType.ITEM_CREATED,
        aggregate_id="i1",
        occurred_at=NOW,
        payload_record=f"{NAMESPACE}.ItemCreated",
        payload={
            "itemId": "i1",
            "sellerId": "s1",
            "title": "자전거",
            "price": 1000,
            "category": "도서",
            "region": None,
        },
    )


def incoming(topic: str, value: bytes) -> Incoming:
    return Incoming(topic=topic, partition=0, offset=1, key=b"k", value=value)


class ResetRegistry(SchemaRegistry):
    """Id 5 was user-events; after the reset the registry says it is item-events."""

    def __init__(self) -> None:
        super().__init__("http://registry.invalid")
        self.fetches = 0
        self._remember(writer("user-events-value", 5))

    async def _fetch(self, schema_id: int) -> WriterSchema:
        self.fetches += 1
        return writer("item-events-value", schema_id)


async def test_new_meaning_of_a_cached_id_is_fetched_and_the_old_one_kept() -> None:
    registry = ResetRegistry()
    item = writer("item-events-value", 5)
    new = await classify(
        incoming("item-events", encode(5, item.parsed, item_event().to_avro())),
        registry,
        Decimal("0.033"),
        NOW,
    )
    assert isinstance(new, Accepted), new
    user = writer("user-events-value", 5)
    old = await classify(
        incoming("user-events", encode(5, user.parsed, user_event().to_avro())),
        registry,
        Decimal("0.033"),
        NOW,
    )
    assert isinstance(old, Accepted), old
    assert registry.fetches == 1


async def test_poison_under_every_meaning_is_dead_lettered_and_rechecks_throttled() -> None:
    registry = ResetRegistry()
    for _ in range(5):
        outcome = await classify(
            incoming("item-events", b"\x00\x00\x00\x00\x05garbage"),
            registry,
            Decimal("0.033"),
            NOW,
        )
        assert isinstance(outcome, Rejected)
    assert registry.fetches == 1
