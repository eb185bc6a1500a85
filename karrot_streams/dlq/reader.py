"""Read dead-letter topics with a short-lived consumer outside any group.

It commits nothing and joins nothing, so looking never moves anyone's offsets. Topics that do not
exist yet hold nothing; they are never created by looking (no metadata request names a missing
topic).

A dead-letter topic can hold millions of letters of up to 2 MiB each, so a listing never reads a
whole topic: ``scan_newest`` reads backwards from the end of each partition in growing windows,
stops as soon as it has the newest ``limit`` letters (or reaches the range's start, where
``since`` begins via offsets-for-times), and stops hard once it has read ``max_bytes``. Inspecting
one letter reads one offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from karrot_streams.connections import KafkaConnection, as_connection
from karrot_streams.dlq.dead_letters import REDRIVEN_FROM, DeadLetter, Position

POLL_MS = 200
READ_TIMEOUT_S = 60.0
#: Records per partition in a scan's first window; each next one is ``GROWTH`` times larger (up
#: to ``MAX_WINDOW``), so a listing of the newest few costs a few records, not a topic.
FIRST_WINDOW = 1
GROWTH = 8
MAX_WINDOW = 4096
#: A fetch returns at least one whole record batch, however small this is: one letter's batch.
ONE_RECORD_FETCH_BYTES = 1

#: Offsets ``[start, end)`` to read in each partition.
Windows = Mapping[TopicPartition, tuple[int, int]]


@asynccontextmanager
async def dlq_consumer(
    kafka: str | KafkaConnection,
    timeout_s: float,
    client_id: str = "karrot-streams-dlq",
    *,
    max_partition_fetch_bytes: int = 1024 * 1024,
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        **as_connection(kafka).client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        # Dead letters of an aborted transaction were never written, for any reader.
        isolation_level="read_committed",
        client_id=client_id,
        request_timeout_ms=int(timeout_s * 1000),
        max_partition_fetch_bytes=max_partition_fetch_bytes,
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
) -> AsyncGenerator[ConsumerRecord[bytes, bytes]]:
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


def record_size(record: ConsumerRecord[bytes, bytes] | DeadLetter) -> int:
    """The bytes a record holds: key, value and headers."""
    headers = sum(len(k) + len(v or b"") for k, v in record.headers or ())
    return len(record.key or b"") + len(record.value or b"") + headers


def _newest_key(letter: DeadLetter) -> tuple[int, str, int, int]:
    return (letter.timestamp, letter.topic, letter.partition, letter.offset)


@dataclass(slots=True)
class Scan:
    """What a bounded read found, and how much of its range it looked at."""

    #: The newest ``limit`` letters the filter kept, newest first.
    letters: list[DeadLetter] = field(default_factory=list)
    #: Letters the filter kept in the ranges scanned (all of them when ``complete``).
    matched: int = 0
    #: The whole range was scanned: ``matched`` is the total, not a lower bound.
    complete: bool = True
    #: What was scanned in each partition, ``[start, end)``: ``start`` is where to go on from.
    ranges: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    records: int = 0
    bytes: int = 0


async def scan_newest(
    consumer: AIOKafkaConsumer,
    bounds: Windows,
    *,
    limit: int,
    max_bytes: int,
    keep: Callable[[DeadLetter], bool] = lambda _: True,
) -> Scan:
    """The newest ``limit`` letters ``keep`` accepts within ``bounds``, reading backwards.

    Stops once no unread record can be newer than the ``limit`` letters in hand (records of a
    partition are in time order), at the start of every range, or once ``max_bytes`` were read
    (then ``complete`` is False): at most ``max_bytes`` plus one record is read per call.
    """
    cursor = {tp: end for tp, (_, end) in bounds.items()}
    start = {tp: begin for tp, (begin, _) in bounds.items()}
    oldest_read: dict[TopicPartition, int] = {}
    scan = Scan()
    window = FIRST_WINDOW
    while open_ := [tp for tp in cursor if cursor[tp] > start[tp]]:
        if (
            limit <= 0
            or scan.bytes >= max_bytes
            or _newest_in_hand(scan, limit, open_, oldest_read)
        ):
            scan.complete = False
            break
        size = window
        if scan.records:
            # Size the window by what records here weigh, so one round stays within the budget.
            average = max(1, scan.bytes // scan.records)
            size = max(1, min(window, (max_bytes - scan.bytes) // (average * len(open_))))
        windows = {tp: (max(start[tp], cursor[tp] - size), cursor[tp]) for tp in open_}
        read, over_budget = await _read_round(consumer, windows, scan, max_bytes)
        for tp, (begin, end) in windows.items():
            got = read[tp]
            if over_budget and (not got or got[-1].offset != end - 1):
                continue  # cut short: not scanned, the cursor stays where it was
            cursor[tp] = begin
            if got:
                oldest_read[tp] = min(r.timestamp for r in got)
            for record in got:
                letter = DeadLetter.of_record(record)
                if keep(letter):
                    scan.matched += 1
                    scan.letters.append(letter)
        scan.letters.sort(key=_newest_key, reverse=True)
        del scan.letters[limit:]
        if over_budget:
            scan.complete = False
            break
        window = min(window * GROWTH, MAX_WINDOW)
    scan.ranges = {tp: (cursor[tp], end) for tp, (_, end) in bounds.items()}
    return scan


def _newest_in_hand(
    scan: Scan,
    limit: int,
    open_: Sequence[TopicPartition],
    oldest_read: Mapping[TopicPartition, int],
) -> bool:
    """True when no unread record of ``open_`` can be newer than the ``limit`` letters held."""
    if len(scan.letters) < limit:
        return False
    cut = scan.letters[limit - 1].timestamp
    return all(tp in oldest_read and oldest_read[tp] <= cut for tp in open_)


async def _read_round(
    consumer: AIOKafkaConsumer, windows: Windows, scan: Scan, max_bytes: int
) -> tuple[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], bool]:
    """The records of ``windows`` by partition, and whether the byte budget cut them short."""
    read: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {tp: [] for tp in windows}
    async with aclosing(records_in(consumer, windows)) as records:
        async for record in records:
            scan.records += 1
            scan.bytes += record_size(record)
            read[TopicPartition(record.topic, record.partition)].append(record)
            if scan.bytes > max_bytes:
                return read, True
    return read, False


async def since_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], since: datetime
) -> dict[TopicPartition, int | None]:
    """The first offset whose timestamp is at or after ``since`` (None: no such record).

    A letter's record is produced after its ``failed_at`` moment, so no letter that failed at
    or after ``since`` sits before that offset.
    """
    if not partitions:
        return {}
    # Before 1970 (a date-time may be year 1): every record is after it; Kafka takes no
    # negative time.
    millis = max(0, int(since.timestamp() * 1000))
    found = await consumer.offsets_for_times({tp: millis for tp in partitions})
    return {tp: None if hit is None else int(hit.offset) for tp, hit in found.items()}


@dataclass(frozen=True, slots=True)
class ListRange:
    """Where in a topic a listing may read: one partition, an offset range, a start time."""

    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    since: datetime | None = None


async def list_dead_letters(
    kafka: str | KafkaConnection,
    topic: str,
    *,
    limit: int,
    max_bytes: int,
    where: ListRange = ListRange(),
    keep: Callable[[DeadLetter], bool] = lambda _: True,
    timeout_s: float = READ_TIMEOUT_S,
) -> Scan:
    """The newest ``limit`` letters of ``topic`` ``keep`` accepts, read within ``where``."""
    async with asyncio.timeout(timeout_s), dlq_consumer(kafka, timeout_s) as consumer:
        partitions = await partitions_of(consumer, [topic])
        if where.partition is not None:
            partitions = [tp for tp in partitions if tp.partition == where.partition]
        begins: Mapping[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        firsts: Mapping[TopicPartition, int | None] = {}
        if where.since is not None:
            firsts = await since_offsets(consumer, partitions, where.since)
        bounds: dict[TopicPartition, tuple[int, int]] = {}
        for tp in partitions:
            low, high = begins[tp], ends[tp]
            if where.from_offset is not None:
                low = max(low, where.from_offset)
            if where.to_offset is not None:
                high = min(high, where.to_offset)
            if where.since is not None:
                first = firsts.get(tp)
                low = max(low, high if first is None else first)
            bounds[tp] = (low, max(low, high))
        return await scan_newest(consumer, bounds, limit=limit, max_bytes=max_bytes, keep=keep)


async def read_dead_letter(
    kafka: str | KafkaConnection,
    topic: str,
    position: Position,
    *,
    timeout_s: float = READ_TIMEOUT_S,
) -> DeadLetter | None:
    """The one letter at ``position`` of ``topic`` (one offset, one fetch), or None."""
    partition, offset = position
    async with (
        asyncio.timeout(timeout_s),
        dlq_consumer(kafka, timeout_s, max_partition_fetch_bytes=ONE_RECORD_FETCH_BYTES) as (
            consumer
        ),
    ):
        partitions = [
            tp for tp in await partitions_of(consumer, [topic]) if tp.partition == partition
        ]
        if not partitions:
            return None
        tp = partitions[0]
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not begin <= offset < end:
            return None
        async with aclosing(records_in(consumer, {tp: (offset, offset + 1)})) as records:
            async for record in records:
                return DeadLetter.of_record(record)
        return None


async def read_dead_letters(
    kafka: str | KafkaConnection,
    topic: str,
    *,
    position: Position | None = None,
    keep: Callable[[DeadLetter], bool] = lambda _: True,
    since: datetime | None = None,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[DeadLetter]:
    """The letters of ``topic`` that ``keep`` accepts: all of them, or the one at ``position``.

    With ``since``, reading starts at the first offset at or after that moment.
    """
    async with asyncio.timeout(timeout_s), dlq_consumer(kafka, timeout_s) as consumer:
        partitions = await partitions_of(consumer, [topic])
        if position is not None:
            partitions = [tp for tp in partitions if tp.partition == position[0]]
        begins: Mapping[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        windows = {tp: (begins[tp], ends[tp]) for tp in partitions}
        if since is not None and position is None:
            firsts = await since_offsets(consumer, partitions, since)
            windows = {
                tp: (ends[tp] if firsts[tp] is None else max(begin, firsts[tp] or 0), end)
                for tp, (begin, end) in windows.items()
            }
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


#: What a read_committed reader finds at a redriven letter's pending target: its record
#: (committed), not it (the produce aborted, or the offset holds another record), or nothing yet
#: (the last stable offset is not past it: its transaction is still open).
Verdict = Literal["COMMITTED", "ABSENT", "OPEN"]


async def check_pending(
    kafka: str | KafkaConnection,
    wanted: Mapping[Position, tuple[str, int, int, str]],
    *,
    timeout_s: float = READ_TIMEOUT_S,
) -> dict[Position, Verdict]:
    """For each letter (``(topic, partition, offset, address)``), whether the record at that
    offset is committed and carries ``redriven_from`` = ``address``; one consumer, one offset
    each."""
    if not wanted:
        return {}
    found: dict[Position, Verdict] = {}
    async with (
        asyncio.timeout(timeout_s),
        dlq_consumer(kafka, timeout_s, max_partition_fetch_bytes=ONE_RECORD_FETCH_BYTES) as (
            consumer
        ),
    ):
        tps = {TopicPartition(t, p) for t, p, _, _ in wanted.values()}
        # A read_committed consumer's end offset is the last stable offset.
        stable: Mapping[TopicPartition, int] = await consumer.end_offsets(sorted(tps))
        for position, (topic, partition, offset, address) in sorted(wanted.items()):
            tp = TopicPartition(topic, partition)
            if stable[tp] <= offset:
                found[position] = "OPEN"
                continue
            found[position] = "ABSENT"
            async with aclosing(records_in(consumer, {tp: (offset, offset + 1)})) as records:
                async for record in records:
                    values = [v for k, v in record.headers or () if k == REDRIVEN_FROM]
                    if record.offset == offset and values and values[-1] == address.encode():
                        found[position] = "COMMITTED"
    return found
