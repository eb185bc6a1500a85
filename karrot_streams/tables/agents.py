"""The aggregate stages. Each reads facts keyed by what it counts and updates its tables."""

from __future__ import annotations

import json
from typing import Any

import faust

from karrot_streams.pipeline.facts import table_key
from karrot_streams.pipeline.handler import HeaderList
from karrot_streams.resources import Resources
from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.declarations import Tables, window_of
from karrot_streams.tables.replay_guard import position_of


def facts_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(
        name,
        key_type=str,
        key_serializer="json",
        value_serializer="json",
        partitions=partitions,
        # Internal: Faust creates it before subscribing, so a fresh app sees it at once.
        internal=True,
    )


def register(app: faust.App, resources: Resources, tables: Tables) -> list[Any]:
    topics = resources.topics
    partitions = resources.settings.topic_partitions

    async def send(topic: str, key: str, value: dict[str, Any]) -> None:
        headers: HeaderList | None = None
        # Delivery is awaited by Faust's producer flush before it commits this offset.
        await app.producer.send(
            topic,
            table_key(key),
            json.dumps(value, ensure_ascii=False).encode(),
            None,
            None,
            headers,
        )

    async def items(stream: Any) -> None:
        async for fact in stream:
            partition = stream.current_event.message.partition
            item_id = fact["item_id"]
            state = agg.item_from(tables.items[item_id], item_id)
            at = agg.Applied(fact["source"], position_of(fact["offset"]))
            coordinate = f"{fact['source']}:{fact['offset']}"
            if fact["kind"] == "LISTED":
                new, effects = agg.apply_item_listed(
                    state,
                    fact["category"],
                    fact["seller_id"],
                    fact["amount"],
                    fact["occurred_at"],
                    at,
                    coordinate,
                )
            else:
                new, effects = agg.apply_item_sold(
                    state, fact["amount"], fact["occurred_at"], at, coordinate
                )
            if new is not state:
                tables.items[item_id] = agg.to_value(new)
            for effect in effects:
                await send(
                    topics.category_effects,
                    effect.category,
                    {
                        "kind": effect.kind,
                        "category": effect.category,
                        "amount": effect.amount,
                        "occurred_at": effect.occurred_at,
                        # Ordered per (item-stage partition, upstream partition): the mark key.
                        "source": f"{partition}|{fact['source']}",
                        "position": effect.position,
                    },
                )

    async def categories(stream: Any) -> None:
        async for effect in stream:
            category = effect["category"]
            at = agg.Applied(effect["source"], effect["position"])
            stats = agg.category_from(tables.categories[category], category)
            if effect["kind"] == "LISTED":
                new = agg.apply_listing(stats, effect["amount"], at)
                window = (category, window_of(tables.category_hourly, effect["occurred_at"]))
                counted = agg.apply_count(
                    agg.counter_from(tables.category_hourly[window]), effect["amount"], at
                )
                if counted is not None:
                    tables.category_hourly[window] = agg.to_value(counted)
            else:
                new = agg.apply_category_sale(stats, effect["amount"], at)
            if new is not None:
                tables.categories[category] = agg.to_value(new)

    async def sellers(stream: Any) -> None:
        async for sale in stream:
            seller_id = sale["seller_id"]
            at = agg.Applied(sale["source"], sale["offset"])
            new = agg.apply_seller_sale(
                agg.seller_from(tables.sellers[seller_id], seller_id),
                sale["amount"],
                sale["fee"],
                sale["net"],
                sale["occurred_at"],
                at,
            )
            if new is not None:
                tables.sellers[seller_id] = agg.to_value(new)

    def windowed_counter(table: Any, amount_field: str | None) -> Any:
        async def count(stream: Any) -> None:
            async for fact in stream:
                key = (stream.current_event.key, window_of(table, fact["occurred_at"]))
                amount = int(fact[amount_field]) if amount_field else 0
                at = agg.Applied(fact["source"], fact["offset"])
                counted = agg.apply_count(agg.counter_from(table[key]), amount, at)
                if counted is not None:
                    table[key] = agg.to_value(counted)

        return count

    return [
        app.agent(facts_topic(app, topics.item_facts, partitions), name="aggregate.items")(items),
        app.agent(
            facts_topic(app, topics.category_effects, partitions), name="aggregate.categories"
        )(categories),
        app.agent(facts_topic(app, topics.seller_facts, partitions), name="aggregate.sellers")(
            sellers
        ),
        app.agent(
            facts_topic(app, topics.volume_facts, partitions), name="aggregate.payment-volume"
        )(windowed_counter(tables.payment_daily, "amount")),
        app.agent(facts_topic(app, topics.user_facts, partitions), name="aggregate.new-users")(
            windowed_counter(tables.users_daily, None)
        ),
    ]
