"""The aggregate stages over fake tables and events, and the replay guard as a property: any
redelivery pattern and crash point leaves the tables as one clean pass does."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karrot_streams.events.enrichment import enrich
from karrot_streams.events.model import Event
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import PAYLOAD_RECORD_OF, EventType
from karrot_streams.pipeline.facts import facts_for
from karrot_streams.pipeline.messages import Accepted, Incoming
from karrot_streams.runtime.producer import Record
from karrot_streams.tables import agents as table_agents
from karrot_streams.tables.agents import BatchStep, Stages, batched
from karrot_streams.tables.declarations import Tables
from karrot_streams.tables.facts import table_key
from karrot_streams.tables.replay_guard import position_of
from tests.unit.tables.fakes import (
    PARTITIONS,
    Crash,
    FakeEvent,
    FakeTable,
    Journal,
    category_effects,
    fact_event,
    fake_tables,
    item_facts,
    partition_of,
    sale_facts,
    values,
)

TOPICS = InternalTopics("karrot-test")
FEE_RATE = Decimal("0.033")
EPOCH = datetime(2026, 11, 30, tzinfo=UTC)
BatchOf = list[tuple[Any, dict[str, Any]]]


def decoded(events: list[FakeEvent]) -> BatchOf:
    """What ``batched`` hands a stage: each event with its JSON value read."""
    return [(event, orjson.loads(event.value)) for event in events]


def table(obj: Any) -> FakeTable:
    assert isinstance(obj, FakeTable)
    return obj


# -- facts as the pipeline makes them ----------------------------------------------------------


def accepted(
    event_type: EventType,
    payload: dict[str, Any],
    *,
    topic: str,
    partition: int,
    offset: int,
    hour: int = 0,
) -> Accepted:
    event = Event(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        aggregate_id=str(next(iter(payload.values()))),
        occurred_at=EPOCH + timedelta(hours=hour),
        payload_record=PAYLOAD_RECORD_OF[event_type],
        payload=payload,
    )
    incoming = Incoming(topic, partition, offset, None, None)
    return Accepted(incoming, event, enrich(event, incoming.position, EPOCH, FEE_RATE))


def listing(
    item: str, category: str, price: int, *, offset: int, partition: int = 0, hour: int = 0
) -> Accepted:
    payload = {
        "itemId": item,
        "sellerId": "s1",
        "title": "t",
        "price": price,
        "category": category,
        "region": None,
    }
    return accepted(
        EventType.ITEM_CREATED,
        payload,
        topic="item-events",
        partition=partition,
        offset=offset,
        hour=hour,
    )


def sale(
    item: str, seller: str, amount: int, *, offset: int, partition: int = 0, hour: int = 0
) -> Accepted:
    payload = {
        "paymentId": f"p{offset}",
        "buyerId": "b1",
        "sellerId": seller,
        "itemId": item,
        "amount": amount,
    }
    return accepted(
        EventType.PAYMENT_COMPLETED,
        payload,
        topic="payment-events",
        partition=partition,
        offset=offset,
        hour=hour,
    )


def new_user(region: str | None, *, offset: int, partition: int = 0, hour: int = 0) -> Accepted:
    payload = {"userId": f"u{offset}", "email": "u@karrot.example", "nickname": "n"}
    return accepted(
        EventType.USER_CREATED,
        {**payload, "region": region},
        topic="user-events",
        partition=partition,
        offset=offset,
        hour=hour,
    )


def facts_of(events: list[Accepted], topic: str) -> list[FakeEvent]:
    """The fact records ``events`` send to ``topic``, numbered per partition as a log would."""
    out: list[FakeEvent] = []
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    for event in events:
        for fact in facts_for(event, TOPICS):
            if fact.topic == topic:
                record = fact_event(topic, 0, fact.key, fact.value)
                record.message.offset = offsets[record.message.partition]
                offsets[record.message.partition] += 1
                out.append(record)
    return out


class Sent:
    """The stages' send: records what the items stage emits for the category stage."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def __call__(self, records: list[Record]) -> None:
        self.records.extend(records)

    def as_events(self) -> list[FakeEvent]:
        out = []
        for n, (topic, key, value, _) in enumerate(self.records):
            assert key is not None and value is not None
            out.append(FakeEvent(topic, partition_of(key), n, key, value))
        return out


def rig() -> tuple[Stages, Sent]:
    sent = Sent()
    return Stages(fake_tables(Journal()), TOPICS, sent), sent


