"""Publish a batch of events: each validated, stored and produced as ``POST /api/v1/events`` does.

Events of different aggregates are published concurrently; events of one aggregate one after the
other, in request order, each acknowledged by Kafka before the next is sent. They share a key
(the aggregate id), hence a partition, so their offsets follow the request's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from karrot_streams.events.model import Event
from karrot_streams.store.event_store import Status
from karrot_streams.web.http.errors import ApiError, BadRequest, PayloadTooLarge
from karrot_streams.web.http.requests import parse_event_request, parse_json_object
from karrot_streams.web.publishing import Published

#: Aggregates published at the same time (the store's pool bounds the real parallelism).
CONCURRENT_AGGREGATES = 32
FAILED = "FAILED"


class Publisher(Protocol):
    async def publish(self, event: Event) -> Published: ...


def parse_batch(
    body: bytes, *, maximum: int, now: datetime, new_id: Callable[[], str]
) -> list[Event | ApiError]:
    """Each item of ``{"events": [...]}`` as its Event, or the error that refuses it."""
    request = parse_json_object(body)
    events = request.get("events")
    if set(request) != {"events"} or not isinstance(events, list):
        raise BadRequest(
            'Request body must be {"events": [<event>, ...]}', details={"field": "events"}
        )
    if not events:
        raise BadRequest("events must not be empty", details={"field": "events"})
    if len(events) > maximum:
        raise PayloadTooLarge(
            f"A batch holds at most {maximum} events, got {len(events)}",
            details={"maxEvents": maximum, "events": len(events)},
        )
    parsed: list[Event | ApiError] = []
    for item in events:
        try:
            parsed.append(parse_event_request(item, event_id=new_id(), now=now))
        except ApiError as exc:
            parsed.append(exc)
    return parsed


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: list[dict[str, Any]]

    @property
    def published(self) -> int:
        return sum(1 for result in self.results if result["status"] != FAILED)

    @property
    def status(self) -> int:
        """200 when every event was published, 422 when none was, else 207."""
        if self.published == len(self.results):
            return 200
        return 422 if self.published == 0 else 207

    def to_json(self) -> dict[str, Any]:
        return {"results": self.results}


async def publish_batch(
    publisher: Publisher,
    items: Sequence[Event | ApiError],
    *,
    concurrency: int = CONCURRENT_AGGREGATES,
) -> BatchResult:
    results: list[dict[str, Any]] = [{} for _ in items]
    lanes: dict[str, list[tuple[int, Event]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, ApiError):
            results[index] = failed_json(index, item)
        else:
            lanes.setdefault(item.aggregate_id, []).append((index, item))
    slots = asyncio.Semaphore(concurrency)

    async def lane(events: list[tuple[int, Event]]) -> None:
        async with slots:
            for index, event in events:
                try:
                    published = await publisher.publish(event)
                except ApiError as exc:
                    results[index] = failed_json(index, exc)
                else:
                    results[index] = published_json(index, published)

    await asyncio.gather(*(lane(events) for events in lanes.values()))
    return BatchResult(results)


def published_json(index: int, published: Published) -> dict[str, Any]:
    return {
        "index": index,
        "eventId": published.event_id,
        "status": Status.PUBLISHED.value,
        "topic": published.topic,
        "partition": published.partition,
        "offset": published.offset,
    }


def failed_json(index: int, error: ApiError) -> dict[str, Any]:
    return {
        "index": index,
        "status": FAILED,
        "code": error.code,
        "message": error.message,
        "details": error.details,
    }
