"""The records an accepted event sends to the aggregate stages, keyed by what they count.

Forwarding to a topic keyed by the new key is Faust's repartitioning (what ``group_by`` does),
done explicitly so each record keeps the source position the aggregates use to skip replays.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import EventType
from karrot_streams.pipeline.messages import Accepted
from karrot_streams.tables.declarations import DAY
from karrot_streams.tables.facts import (
    CURRENCY,
    AnyFact,
    FactBase,
    ListedFact,
    NewUserFact,
    SoldFact,
    table_key,
)

UNKNOWN_REGION = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Fact:
    topic: str
    key: str
    value: AnyFact
    #: The day of a fact counted in daily windows: the facts one window's value sees are a chain.
    day: int | None = None

    @property
    def chain(self) -> tuple[str, str, str, int | None]:
        """The facts that name each other in ``prev`` (tables/facts.py): one table value's."""
        return self.topic, self.key, self.value["source"], self.day

    def encoded(self, prev: int | None = None) -> tuple[bytes, bytes]:
        # Keys as JSON strings: the bytes Faust tables use, so partitions line up (table_route).
        value = self.value if prev is None else {**self.value, "prev": prev}
        return table_key(self.key), orjson.dumps(value)


def day_of(occurred_at: float) -> int:
    """The daily window (tables/declarations.py: tumbling, from the epoch) of an event time."""
    return int(occurred_at // DAY)


def facts_for(accepted: Accepted, topics: InternalTopics) -> list[Fact]:
    event = accepted.event
    payload = event.payload
    incoming = accepted.incoming
    base: FactBase = {
        "occurred_at": event.occurred_at.timestamp(),
        "source": f"{incoming.topic}:{incoming.partition}",
        "offset": incoming.offset,
        "event_id": event.event_id,
    }
    derived = accepted.enriched["derived"]
    if event.event_type is EventType.ITEM_CREATED:
        listed: ListedFact = {
            **base,
            "kind": "LISTED",
            "item_id": payload["itemId"],
            "seller_id": payload["sellerId"],
            "category": derived["categoryNormalized"],
            "amount": payload["price"],
        }
        return [Fact(topics.item_facts, payload["itemId"], listed)]
    if event.event_type is EventType.PAYMENT_COMPLETED:
        sale: SoldFact = {
            **base,
            "kind": "SOLD",
            "item_id": payload["itemId"],
            "seller_id": payload["sellerId"],
            "amount": payload["amount"],
            "fee": derived["feeAmount"],
            "net": derived["netAmount"],
        }
        return [
            Fact(topics.item_facts, payload["itemId"], sale),
            Fact(topics.seller_facts, payload["sellerId"], sale),
            Fact(topics.volume_facts, CURRENCY, sale, day_of(sale["occurred_at"])),
        ]
    if event.event_type is EventType.USER_CREATED:
        region = derived.get("regionNormalized") or UNKNOWN_REGION
        user: NewUserFact = {**base, "kind": "USER", "region": region}
        return [Fact(topics.user_facts, region, user, day_of(user["occurred_at"]))]
    return []
