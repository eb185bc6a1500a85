"""A listing reads backwards from the end, stops when it has the newest letters, within a budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from karrot_streams.dlq.dead_letters import DeadLetter
from karrot_streams.dlq.reader import record_size, scan_newest

TOPIC = "dlq.user-events"


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeConsumer:
    """Enough of AIOKafkaConsumer for records_in: assign, seek, getmany, position."""

    def __init__(self, data: Mapping[TopicPartition, list[Rec]], batch: int = 50) -> None:
        self.data = data
        self.batch = batch
        self.pos: dict[TopicPartition, int] = {}
        self.fetched = 0

    def assign(self, tps: list[TopicPartition]) -> None:
        self.pos = {tp: 0 for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict[TopicPartition, Any]:
        out = {}
        for tp in tps:
            start = self.pos[tp]
            got = self.data[tp][start : start + self.batch]
            self.pos[tp] = start + len(got)
            self.fetched += len(got)
            if got:
                out[tp] = got
        return out

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]


def topic_of(
    partitions: int, per_partition: int, size: int = 100
) -> dict[TopicPartition, list[Rec]]:
    """Letters in time order across partitions: record n of partition p at time n*partitions+p."""
    return {
        TopicPartition(TOPIC, p): [
            Rec(TOPIC, p, n, n * partitions + p, b"k", b"v" * size, (("exception_class", b"E"),))
            for n in range(per_partition)
        ]
        for p in range(partitions)
    }


def whole(data: Mapping[TopicPartition, list[Rec]]) -> dict[TopicPartition, tuple[int, int]]:
    return {tp: (0, len(records)) for tp, records in data.items()}


async def test_the_newest_letters_from_a_big_topic_cost_a_few_hundred_records() -> None:
    data = topic_of(4, 12_500)  # 50,000 letters
    consumer = FakeConsumer(data)
    scan = await scan_newest(consumer, whole(data), limit=100, max_bytes=64 * 1024 * 1024)
    expected = sorted((r for rs in data.values() for r in rs), key=lambda r: -r.timestamp)[:100]
    assert [(x.partition, x.offset) for x in scan.letters] == [
        (r.partition, r.offset) for r in expected
    ]
    assert not scan.complete  # stopped early: the rest is older
    assert scan.records < 1000
    assert consumer.fetched < 1000 + 4 * consumer.batch


async def test_a_rare_match_is_found_and_the_whole_range_counted() -> None:
    data = topic_of(2, 3000)
    rare = {(0, 17), (1, 2500)}

    def keep(letter: DeadLetter) -> bool:
        return (letter.partition, letter.offset) in rare

    scan = await scan_newest(
        FakeConsumer(data), whole(data), limit=10, max_bytes=64 * 1024 * 1024, keep=keep
    )
    assert {(x.partition, x.offset) for x in scan.letters} == rare
    assert scan.matched == 2
    assert scan.complete
    assert scan.ranges == {tp: (0, 3000) for tp in data}


async def test_the_byte_budget_stops_the_read_and_says_where() -> None:
    data = topic_of(2, 5000, size=10_000)
    budget = 1_000_000  # about a hundred letters of 10 kB

    def keep(letter: DeadLetter) -> bool:
        return letter.offset == 3  # old: never reached within the budget

    scan = await scan_newest(FakeConsumer(data), whole(data), limit=10, max_bytes=budget, keep=keep)
    one = record_size(data[TopicPartition(TOPIC, 0)][0])
    assert scan.bytes <= budget + one
    assert not scan.complete
    assert scan.letters == []
    for begin, end in scan.ranges.values():
        assert end == 5000
        assert 0 < begin < 5000, "scanned a tail, not nothing and not everything"
    # What was scanned is contiguous from the end: the records counted are exactly those.
    scanned = sum(end - begin for begin, end in scan.ranges.values())
    assert scanned <= scan.records


async def test_bounds_are_respected() -> None:
    data = topic_of(1, 1000)
    tp = TopicPartition(TOPIC, 0)
    scan = await scan_newest(
        FakeConsumer(data), {tp: (200, 300)}, limit=1000, max_bytes=64 * 1024 * 1024
    )
    assert [x.offset for x in scan.letters] == list(range(299, 199, -1))
    assert scan.complete
    assert scan.matched == 100


async def test_limit_zero_reads_nothing() -> None:
    data = topic_of(1, 1000)
    consumer = FakeConsumer(data)
    scan = await scan_newest(consumer, whole(data), limit=0, max_bytes=1024)
    assert scan.letters == []
    assert consumer.fetched == 0
