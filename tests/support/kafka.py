"""Read back what the pipeline wrote: every record of a topic, from its beginning to its end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from karrot_streams.connections import KafkaConnection, as_connection


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def read_all(bootstrap: str | KafkaConnection, topic: str) -> list[Consumed]:
    consumer = AIOKafkaConsumer(
        **as_connection(bootstrap).client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # What a downstream reader sees: the records of committed transactions.
        isolation_level="read_committed",
    )
    await consumer.start()
    # aiokafka 0.14 cancels a group-less consumer's background task on stop(); if that task never
    # got to run, stop() raises CancelledError. One turn of the loop lets it start.
    await asyncio.sleep(0)
    try:
        tps = await partitions(consumer, topic)
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # Explicit seeks: seek_to_beginning() raced with the initial position lookup here.
        for tp, offset in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, offset)
        out: list[Consumed] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=2000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.offset < ends[tp]:
                        out.append(
                            Consumed(
                                topic, m.partition, m.offset, m.key, m.value, tuple(m.headers or ())
                            )
                        )
            # Every partition, not only those that returned records: a fetch of aborted records
            # only moves the position.
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def count(bootstrap: str | KafkaConnection, topic: str) -> int:
    """The records a ``read_committed`` reader gets: offsets also number transaction markers
    and aborted records, so the end offset minus the start is not a count."""
    return len(await read_all(bootstrap, topic))


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # consumer.topics() fetches metadata into a throwaway object; this keeps the answer.
    cluster = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


async def start_group_at_end(
    bootstrap: str | KafkaConnection, group_id: str, topics: list[str]
) -> None:
    """Commit the current end offsets for a new consumer group.

    A test worker with a fresh app id would otherwise read every record the shared input topics
    ever had; starting at the end, it sees exactly what the test produces after this call. A group
    that has committed anything already (a restarted worker) is left alone.
    """
    consumer = AIOKafkaConsumer(
        **as_connection(bootstrap).client_kwargs(), group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    await asyncio.sleep(0)
    try:
        tps = [tp for topic in topics for tp in await partitions(consumer, topic)]
        consumer.assign(tps)
        for tp in tps:
            if await consumer.committed(tp) is not None:
                return
        ends = await consumer.end_offsets(tps)
        await consumer.commit(ends)
    finally:
        await consumer.stop()
