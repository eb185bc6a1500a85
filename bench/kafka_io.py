"""Small admin and read-back helpers on the local broker (aiokafka only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from karrot_streams.connections import KafkaConnection, as_connection

FETCH_TIMEOUT_MS = 3000


@contextlib.asynccontextmanager
async def admin(bootstrap: str | KafkaConnection) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**as_connection(bootstrap).client_kwargs())
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def reader(
    bootstrap: str | KafkaConnection, group: str | None = None
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        **as_connection(bootstrap).client_kwargs(),
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka 0.14: let the background task start before any stop()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def create_topics(
    bootstrap: str | KafkaConnection,
    names: Iterable[str],
    partitions: int,
    config: Mapping[str, str] | None = None,
) -> None:
    topics = [NewTopic(n, partitions, 1, topic_configs=dict(config or {})) for n in names]
    async with admin(bootstrap) as client:
        await client.create_topics(topics)
    await asyncio.sleep(0.5)  # metadata propagation on the single local broker


async def topics_matching(bootstrap: str | KafkaConnection, fragment: str) -> list[str]:
    async with admin(bootstrap) as client:
        return sorted(t for t in await client.list_topics() if fragment in t)


async def delete_topics(bootstrap: str | KafkaConnection, names: Iterable[str]) -> None:
    wanted = sorted(set(names))
    if not wanted:
        return
    async with admin(bootstrap) as client:
        with contextlib.suppress(KafkaError):
            await client.delete_topics(wanted)


async def partitions_of(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(cluster.partitions_for_topic(topic) or ())
    ]


async def end_offsets(
    bootstrap: str | KafkaConnection, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    async with reader(bootstrap) as consumer:
        tps = await partitions_of(consumer, topics)
        return dict(await consumer.end_offsets(tps)) if tps else {}


async def group_lag(bootstrap: str | KafkaConnection, group: str, topics: Iterable[str]) -> int:
    """Records on ``topics`` not yet committed by ``group`` (never committed: all of them)."""
    async with admin(bootstrap) as client:
        committed = await client.list_consumer_group_offsets(group)
    ends = await end_offsets(bootstrap, topics)
    lag = 0
    for tp, end in ends.items():
        done = committed.get(tp)
        lag += end - (done.offset if done is not None and done.offset >= 0 else 0)
    return lag


async def group_reached(
    bootstrap: str | KafkaConnection, group: str, targets: Mapping[TopicPartition, int]
) -> bool:
    """Whether ``group`` has committed at least ``targets`` (offsets) on every partition."""
    async with admin(bootstrap) as client:
        committed = await client.list_consumer_group_offsets(group)
    for tp, target in targets.items():
        done = committed.get(tp)
        if target > 0 and (done is None or done.offset < target):
            return False
    return True


async def edge_timestamps(
    bootstrap: str | KafkaConnection, topics: Iterable[str]
) -> tuple[float, float] | None:
    """Earliest first-record and latest last-record timestamps (epoch s) over ``topics``."""
    async with reader(bootstrap) as consumer:
        tps = await partitions_of(consumer, topics)
        if not tps:
            return None
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        firsts: list[float] = []
        lasts: list[float] = []
        for tp in tps:
            if ends[tp] <= begins[tp]:
                continue
            for offset, sink in ((begins[tp], firsts), (ends[tp] - 1, lasts)):
                consumer.assign([tp])
                consumer.seek(tp, offset)
                batch = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=1)
                sink.extend(m.timestamp / 1000 for m in batch.get(tp, ()))
        if not firsts or not lasts:
            return None
        return min(firsts), max(lasts)