# -- the item stage ----------------------------------------------------------------------------


async def test_listing_and_sale_of_an_item_emit_category_effects_and_write_it_once() -> None:
    stages, sent = rig()
    events = [
        listing("i1", "도서", 2500, offset=8, partition=1),
        sale("i1", "s1", 3000, offset=4, partition=0),
    ]

    await stages.items(item_facts(facts_of(events, TOPICS.item_facts)))

    effects = [orjson.loads(value or b"") for _, _, value, _ in sent.records]
    item_partition = partition_of(table_key("i1"))
    assert [(e["kind"], e["category"], e["amount"]) for e in effects] == [
        ("LISTED", "도서", 2500),
        ("SOLD", "도서", 3000),
    ]
    assert [(e["source"], e["position"]) for e in effects] == [
        (f"{item_partition}|item-events:1", position_of(8)),
        (f"{item_partition}|payment-events:0", position_of(4)),
    ]
    assert {key for _, key, _, _ in sent.records} == {table_key("도서")}
    assert {topic for topic, _, _, _ in sent.records} == {TOPICS.category_effects}
    items = table(stages.tables.items)
    assert items.writes() == [("i1", item_partition)]
    assert items.data["i1"]["category"] == "도서"
    assert items.data["i1"]["sold_count"] == 1


async def test_a_sale_before_its_listing_waits_in_the_item_then_counts() -> None:
    stages, sent = rig()
    early_sale = sale("i1", "s1", 3000, offset=0)
    later_listing = listing("i1", "가구", 9000, offset=0, hour=1)

    await stages.items(item_facts(facts_of([early_sale], TOPICS.item_facts)))
    assert sent.records == []
    assert table(stages.tables.items).data["i1"]["pending_sales"] == [[3000, EPOCH.timestamp()]]

    await stages.items(item_facts(facts_of([later_listing], TOPICS.item_facts)))
    effects = [orjson.loads(value or b"") for _, _, value, _ in sent.records]
    assert [(e["kind"], e["amount"], e["position"]) for e in effects] == [
        ("LISTED", 9000, position_of(0)),
        ("SOLD", 3000, position_of(0) + 1),
    ]
    assert table(stages.tables.items).data["i1"]["pending_sales"] == []


async def test_a_replayed_item_batch_resends_its_effects_and_changes_no_item() -> None:
    stages, sent = rig()
    batch = item_facts(
        facts_of(
            [listing("i1", "도서", 100, offset=0), sale("i1", "s1", 50, offset=0)],
            TOPICS.item_facts,
        )
    )
    await stages.items(batch)
    first, state = list(sent.records), dict(table(stages.tables.items).data)
    sent.records.clear()

    await stages.items(batch)

    assert sent.records == first  # the same positions: the category stage skips them
    assert table(stages.tables.items).data == state
    assert len(table(stages.tables.items).writes()) == 1  # nothing new to write the 2nd time


async def test_a_second_listing_of_an_item_does_not_count_again() -> None:
    stages, sent = rig()
    events = [listing("i1", "도서", 100, offset=0), listing("i1", "가구", 200, offset=1)]

    await stages.items(item_facts(facts_of(events, TOPICS.item_facts)))

    assert len(sent.records) == 1
    assert table(stages.tables.items).data["i1"]["category"] == "도서"


async def test_item_writes_land_in_the_partition_of_their_own_key() -> None:
    # Items of both partitions in one batch: each write must use an event of its own key.
    items = [f"i{n}" for n in range(8)]
    partitions = {partition_of(table_key(item)) for item in items}
    assert partitions == set(range(PARTITIONS))
    stages, _ = rig()
    events = [listing(item, "c", 1, offset=n) for n, item in enumerate(items)]

    await stages.items(item_facts(facts_of(events, TOPICS.item_facts)))

    for op, key, partition in table(stages.tables.items).partitions:
        assert partition == partition_of(table_key(key)), (op, key)


# -- the category stage ------------------------------------------------------------------------


