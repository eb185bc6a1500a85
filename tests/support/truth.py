"""What the aggregates must say, computed straight from the input records."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from karrot_streams.events.enrichment import normalize_category, payment_fee
from karrot_streams.events.types import EventType
from karrot_streams.tables.aggregates import iso
from karrot_streams.traffic import Record


@dataclass
class Truth:
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    sellers: dict[str, dict[str, Any]] = field(default_factory=dict)
    valid_ids: set[str] = field(default_factory=set)
    failed_ids: set[str] = field(default_factory=set)
    enriched: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)


def compute(records: Iterable[Record], fee_rate: Decimal) -> Truth:
    truth = Truth()
    records = list(records)
    item_category: dict[str, str] = {}
    prices: dict[str, list[int]] = defaultdict(list)
    sold: Counter[str] = Counter()
    sold_amount: Counter[str] = Counter()
    for record in records:
        if record.poison:
            truth.dead_letters[f"dlq.{record.topic}"] += 1
            if record.poison == "invalid-event" and record.event is not None:
                truth.failed_ids.add(record.event.event_id)
            continue
        event = record.event
        assert event is not None
        truth.valid_ids.add(event.event_id)
        truth.enriched[f"enriched.{record.topic}"] += 1
        payload = event.payload
        if event.event_type is EventType.ITEM_CREATED and payload["itemId"] not in item_category:
            category = normalize_category(payload["category"])
            item_category[payload["itemId"]] = category
            prices[category].append(payload["price"])
    for record in records:
        event = record.event
        if record.poison or event is None or event.event_type is not EventType.PAYMENT_COMPLETED:
            continue
        payload = event.payload
        sold_category = item_category.get(payload["itemId"])
        if sold_category is not None:
            sold[sold_category] += 1
            sold_amount[sold_category] += payload["amount"]
        fee, net = payment_fee(payload["amount"], fee_rate)
        seller = truth.sellers.setdefault(
            payload["sellerId"],
            {
                "sellerId": payload["sellerId"],
                "salesCount": 0,
                "grossAmount": 0,
                "feeAmount": 0,
                "netAmount": 0,
                "lastSaleAt": None,
                "_last": 0.0,
            },
        )
        seller["salesCount"] += 1
        seller["grossAmount"] += payload["amount"]
        seller["feeAmount"] += fee
        seller["netAmount"] += net
        seller["_last"] = max(seller["_last"], event.occurred_at.timestamp())
        seller["lastSaleAt"] = iso(seller["_last"])
    for seller in truth.sellers.values():
        del seller["_last"]
    for category, listed in prices.items():
        truth.categories[category] = {
            "category": category,
            "itemCount": len(listed),
            "totalPrice": sum(listed),
            "averagePrice": sum(listed) / len(listed),
            "minPrice": min(listed),
            "maxPrice": max(listed),
            "soldCount": sold[category],
            "soldAmount": sold_amount[category],
        }
    return truth
