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
#: How long a look past a committed offset may take: only transaction markers may be left.
MARKER_LOOK_S = 2.0
#: How far before the end of a partition the last record is looked for; doubled until found.
TAIL_WINDOW = 64


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


async def _records_before(
    consumer: AIOKafkaConsumer, spans: Mapping[TopicPartition, tuple[int, int]]
) -> int:
    """Committed records in ``[start, end)`` per partition, read under read_committed.

    Under exactly_once a partition ends with a transaction marker (a control record no reader
    is handed): a group that has consumed everything commits the offset before it, so ``end -
    committed`` stays 1 for ever. Reading the span says whether anything but markers is left.
    """
    consumer.assign(list(spans))
    for tp, (start, _) in spans.items():
        consumer.seek(tp, start)
    found = 0
    deadline = asyncio.get_running_loop().time() + MARKER_LOOK_S
    waiting = set(spans)
    while waiting and asyncio.get_running_loop().time() < deadline:
        batches = await consumer.getmany(*waiting, timeout_ms=200)
        for tp, messages in batches.items():
            found += sum(1 for m in messages if m.offset < spans[tp][1])
        if found:
            return found
        for tp in list(waiting):
            if await consumer.position(tp) >= spans[tp][1]:
                waiting.discard(tp)
    return found + sum(spans[tp][1] - spans[tp][0] for tp in waiting)  # not read in time: lag


async def group_lag(bootstrap: str | KafkaConnection, group: str, topics: Iterable[str]) -> int:
    """Records on ``topics`` not yet committed by ``group`` (never committed: all of them).

    Transaction markers after the committed offset are not records (see ``_records_before``).
    """
    async with admin(bootstrap) as client:
        committed = await client.list_consumer_group_offsets(group)
    ends = await end_offsets(bootstrap, topics)
    spans: dict[TopicPartition, tuple[int, int]] = {}
    for tp, end in ends.items():
        done = committed.get(tp)
        start = done.offset if done is not None and done.offset >= 0 else 0
        if end > start:
            spans[tp] = (start, end)
    if not spans:
        return 0
    if sum(end - start for start, end in spans.values()) > 4 * len(spans):
        return sum(end - start for start, end in spans.values())  # more than markers: real lag
    async with reader(bootstrap) as consumer:
        return await _records_before(consumer, spans)


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
            consumer.assign([tp])
            consumer.seek(tp, begins[tp])
            batch = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=1)
            firsts.extend(m.timestamp / 1000 for m in batch.get(tp, ()))
            last = await _last_timestamp(consumer, tp, begins[tp], ends[tp])
            if last is not None:
                lasts.append(last)
        if not firsts or not lasts:
            return None
        return min(firsts), max(lasts)


async def _last_timestamp(
    consumer: AIOKafkaConsumer, tp: TopicPartition, begin: int, end: int
) -> float | None:
    """The timestamp (epoch s) of the last committed record before ``end``.

    Not simply the record at ``end - 1``: under exactly_once that offset is a transaction
    marker, which a read_committed reader is never handed.
    """
    window = TAIL_WINDOW
    while True:
        start = max(begin, end - window)
        consumer.seek(tp, start)
        last: float | None = None
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)
            if not batch:
                break
            last = max((m.timestamp / 1000 for m in batch[tp] if m.offset < end), default=last)
        if last is not None or start == begin:
            return last
        window *= 2
