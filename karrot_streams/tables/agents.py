"""The aggregate stages. Each reads facts keyed by what it counts and updates its tables.

Stages take facts in batches: a key's facts are applied in order to one read of its value, which
is written back once. Fewer table writes means fewer changelog records and JSON encodings, which
is where a record-at-a-time stage spends its time. Acks are manual, after the writes, and a
step's writes return once the broker has their changelog records (tables/writes.py), so Faust
never commits a fact whose effect is not durable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import faust
import orjson

from karrot_streams.events.topics import InternalTopics
from karrot_streams.resilience.backoff import until_delivered
from karrot_streams.resources import Resources
from karrot_streams.runtime import internals
from karrot_streams.runtime.batches import (
    ack_all,
    consumed_offsets,
    generation_of,
    take_batches,
)
from karrot_streams.runtime.producer import BatchProducer, Placed, Record
from karrot_streams.runtime.transactions import WorkerTransactions, transactions_of
from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.declarations import Tables, window_of
from karrot_streams.tables.facts import (
    CategoryEffectFact,
    FactBase,
    ItemFact,
    SoldFact,
    table_key,
)
from karrot_streams.tables.replay_guard import position_of
from karrot_streams.tables.writes import (
    ChangelogWrites,
    StoreWrites,
    TableWrite,
    placed_sender,
    write_through,
)

log = logging.getLogger(__name__)

#: Applies one batch of (event, fact) pairs; the events are acked after it returns. The facts
#: are decoded JSON: each stage names the kind it reads (tables/facts.py).
BatchStep = Callable[[list[tuple[Any, Any]]], Awaitable[None]]
#: The fact kind a stage reads.
F = TypeVar("F", bound=FactBase | CategoryEffectFact)
#: One of the windowed counters' fact kinds.
Counted = TypeVar("Counted", bound=FactBase)


def facts_topic(app: faust.App, name: str, partitions: int) -> Any:
    # Raw bytes, decoded by the stage with orjson: the batch runtime hands raw records over
    # without a deserialising step per record. On the wire the records are JSON as before.
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        # Internal: Faust creates it before subscribing, so a fresh app sees it at once.
        internal=True,
    )


def fact_key(event: Any) -> str:
    """The record's key as the pipeline wrote it: a JSON string (Faust's table-key bytes)."""
    key: str = orjson.loads(event.key)
    return key


def grouped(
    batch: Iterable[tuple[Any, F]], key_of: Callable[[Any, F], Any]
) -> dict[Any, list[tuple[Any, F]]]:
    """The batch's facts by table key, each key's facts in arrival order."""
    groups: dict[Any, list[tuple[Any, F]]] = {}
    for event, fact in batch:
        groups.setdefault(key_of(event, fact), []).append((event, fact))
    return groups


def batched(
    settings_max: int,
    within_s: float,
    step: BatchStep,
    transactions: WorkerTransactions | None = None,
) -> Callable[[Any], Awaitable[None]]:
    # Under exactly-once a batch's table writes, its changelog records, the effects it sends
    # and its acks are one step of the worker's transaction.
    gate = transactions or WorkerTransactions(exactly_once=False)

    async def consume(stream: Any) -> None:
        async for events in take_batches(stream, settings_max, within_s):

            async def apply_and_ack(events: list[Any] = events) -> None:
                await step([(event, orjson.loads(event.value)) for event in events])
                ack_all(events)

            await gate.run_step(
                apply_and_ack,
                generation=generation_of(events),
                consumed=consumed_offsets(events),
            )

    return consume


def in_partition_of(event: Any) -> None:
    """Make ``event`` the current event of this task, for the table calls that follow.

    Faust reads and stores a key, and sends its changelog record, in the partition of the
    current event: in a batch that must be an event of the key at hand, not the batch's last.
    Only the context variable is set: the stream's own ``current_event`` attribute belongs to
    the task that fills the batch buffer, and changing it would swap the next record it adds.
    """
    internals.make_current_event(event)


def read(table: Any, key: Any, event: Any) -> Any:
    in_partition_of(event)
    return table[key]


@dataclass(frozen=True)
class Stages:
    """The batch step of each aggregate stage, over the app's tables."""

    tables: Tables
    topics: InternalTopics
    #: Sends the records and waits until the broker has every one of them.
    send: Callable[[list[Record]], Awaitable[None]]
    #: Writes a step's table values (store and changelog); durable when it returns.
    store: StoreWrites = write_through

    async def items(self, batch: list[tuple[Any, ItemFact]]) -> None:
        # In arrival order, not grouped by item: the category stage's replay guard needs each
        # upstream partition's effects in offset order. Each item is still written once.
        states: dict[str, agg.ItemState] = {}
        originals: dict[str, agg.ItemState] = {}
        last: dict[str, Any] = {}
        effects_out: list[Record] = []
        # Per (category, source) and (category, source, hour): the last effect's position, the
        # next one's ``prev`` (replay_guard.admit: a resend may reorder them).
        chains: dict[Any, int] = {}
        for event, fact in batch:
            item_id = fact["item_id"]
            if item_id not in states:
                stored = read(self.tables.items, item_id, event)
                states[item_id] = originals[item_id] = agg.item_from(stored, item_id)
            last[item_id] = event
            prev = fact.get("prev")
            at = agg.Applied(
                fact["source"],
                position_of(fact["offset"]),
                None if prev is None else position_of(prev),
            )
            coordinate = f"{fact['source']}:{fact['offset']}"
            if fact["kind"] == "LISTED":
                states[item_id], effects = agg.apply_item_listed(
                    states[item_id],
                    fact["category"],
                    fact["seller_id"],
                    fact["amount"],
                    fact["occurred_at"],
                    at,
                    coordinate,
                )
            else:
                states[item_id], effects = agg.apply_item_sold(
                    states[item_id], fact["amount"], fact["occurred_at"], at, coordinate
                )
            for effect in effects:
                source = f"{event.message.partition}|{fact['source']}"
                value: CategoryEffectFact = {
                    "kind": effect.kind,
                    "category": effect.category,
                    "amount": effect.amount,
                    "occurred_at": effect.occurred_at,
                    # Ordered per (item-stage partition, upstream partition): the mark key.
                    "source": source,
                    "position": effect.position,
                }
                chain: tuple[Any, ...] = (effect.category, source)
                if (prev := chains.get(chain)) is not None:
                    value["prev"] = prev
                chains[chain] = effect.position
                if effect.kind == "LISTED":
                    hour = window_of(self.tables.category_hourly, effect.occurred_at)
                    chain = (effect.category, source, hour)
                    if (prev := chains.get(chain)) is not None:
                        value["prev_hour"] = prev
                    chains[chain] = effect.position
                effects_out.append(
                    (
                        self.topics.category_effects,
                        table_key(effect.category),
                        orjson.dumps(value),
                        None,
                    )
                )
        # Effects are durable before the item states that remember them, and before the ack.
        if effects_out:
            await self.send(effects_out)
        await self.store(
            [
                TableWrite(self.tables.items, item_id, agg.to_value(state), last[item_id])
                for item_id, state in states.items()
                if state is not originals[item_id]
            ]
        )

    async def categories(self, batch: list[tuple[Any, CategoryEffectFact]]) -> None:
        writes: list[TableWrite] = []
        for category, effects in grouped(batch, lambda _, e: e["category"]).items():
            last = effects[-1][0]
            original = stats = agg.category_from(
                read(self.tables.categories, category, last), category
            )
            windows: dict[tuple[str, tuple[float, float]], agg.Counter] = {}
            for _, effect in effects:
                at = agg.Applied(effect["source"], effect["position"], effect.get("prev"))
                if effect["kind"] == "LISTED":
                    stats = agg.apply_listing(stats, effect["amount"], at) or stats
                    at = agg.Applied(at.source, at.position, effect.get("prev_hour"))
                    window = (
                        category,
                        window_of(self.tables.category_hourly, effect["occurred_at"]),
                    )
                    if window not in windows:
                        stored = read(self.tables.category_hourly, window, last)
                        windows[window] = agg.counter_from(stored)
                    windows[window] = (
                        agg.apply_count(windows[window], effect["amount"], at) or windows[window]
                    )
                else:
                    stats = agg.apply_category_sale(stats, effect["amount"], at) or stats
            if stats is not original:
                writes.append(
                    TableWrite(self.tables.categories, category, agg.to_value(stats), last)
                )
            for window, counter in windows.items():
                writes.append(
                    TableWrite(self.tables.category_hourly, window, agg.to_value(counter), last)
                )
        await self.store(writes)

    async def sellers(self, batch: list[tuple[Any, SoldFact]]) -> None:
        writes: list[TableWrite] = []
        for seller_id, sales in grouped(batch, lambda _, sale: sale["seller_id"]).items():
            last = sales[-1][0]
            original = state = agg.seller_from(
                read(self.tables.sellers, seller_id, last), seller_id
            )
            for _, sale in sales:
                at = agg.Applied(sale["source"], sale["offset"], sale.get("prev"))
                state = (
                    agg.apply_seller_sale(
                        state, sale["amount"], sale["fee"], sale["net"], sale["occurred_at"], at
                    )
                    or state
                )
            if state is not original:
                value = agg.to_value(state)
                writes.append(TableWrite(self.tables.sellers, seller_id, value, last))
        await self.store(writes)

    def windowed_counter(self, table: Any, amount_of: Callable[[Counted], int]) -> BatchStep:
        async def count(batch: list[tuple[Any, Counted]]) -> None:
            def key_of(event: Any, fact: Counted) -> Any:
                return (fact_key(event), window_of(table, fact["occurred_at"]))

            writes: list[TableWrite] = []
            for key, facts in grouped(batch, key_of).items():
                last = facts[-1][0]
                original = counter = agg.counter_from(read(table, key, last))
                for _, fact in facts:
                    amount = amount_of(fact)
                    base: FactBase = fact  # its ``get`` is typed; a type variable's is not
                    at = agg.Applied(base["source"], base["offset"], base.get("prev"))
                    counter = agg.apply_count(counter, amount, at) or counter
                if counter is not original:
                    writes.append(TableWrite(table, key, agg.to_value(counter), last))
            await self.store(writes)

        return count