async def test_categories_count_listings_sales_and_hourly_windows() -> None:
    stages, sent = rig()
    events = [
        listing("i1", "도서", 1000, offset=0, hour=0),
        listing("i2", "도서", 3000, offset=1, hour=0),
        listing("i3", "도서", 2000, offset=2, hour=5),
        sale("i1", "s1", 900, offset=0, hour=6),
        listing("i4", "가구", 50, offset=3, hour=0),
    ]
    await stages.items(item_facts(facts_of(events, TOPICS.item_facts)))

    await stages.categories(category_effects(sent.as_events()))

    books = table(stages.tables.categories).data["도서"]
    assert (books["item_count"], books["total_price"]) == (3, 6000)
    assert (books["min_price"], books["max_price"]) == (1000, 3000)
    assert (books["sold_count"], books["sold_amount"]) == (1, 900)
    hourly = table(stages.tables.category_hourly).data
    start = EPOCH.timestamp()
    first_hour = hourly["도서", (start, start + 3600 - 0.1)]
    assert (first_hour["count"], first_hour["amount"]) == (2, 4000)
    assert hourly["도서", (start + 5 * 3600, start + 6 * 3600 - 0.1)]["count"] == 1
    assert table(stages.tables.categories).data["가구"]["item_count"] == 1
    for op, key, partition in table(stages.tables.category_hourly).partitions:
        category = key[0]
        assert partition == partition_of(table_key(category)), (op, key)


async def test_a_category_effect_delivered_twice_counts_once() -> None:
    stages, sent = rig()
    await stages.items(
        item_facts(facts_of([listing("i1", "도서", 10, offset=0)], TOPICS.item_facts))
    )
    effects = sent.as_events()

    await stages.categories(category_effects(effects + effects))
    await stages.categories(category_effects(effects))

    assert table(stages.tables.categories).data["도서"]["item_count"] == 1
    assert len(table(stages.tables.categories).writes()) == 1


# -- sellers and the windowed counters ---------------------------------------------------------


async def test_sellers_sum_their_sales_once() -> None:
    stages, _ = rig()
    facts = facts_of(
        [sale("i1", "s1", 10_000, offset=0), sale("i2", "s1", 5_000, offset=1, hour=2)],
        TOPICS.seller_facts,
    )

    await stages.sellers(sale_facts(facts))
    await stages.sellers(sale_facts(facts[1:]))  # a redelivery of the tail

    seller = table(stages.tables.sellers).data["s1"]
    assert (seller["sales_count"], seller["gross_amount"]) == (2, 15_000)
    assert seller["fee_amount"] + seller["net_amount"] == 15_000
    assert seller["last_sale_at"] == (EPOCH + timedelta(hours=2)).timestamp()
    assert len(table(stages.tables.sellers).writes()) == 1


async def test_daily_payment_volume_sums_amounts_per_day() -> None:
    stages, _ = rig()
    count = stages.windowed_counter(stages.tables.payment_daily, table_agents._sale_amount)
    facts = facts_of(
        [
            sale("i1", "s1", 100, offset=0, hour=1),
            sale("i2", "s2", 200, offset=1, hour=2),
            sale("i3", "s3", 400, offset=2, hour=30),
        ],
        TOPICS.volume_facts,
    )

    await count(decoded(facts))
    await count(decoded(facts))

    daily = table(stages.tables.payment_daily).data
    day = EPOCH.timestamp()
    assert daily["KRW", (day, day + 86400 - 0.1)] == {
        "count": 2,
        "amount": 300,
        "applied": {"payment-events:0": 1},
    }
    assert daily["KRW", (day + 86400, day + 2 * 86400 - 0.1)]["amount"] == 400


async def test_new_users_are_counted_per_region_without_amounts() -> None:
    stages, _ = rig()
    count = stages.windowed_counter(stages.tables.users_daily, table_agents._counted_only)
    facts = facts_of(
        [new_user("서울", offset=0), new_user(None, offset=1), new_user("서울", offset=2)],
        TOPICS.user_facts,
    )

    await count(decoded(facts))

    daily = table(stages.tables.users_daily).data
    window = (EPOCH.timestamp(), EPOCH.timestamp() + 86400 - 0.1)
    assert (daily["서울", window]["count"], daily["서울", window]["amount"]) == (2, 0)
    assert daily["UNKNOWN", window]["count"] == 1


async def test_batched_acks_a_batch_only_after_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    events = facts_of([new_user("서울", offset=n) for n in range(5)], TOPICS.user_facts)
    seen: list[tuple[int, bool]] = []

    async def take_batches(stream: Any, max_: int, within_s: float) -> Any:
        for start in range(0, len(stream), max_):
            yield stream[start : start + max_]

    async def step(batch: BatchOf) -> None:
        seen.extend((fact["offset"], event.acked) for event, fact in batch)

    monkeypatch.setattr(table_agents, "take_batches", take_batches)
    await batched(2, 0.0, step)(events)

    assert seen == [(n, False) for n in range(5)]
    assert all(event.acked for event in events)


