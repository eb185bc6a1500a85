"""Read dead-letter topics with a short-lived consumer outside any group.

It commits nothing and joins nothing, so looking never moves anyone's offsets. Topics that do not
exist yet hold nothing; they are never created by looking (no metadata request names a missing
topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from karrot_streams.dlq.letters import DeadLetter, Position

POLL_MS = 200
READ_TIMEOUT_S = 60.0

#: Offsets ``[start, end)`` to read in each partition.
Windows = Mapping[TopicPartition, tuple[int, int]]


@asynccontextmanager
async def dlq_consumer(
    bootstrap: str, timeout_s: float, client_id: str = "karrot-streams-dlq"
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=client_id,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await consumer.start()
        # aiokafka 0.14 cancels a group-less consumer's background task on stop(); if that task
        # never got to run, stop() raises CancelledError. One turn of the loop lets it start.
        await asyncio.sleep(0)
        yield consumer
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of those ``topics`` that exist, in topic and partition order."""
    existing = sorted(set(await consumer.topics()) & set(topics))
    # Asking one partition's end offset loads the topic's metadata: then its partitions are known.
    await consumer.end_offsets([TopicPartition(topic, 0) for topic in existing])
    return [
        TopicPartition(topic, p)
        for topic in existing
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def records_in(
    consumer: AIOKafkaConsumer, windows: Windows
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records of each window, partition by partition in offset order."""
    if not windows:
        return
    consumer.assign(list(windows))
    for tp, (start, _) in windows.items():
        consumer.seek(tp, start)
    waiting = {tp for tp, (start, end) in windows.items() if end > start}
    while waiting:
        batch = await consumer.getmany(*waiting, timeout_ms=POLL_MS)
        for tp, messages in batch.items():
            for message in messages:
                if message.offset < windows[tp][1]:
                    yield message
        for tp in list(waiting):
            if await consumer.position(tp) >= windows[tp][1]:
                waiting.discard(tp)


async def fetch(consumer: AIOKafkaConsumer, windows: Windows) -> list[ConsumerRecord[bytes, bytes]]:
    return [record async for record in records_in(consumer, windows)]


async def read_letters(
    bootstrap: str,
    topic: str,
    *,
    position: Position | None = None,
    keep: Callable[[DeadLetter], bool] = lambda _: True,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[DeadLetter]:
    """The letters of ``topic`` that ``keep`` accepts: all of them, or the one at ``position``."""
    async with asyncio.timeout(timeout_s), dlq_consumer(bootstrap, timeout_s) as consumer:
        partitions = await partitions_of(consumer, [topic])
        if position is not None:
            partitions = [tp for tp in partitions if tp.partition == position[0]]
        begins: Mapping[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        windows = {tp: (begins[tp], ends[tp]) for tp in partitions}
        if position is not None:
            windows = {
                tp: (position[1], position[1] + 1)
                for tp, (begin, end) in windows.items()
                if begin <= position[1] < end
            }
        letters: list[DeadLetter] = []
        async for record in records_in(consumer, windows):
            letter = DeadLetter.of_record(record)
            if keep(letter):
                letters.append(letter)
        return letters
