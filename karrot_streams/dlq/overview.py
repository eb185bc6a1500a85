"""What the dead-letter topics hold: a count per topic and the latest letters across them.

Read with the dead-letter reader of ``karrot_streams.dlq.reader`` (a consumer outside any group,
so looking never moves anyone's offsets). Topics that do not exist yet count zero; they are never
created by looking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from karrot_streams.connections import KafkaConnection
from karrot_streams.dlq.dead_letters import DeadLetter
from karrot_streams.dlq.reader import dlq_consumer, partitions_of, scan_newest
from karrot_streams.events.timestamps import iso_utc
from karrot_streams.events.topics import TopicNames

DEFAULT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetterOverview:
    counts: dict[str, int]
    recent: list[dict[str, Any]]

    def to_json(self, names: TopicNames | None = None) -> dict[str, Any]:
        """Under the logical topic names of ``names`` (the topics were read by physical name)."""
        names = names or TopicNames()
        return {
            "topics": {names.logical(topic): {"count": n} for topic, n in self.counts.items()},
            "recent": [
                {**letter, "topic": names.logical(letter["topic"])} for letter in self.recent
            ],
        }


def dead_letter_json(record: Any) -> dict[str, Any]:
    """One dead letter: where it sits, when, its key and headers as UTF-8 text."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso_utc(datetime.fromtimestamp(record.timestamp / 1000, UTC)),
        "key": _text(record.key),
        "headers": {name: _text(value) for name, value in record.headers or ()},
    }


def latest(records: Iterable[Any], limit: int) -> list[Any]:
    """The ``limit`` newest records, newest first (by timestamp, then position)."""
    ordered = sorted(
        records, key=lambda r: (r.timestamp, r.topic, r.partition, r.offset), reverse=True
    )
    return ordered[:limit]


def read_window(begin: int, end: int, limit: int) -> tuple[int, int] | None:
    """The offsets to read in one partition for the ``limit`` latest letters, or None."""
    start = max(begin, end - limit)
    return (start, end) if end > start else None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


async def read_overview(
    kafka: KafkaConnection,
    topics: Sequence[str],
    limit: int,
    timeout_s: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DeadLetterOverview:
    async with (
        asyncio.timeout(timeout_s),
        dlq_consumer(kafka, timeout_s, "karrot-streams-dlq-view") as consumer,
    ):
        return await _read(consumer, topics, limit, max_bytes)


async def count_letters(
    consumer: AIOKafkaConsumer,
    topics: Sequence[str],
    partitions: Sequence[TopicPartition],
    begins: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    max_bytes: int,
) -> dict[str, int]:
    """The letters of each topic, counted by reading them (within ``max_bytes``).

    Dead letters are written in transactions under exactly-once: a partition's offsets also
    number transaction markers and aborted letters, so end minus start overcounts. What the
    budget leaves unread is counted by its offsets.
    """
    counted = dict.fromkeys(topics, 0)

    def count(letter: DeadLetter) -> bool:
        counted[letter.topic] += 1
        return False  # counted, not kept

    bounds = {tp: (begins[tp], ends[tp]) for tp in partitions if ends[tp] > begins[tp]}
    scan = await scan_newest(consumer, bounds, limit=1, max_bytes=max_bytes, keep=count)
    for tp, (unread_to, _) in scan.ranges.items():
        counted[tp.topic] += max(0, unread_to - begins[tp])
    return counted


async def _read(
    consumer: AIOKafkaConsumer, topics: Sequence[str], limit: int, max_bytes: int
) -> DeadLetterOverview:
    partitions = await partitions_of(consumer, topics)
    begins: Mapping[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
    counts = await count_letters(consumer, topics, partitions, begins, ends, max_bytes)
    windows = {
        tp: window
        for tp in partitions
        if (window := read_window(begins[tp], ends[tp], limit)) is not None
    }
    # Backwards from the end, newest first, within the byte budget: the values (up to 2 MiB
    # each) are read along with the headers shown.
    scan = await scan_newest(consumer, windows, limit=limit, max_bytes=max_bytes)
    return DeadLetterOverview(counts, [dead_letter_json(r) for r in latest(scan.letters, limit)])