# -- the property: crashes and redeliveries change nothing -----------------------------------------


@dataclass
class Consumer:
    """One stage reading one partition: a log, the committed offset, the next offset to read."""

    name: str
    step: BatchStep
    log: list[FakeEvent]
    committed: int = 0
    position: int = 0

    @property
    def behind(self) -> int:
        return len(self.log) - self.position


@dataclass
class Topology:
    """All five stages over their facts logs; the item stage feeds the category stage's logs."""

    journal: Journal
    tables: Tables
    consumers: list[Consumer] = field(default_factory=list)
    effect_logs: dict[int, list[FakeEvent]] = field(default_factory=dict)

    @classmethod
    def of(cls, events: list[Accepted], duplicates: list[tuple[int, int]]) -> Topology:
        journal = Journal()
        tables = fake_tables(journal)
        topology = cls(journal, tables)
        stages = Stages(tables, TOPICS, topology.send)
        steps: dict[str, BatchStep] = {
            TOPICS.item_facts: stages.items,
            TOPICS.seller_facts: stages.sellers,
            TOPICS.volume_facts: stages.windowed_counter(
                tables.payment_daily, table_agents._sale_amount
            ),
            TOPICS.user_facts: stages.windowed_counter(
                tables.users_daily, table_agents._counted_only
            ),
        }
        for topic, step in steps.items():
            records = facts_of(events, topic)
            for partition in range(PARTITIONS):
                log = [r for r in records if r.message.partition == partition]
                # The pipeline resends a record whose acknowledgement it missed: the copy lands
                # later in the same partition (never before the original).
                for original, later in duplicates:
                    if log:
                        i = original % len(log)
                        log.insert(i + 1 + later % (len(log) - i), log[i])
                topology.consumers.append(Consumer(f"{topic}/{partition}", step, log))
        for partition in range(PARTITIONS):
            log = topology.effect_logs[partition] = []
            topology.consumers.append(
                Consumer(f"{TOPICS.category_effects}/{partition}", stages.categories, log)
            )
        return topology

    async def send(self, records: list[Record]) -> None:
        # Each record is on the broker once sent: a crash mid-send leaves a prefix of them.
        for topic, key, value, _ in records:
            self.journal.fuse.tick()
            assert key is not None and value is not None
            log = self.effect_logs[partition_of(key)]
            log.append(FakeEvent(topic, partition_of(key), len(log), key, value))

    async def run_batch(self, consumer: Consumer, size: int) -> None:
        batch = consumer.log[consumer.position : consumer.position + size]
        await consumer.step(decoded(batch))
        consumer.position += len(batch)  # acked: committable at the next commit

    def commit(self) -> None:
        self.journal.flush()  # Faust flushes its producer, changelogs included, then commits
        for consumer in self.consumers:
            consumer.committed = consumer.position

    def crash(self, kept: dict[tuple[str, int], int]) -> None:
        self.journal.fuse.remaining = None
        self.journal.crash(kept)  # the tables come back from what their changelogs hold
        for consumer in self.consumers:
            consumer.position = consumer.committed

    async def drain(self, size: int = 1_000_000) -> None:
        while any(consumer.behind for consumer in self.consumers):
            for consumer in self.consumers:
                while consumer.behind:
                    await self.run_batch(consumer, size)
        self.commit()


Action = tuple[str, int, int, int | None]

actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("batch"),
            st.integers(0, 63),  # which consumer (modulo those with records to read)
            st.integers(1, 6),  # batch size
            st.none() | st.integers(0, 8),  # crash before this many more writes or sends
        ),
        st.tuples(st.just("commit"), st.just(0), st.just(0), st.none()),
        st.tuples(st.just("crash"), st.just(0), st.just(0), st.none()),
    ),
    max_size=40,
)


