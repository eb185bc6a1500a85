"""The publish flow against fakes: CREATED, produce, PUBLISHED; FAILED and 503 when Kafka fails."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.avro.schemas import load
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.model import Event
from karrot_streams.events.types import PAYLOAD_RECORD_OF, EventType
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.publishing.events import EventPublisher
from karrot_streams.store.event_store import Status, StoreRow

NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
LATER = datetime(2024, 5, 1, 9, 30, 1, tzinfo=UTC)


@dataclass
class Metadata:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeStore:
    rows: list[StoreRow] = field(default_factory=list)
    published: list[tuple[str, datetime]] = field(default_factory=list)
    down: bool = False
    mark_fails: bool = False

    async def upsert(self, rows: Iterable[StoreRow]) -> None:
        if self.down:
            raise TransientFailure("PostgreSQL unavailable: Connection refused")
        self.rows.extend(rows)

    async def mark_published(self, event_id: str, published_at: datetime) -> None:
        if self.mark_fails:
            raise TransientFailure("PostgreSQL unavailable")
        self.published.append((event_id, published_at))


@dataclass
class FakeKafka:
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)
    refuse: BaseException | None = None
    hang: bool = False

    async def send(self, topic: str, key: bytes, value: bytes, headers: Any = None) -> Any:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((topic, key, value))
        self.headers.append(headers)
        future: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        if not self.hang:
            future.set_result(Metadata(topic, 2, 41))
        return future


def writers() -> dict[str, WriterSchema]:
    schema = load("item-events-value")
    return {"item-events": WriterSchema(7, schema.record_name, schema.parsed)}


def event() -> Event:
    return Event(
        event_id="5b0e8c9e-4e5f-4a43-9c39-2b8f1b3a2d10",
        event_type=EventType.ITEM_CREATED,
        aggregate_id="item-1",
        occurred_at=NOW,
        payload_record=PAYLOAD_RECORD_OF[EventType.ITEM_CREATED],
        payload={
            "itemId": "item-1",
            "sellerId": "s1",
            "title": "아이폰",
            "price": 1000,
            "category": "디지털기기",
            "region": None,
        },
    )


def publisher(store: FakeStore, kafka: FakeKafka, timeout_s: float = 1.0) -> EventPublisher:
    return EventPublisher(
        store=store,
        send=kafka.send,
        writers=writers(),
        kafka_timeout_s=timeout_s,
        clock=lambda: LATER,
    )


async def test_publish_stores_produces_and_marks_published() -> None:
    store, kafka = FakeStore(), FakeKafka()
    published = await publisher(store, kafka).publish(event())
    assert [row.status for row in store.rows] == [Status.CREATED]
    assert store.published == [(event().event_id, LATER)]
    topic, key, value = kafka.sent[0]
    assert (topic, key) == ("item-events", b"item-1")
    schema_id, avro = unframe(value)
    assert schema_id == 7
    decoded = fastavro.schemaless_reader(
        io.BytesIO(avro), writers()["item-events"].parsed, None, return_record_name=True
    )
    assert isinstance(decoded, dict)
    assert decoded["eventId"] == event().event_id
    assert decoded["payload"][1]["title"] == "아이폰"
    assert published.to_json() == {
        "eventId": event().event_id,
        "status": "PUBLISHED",
        "publishedAt": "2024-05-01T09:30:01.000Z",
        "topic": "item-events",
        "partition": 2,
        "offset": 41,
    }


async def test_kafka_refusing_leaves_a_failed_row_and_answers_503() -> None:
    store, kafka = FakeStore(), FakeKafka(refuse=RuntimeError("broker gone"))
    with pytest.raises(PublishUnavailable) as caught:
        await publisher(store, kafka).publish(event())
    assert [row.status for row in store.rows] == [Status.CREATED, Status.FAILED]
    assert store.rows[1].failure_reason == "RuntimeError: broker gone"
    assert caught.value.details == {
        "eventId": event().event_id,
        "reason": "RuntimeError: broker gone",
    }
    assert store.published == []


async def test_kafka_not_acknowledging_in_time_is_a_failure() -> None:
    store, kafka = FakeStore(), FakeKafka(hang=True)
    with pytest.raises(PublishUnavailable):
        await publisher(store, kafka, timeout_s=0.05).publish(event())
    assert store.rows[-1].status is Status.FAILED
    assert store.rows[-1].failure_reason is not None
    assert "no answer within" in store.rows[-1].failure_reason


async def test_database_down_answers_503_and_produces_nothing() -> None:
    store, kafka = FakeStore(down=True), FakeKafka()
    with pytest.raises(PublishUnavailable) as caught:
        await publisher(store, kafka).publish(event())
    assert kafka.sent == []
    assert "event store" in caught.value.message


async def test_published_even_if_marking_it_fails() -> None:
    store, kafka = FakeStore(mark_fails=True), FakeKafka()
    published = await publisher(store, kafka).publish(event())
    assert published.offset == 41


async def test_the_request_trace_context_goes_on_the_record() -> None:
    store, kafka = FakeStore(), FakeKafka()
    trace = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    await EventPublisher(
        store=store, send=kafka.send, writers=writers(), headers=trace, clock=lambda: LATER
    ).publish(event())
    assert kafka.headers == [trace]


async def test_without_trace_context_the_record_has_no_headers() -> None:
    store, kafka = FakeStore(), FakeKafka()
    await publisher(store, kafka).publish(event())
    assert kafka.headers == [[]]
