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

    def encoded(self) -> tuple[bytes, bytes]:
        # Keys as JSON strings: the bytes Faust tables use, so partitions line up (table_route).
        return table_key(self.key), orjson.dumps(self.value)


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
            Fact(topics.volume_facts, CURRENCY, sale),
        ]
    if event.event_type is EventType.USER_CREATED:
        region = derived.get("regionNormalized") or UNKNOWN_REGION
        user: NewUserFact = {**base, "kind": "USER", "region": region}
        return [Fact(topics.user_facts, region, user)]
    return []