@st.composite
def upstream(draw: st.DrawFn) -> list[Accepted]:
    """Listings, completed payments and new users, numbered per source partition in order."""
    offsets: dict[tuple[str, int], int] = {}
    out: list[Accepted] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["listing", "sale", "user"]))
        partition = draw(st.integers(0, 1))
        hour = draw(st.integers(0, 50))
        topic = {"listing": "item-events", "sale": "payment-events", "user": "user-events"}[kind]
        offset = offsets[topic, partition] = offsets.get((topic, partition), -1) + 1
        item = draw(st.sampled_from(["i1", "i2", "i3", "i4"]))
        if kind == "listing":
            category = draw(st.sampled_from(["도서", "가구", "디지털기기"]))
            price = draw(st.integers(0, 2_000_000))
            out.append(
                listing(item, category, price, offset=offset, partition=partition, hour=hour)
            )
        elif kind == "sale":
            seller = draw(st.sampled_from(["s1", "s2"]))
            amount = draw(st.integers(1, 2_000_000))
            out.append(sale(item, seller, amount, offset=offset, partition=partition, hour=hour))
        else:
            region = draw(st.sampled_from([None, "서울", "부산"]))
            out.append(new_user(region, offset=offset, partition=partition, hour=hour))
    return out


async def clean_pass(events: list[Accepted]) -> dict[str, Any]:
    topology = Topology.of(events, [])
    await topology.drain()
    return values(topology.tables)


async def chaotic_pass(
    events: list[Accepted],
    duplicates: list[tuple[int, int]],
    plan: list[Action],
    kept: Callable[[], Awaitable[dict[tuple[str, int], int]]],
) -> dict[str, Any]:
    topology = Topology.of(events, duplicates)
    for kind, which, size, fuse in plan:
        if kind == "commit":
            topology.commit()
        elif kind == "crash":
            topology.crash(await kept())
        else:
            ready = [c for c in topology.consumers if c.behind]
            if not ready:
                continue
            topology.journal.fuse.remaining = fuse
            try:
                await topology.run_batch(ready[which % len(ready)], size)
            except Crash:
                topology.crash(await kept())
            topology.journal.fuse.remaining = None
    await topology.drain()
    return values(topology.tables)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=upstream(),
    duplicates=st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99)), max_size=4),
    plan=actions,
    data=st.data(),
)
async def test_any_redelivery_and_crash_leaves_the_tables_of_one_clean_pass(
    events: list[Accepted],
    duplicates: list[tuple[int, int]],
    plan: list[Action],
    data: st.DataObject,
) -> None:
    async def kept() -> dict[tuple[str, int], int]:
        # Per changelog partition, how many of its unflushed writes the crash leaves.
        names = ["items", "categories", "category-hourly", "sellers"]
        names += ["payment-volume-daily", "new-users-daily"]
        return {
            (name, p): data.draw(st.integers(0, 6), label=f"kept {name}/{p}")
            for name in names
            for p in range(PARTITIONS)
        }

    expected = await clean_pass(events)
    assert await chaotic_pass(events, duplicates, plan, kept) == expected


@settings(max_examples=100, deadline=None)
@given(events=upstream(), sizes=st.lists(st.integers(1, 7), min_size=1, max_size=8))
async def test_batch_boundaries_do_not_change_the_tables(
    events: list[Accepted], sizes: list[int]
) -> None:
    expected = await clean_pass(events)
    topology = Topology.of(events, [])
    n = 0
    while any(consumer.behind for consumer in topology.consumers):
        for consumer in topology.consumers:
            if consumer.behind:
                await topology.run_batch(consumer, sizes[n % len(sizes)])
                n += 1
    assert values(topology.tables) == expected


async def test_a_category_effect_resent_behind_a_later_one_still_counts() -> None:
    # Two listings of one category from one source, one item-stage batch: the second names the
    # first (prev, prev_hour). The first is refused and resent behind it: it still counts.
    stages, sent = rig()
    events = [
        listing("i1", "도서", 2500, offset=3, partition=1),
        listing("i7", "도서", 4000, offset=5, partition=1),
    ]
    facts = facts_of(events, TOPICS.item_facts)
    for fact in facts:  # both through one item-stage partition: one effect source
        fact.message.partition = 0
    await stages.items(item_facts(facts))
    effects = sent.as_events()
    values = [orjson.loads(event.value) for event in effects]
    assert [(v["position"], v.get("prev"), v.get("prev_hour")) for v in values] == [
        (position_of(3), None, None),
        (position_of(5), position_of(3), position_of(3)),
    ]

    await stages.categories(category_effects([effects[1], effects[0], effects[0]]))

    stats = table(stages.tables.categories).data["도서"]
    assert stats["item_count"] == 2
    assert [v["count"] for v in table(stages.tables.category_hourly).data.values()] == [2]
