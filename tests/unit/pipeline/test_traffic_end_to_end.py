"""The demo traffic through the whole core in process: a testing source (karrot_streams.traffic),
BatchHandler over fakes, the aggregate stages over fake tables, and the tables as the sink."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import EventType, value_subject
from karrot_streams.monitoring.health import Health
from karrot_streams.monitoring.metrics import Metrics
from karrot_streams.pipeline.handler import BatchHandler
from karrot_streams.pipeline.messages import Accepted, Incoming, Rejected
from karrot_streams.resilience.backoff import Backoff
from karrot_streams.store.event_store import Status
from karrot_streams.tables.agents import Stages
from karrot_streams.traffic import TrafficSpec, records
from tests.unit.pipeline.fakes import (
    INPUT_SCHEMA_IDS,
    FakeRegistry,
    FakeSend,
    FakeStore,
    enriched_writers,
    writer_of,
)
from tests.unit.tables.fakes import (
    FakeEvent,
    FakeTable,
    Journal,
    category_effects,
    fake_tables,
    item_facts,
    partition_of,
    sale_facts,
)

TOPICS = InternalTopics("karrot-test")
FEE_RATE = Decimal("0.033")


def input_writers() -> dict[str, WriterSchema]:
    return {t: writer_of(value_subject(t), n) for t, n in INPUT_SCHEMA_IDS.items()}


def handler(store: FakeStore, send: FakeSend) -> BatchHandler:
    return BatchHandler(
        registry=FakeRegistry(),
        store=store,
        send=send,
        topics=TOPICS,
        enriched_writers=enriched_writers(),
        fee_rate=FEE_RATE,
        retry_attempts=2,
        backoff=Backoff(0.0, 0.0),
        health=Health(),
        metrics=Metrics.create(),
    )


async def test_generated_traffic_is_split_into_valid_and_poison_as_generated() -> None:
    spec = TrafficSpec(count=400, poison_share=0.2, seed=11)
    generated = list(records(spec, input_writers()))
    offsets: Counter[str] = Counter()
    batch: list[Incoming] = []
    for record in generated:
        batch.append(Incoming(record.topic, 0, offsets[record.topic], record.key, record.raw))
        offsets[record.topic] += 1
    store, send = FakeStore(), FakeSend()

    outcomes = await handler(store, send).handle(batch)

    for record, outcome in zip(generated, outcomes, strict=True):
        expected = Rejected if record.poison else Accepted
        assert isinstance(outcome, expected), (record.poison, outcome)
    poison = sum(1 for r in generated if r.poison)
    assert 0 < poison < len(generated)
    assert sum(len(send.to(f"dlq.{t}")) for t in INPUT_SCHEMA_IDS) == poison
    assert sum(len(send.to(f"enriched.{t}")) for t in INPUT_SCHEMA_IDS) == len(generated) - poison
    processed = [r for r in store.rows.values() if r.status is Status.PROCESSED]
    assert len(processed) == len(generated) - poison


async def test_generated_sales_add_up_in_the_seller_and_category_tables() -> None:
    spec = TrafficSpec(count=300, seed=3, sellers=20)
    generated = list(records(spec, input_writers()))
    send = FakeSend()
    await handler(FakeStore(), send).handle(
        [Incoming(r.topic, 0, n, r.key, r.raw) for n, r in enumerate(generated)]
    )
    effects: list[FakeEvent] = []

    async def send_effects(out: list[Any]) -> None:
        for topic, key, value, _ in out:
            effects.append(FakeEvent(topic, partition_of(key), len(effects), key, value))

    tables = fake_tables(Journal())
    stages = Stages(tables, TOPICS, send_effects)

    def facts(topic: str) -> list[FakeEvent]:
        return [
            FakeEvent(topic, partition_of(key or b""), n, key or b"", value or b"")
            for n, (_, key, value, _) in enumerate(send.to(topic))
        ]

    await stages.items(item_facts(facts(TOPICS.item_facts)))
    await stages.sellers(sale_facts(facts(TOPICS.seller_facts)))
    await stages.categories(category_effects(effects))

    sales = [
        r.event for r in generated if r.event and r.event.event_type is EventType.PAYMENT_COMPLETED
    ]
    assert sales
    by_seller: Counter[str] = Counter()
    for sale in sales:
        by_seller[sale.payload["sellerId"]] += sale.payload["amount"]
    sellers = tables.sellers
    assert isinstance(sellers, FakeTable)
    assert {s: v["gross_amount"] for s, v in sellers.data.items()} == dict(by_seller)
    categories = tables.categories
    assert isinstance(categories, FakeTable)
    listings = [
        r.event for r in generated if r.event and r.event.event_type is EventType.ITEM_CREATED
    ]
    assert sum(v["item_count"] for v in categories.data.values()) == len(listings)
    # Every sale is of an item listed earlier in the stream: each counts for its category.
    assert sum(v["sold_amount"] for v in categories.data.values()) == sum(by_seller.values())