def register(app: faust.App, resources: Resources, tables: Tables) -> list[Any]:
    settings = resources.settings

    async def send_one(topic: str, key: Any, value: Any, headers: Any) -> Any:
        return await app.producer.send(topic, key, value, None, None, headers)

    producer = BatchProducer(app, send_one)
    backoff = resources.backoff

    def kafka_down(exc: BaseException, attempt: int) -> None:
        if attempt == 0:
            log.warning("Kafka refused category effects, waiting: %s", exc)

    async def send(records: list[Record]) -> None:
        # Kafka unavailable: wait it out; the category stage skips any duplicate.
        await until_delivered(producer.send_all, records, backoff, on_down=kafka_down)

    def changelog_down(exc: BaseException, attempt: int) -> None:
        if attempt == 0:
            log.warning("Kafka refused table changelog records, waiting: %s", exc)

    def until_placed(attempt: Any, records: list[Placed]) -> Any:
        return until_delivered(attempt, records, backoff, on_down=changelog_down)

    store = ChangelogWrites(app, placed_sender(producer, until_placed))
    stages = Stages(tables, resources.topics, send, store)
    topics = resources.topics

    def agent(topic: str, name: str, step: BatchStep) -> Any:
        consume = batched(settings.batch_max, settings.batch_within_s, step, transactions_of(app))
        source = facts_topic(app, topic, settings.topic_partitions)
        return app.agent(source, name=name)(consume)

    return [
        agent(topics.item_facts, "aggregate.items", stages.items),
        agent(topics.category_effects, "aggregate.categories", stages.categories),
        agent(topics.seller_facts, "aggregate.sellers", stages.sellers),
        agent(
            topics.volume_facts,
            "aggregate.payment-volume",
            stages.windowed_counter(tables.payment_daily, _sale_amount),
        ),
        agent(
            topics.user_facts,
            "aggregate.new-users",
            stages.windowed_counter(tables.users_daily, _counted_only),
        ),
    ]


def _sale_amount(sale: SoldFact) -> int:
    return int(sale["amount"])


def _counted_only(_: FactBase) -> int:
    """New users are counted, not summed."""
    return 0
