"""The records an accepted event sends to the aggregate stages, keyed by what they count.

Forwarding to a topic keyed by the new key is Faust's repartitioning (what ``group_by`` does),
done explicitly so each record keeps the source position the aggregates use to skip replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import EventType
from karrot_streams.pipeline.messages import Accepted
from karrot_streams.tables import codec

UNKNOWN_REGION = "UNKNOWN"
CURRENCY = "KRW"


@dataclass(frozen=True, slots=True)
class Fact:
    topic: str
    key: str
    value: dict[str, Any]

    def encoded(self) -> tuple[bytes, bytes]:
        # Keys as JSON strings: the bytes Faust tables use, so partitions line up (table_route).
        return table_key(self.key), orjson.dumps(self.value)


def facts_for(accepted: Accepted, topics: InternalTopics) -> list[Fact]:
    event = accepted.event
    payload = event.payload
    incoming = accepted.incoming
    base = {
        "occurred_at": event.occurred_at.timestamp(),
        "source": f"{incoming.topic}:{incoming.partition}",
        "offset": incoming.offset,
        "event_id": event.event_id,
    }
    derived = accepted.enriched["derived"]
    if event.event_type is EventType.ITEM_CREATED:
        return [
            Fact(
                topics.item_facts,
                payload["itemId"],
                {
                    **base,
                    "kind": "LISTED",
                    "item_id": payload["itemId"],
                    "seller_id": payload["sellerId"],
                    "category": derived["categoryNormalized"],
                    "amount": payload["price"],
                },
            )
        ]
    if event.event_type is EventType.PAYMENT_COMPLETED:
        sale = {
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
        return [Fact(topics.user_facts, region, {**base, "kind": "USER", "region": region})]
    return []


def table_key(key: str) -> bytes:
    """A key serialised exactly as Faust serialises a ``str`` table key (JSON, Faust's codec)."""
    return codec.key_bytes(key)
