"""Batch publishing: parsing, per-event results, statuses, and order within an aggregate."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from karrot_streams.events.model import Event
from karrot_streams.publishing.batch import publish_batch
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.publishing.events import Published
from karrot_streams.web.batch_views import BatchResult, batch_result
from karrot_streams.web.http.errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    ValidationFailed,
)
from karrot_streams.web.http.requests import parse_batch

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def item(aggregate: str, price: int = 1000) -> dict[str, Any]:
    return {
        "eventType": "ITEM_CREATED",
        "aggregateId": aggregate,
        "payload": {
            "itemId": aggregate,
            "sellerId": "s-1",
            "title": "자전거",
            "price": price,
            "category": "스포츠/레저",
        },
    }


def parse(events: Any, maximum: int = 10) -> list[Event | ApiError]:
    counter = itertools.count(1)
    return parse_batch(
        json.dumps({"events": events}).encode(),
        maximum=maximum,
        now=NOW,
        new_id=lambda: f"id-{next(counter)}",
    )


def test_each_event_parsed_or_refused() -> None:
    parsed = parse([item("a"), item("b", price=-1), "nope", {"eventType": "ITEM_CREATED"}])
    assert isinstance(parsed[0], Event)
    assert parsed[0].event_id == "id-1"
    assert isinstance(parsed[1], ValidationFailed)
    assert parsed[1].details == {"field": "payload.price"}
    assert isinstance(parsed[2], BadRequest)
    assert parsed[2].message == "An event must be a JSON object, not a string"
    assert isinstance(parsed[3], ValidationFailed)


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'{"event": []}', b'{"events": {}}', b'{"events": [], "x": 1}', b'{"events": []}'],
)
def test_body_must_be_a_list_of_events(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_batch(raw, maximum=10, now=NOW, new_id=lambda: "x")


def test_over_the_limit() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse([item("a")] * 11)
    assert caught.value.details == {"maxEvents": 10, "events": 11}
    assert len(parse([item("a")] * 10)) == 10


@dataclass
class FakePublisher:
    """Publishes after a delay; refuses events whose price is 13."""

    log: list[str] = field(default_factory=list)
    running: int = 0
    most: int = 0
    offsets: itertools.count[int] = field(default_factory=itertools.count)

    async def publish(self, event: Event) -> Published:
        self.running += 1
        self.most = max(self.most, self.running)
        self.log.append(f"start {event.aggregate_id} {event.event_id}")
        await asyncio.sleep(0.01)
        self.running -= 1
        if event.payload["price"] == 13:
            raise PublishUnavailable("Kafka did not accept the event", details={"eventId": "x"})
        self.log.append(f"done {event.aggregate_id} {event.event_id}")
        return Published(event.event_id, NOW, "item-events", 2, next(self.offsets))


async def test_results_in_request_order() -> None:
    items = parse([item("a"), item("b", price=-1), item("c", price=13), item("d")])
    publisher = FakePublisher()
    result = batch_result(await publish_batch(publisher, items))
    assert result.status == 207
    assert [r["index"] for r in result.results] == [0, 1, 2, 3]
    assert result.results[0] == {
        "index": 0,
        "eventId": "id-1",
        "status": "PUBLISHED",
        "topic": "item-events",
        "partition": 2,
        "offset": result.results[0]["offset"],
    }
    assert result.results[1] == {
        "index": 1,
        "status": "FAILED",
        "code": "EVENT_VALIDATION_FAILED",
        "message": "Price cannot be negative",
        "details": {"field": "payload.price"},
    }
    assert result.results[2]["code"] == "SERVICE_UNAVAILABLE"
    assert result.results[2]["details"] == {"eventId": "x"}
    assert result.results[3]["status"] == "PUBLISHED"


async def test_one_aggregate_in_order_others_at_once() -> None:
    items = parse([item("a"), item("b"), item("a"), item("c"), item("a")])
    publisher = FakePublisher()
    result = batch_result(await publish_batch(publisher, items))
    assert result.status == 200
    steps_of_a = [line for line in publisher.log if " a " in line]
    assert steps_of_a == [
        "start a id-1",
        "done a id-1",
        "start a id-3",
        "done a id-3",
        "start a id-5",
        "done a id-5",
    ]
    assert publisher.most == 3  # a, b and c at the same time
    offsets = [result.results[i]["offset"] for i in (0, 2, 4)]
    assert offsets == sorted(offsets)


async def test_concurrency_is_bounded() -> None:
    publisher = FakePublisher()
    await publish_batch(publisher, parse([item(str(n)) for n in range(10)]), concurrency=4)
    assert publisher.most == 4


def test_statuses() -> None:
    published = {"status": "PUBLISHED"}
    failed = {"status": "FAILED"}
    assert BatchResult([published, published]).status == 200
    assert BatchResult([published, failed]).status == 207
    assert BatchResult([failed, failed]).status == 422
