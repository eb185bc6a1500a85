"""Publish a batch of events: each stored and produced as one ``EventPublisher.publish`` does.

Events of different aggregates are published concurrently; events of one aggregate one after the
other, in request order, each acknowledged by Kafka before the next is sent. They share a key
(the aggregate id), hence a partition, so their offsets follow the request's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, TypeVar

from karrot_streams.events.model import Event
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.publishing.events import Published

#: Aggregates published at the same time (the store's pool bounds the real parallelism).
CONCURRENT_AGGREGATES = 32

#: Whatever stands in the batch for an item refused before publishing (the caller's kind).
Refused = TypeVar("Refused")


class Publisher(Protocol):
    async def publish(self, event: Event) -> Published: ...


async def publish_batch(
    publisher: Publisher,
    items: Sequence[Event | Refused],
    *,
    concurrency: int = CONCURRENT_AGGREGATES,
) -> list[Published | PublishUnavailable | Refused]:
    """The outcome of each item, in request order; refused items stand for themselves."""
    outcomes: dict[int, Published | PublishUnavailable | Refused] = {}
    lanes: dict[str, list[tuple[int, Event]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, Event):
            lanes.setdefault(item.aggregate_id, []).append((index, item))
        else:
            outcomes[index] = item
    slots = asyncio.Semaphore(concurrency)

    async def lane(events: list[tuple[int, Event]]) -> None:
        async with slots:
            for index, event in events:
                try:
                    outcomes[index] = await publisher.publish(event)
                except PublishUnavailable as exc:
                    outcomes[index] = exc

    await asyncio.gather(*(lane(events) for events in lanes.values()))
    return [outcomes[index] for index in range(len(items))]
