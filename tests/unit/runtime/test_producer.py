"""BatchProducer over a fake aiokafka producer: partitions, order, size limits, failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from karrot_streams.runtime.producer import LARGE_RECORD_BYTES, BatchProducer, Record


@dataclass
class FakeBatch:
    capacity: int
    records: list[tuple[Any, Any, Any]] = field(default_factory=list)
    closed: bool = False

    def append(self, *, key: Any, value: Any, timestamp: Any, headers: Any) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value, headers))
        return object()

    def close(self) -> None:
        self.closed = True


class FakeMetadata:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}


class FakeClient:
    def __init__(self) -> None:
        self.metadata_waits: list[str] = []

    async def _wait_on_metadata(self, topic: str) -> None:
        self.metadata_waits.append(topic)


class FakeAiokafka:
    def __init__(self, capacity: int = 3, fail_topic: str | None = None) -> None:
        self.capacity = capacity
        self.fail_topic = fail_topic
        self.client = FakeClient()
        self._metadata = FakeMetadata()
        #: Everything enqueued, in order: ("batch", topic, partition, records) or ("one", ...).
        self.sent: list[tuple[Any, ...]] = []

    @staticmethod
    def _partitioner(key: bytes, every: list[int], available: list[int]) -> int:
        return every[sum(key) % len(every)]

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        assert batch.closed
        self.sent.append(("batch", topic, partition, [r[0] for r in batch.records]))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic == self.fail_topic:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


@dataclass
class FakeApp:
    aiokafka: FakeAiokafka
    in_transaction: bool = False

    @property
    def producer(self) -> Any:
        app = self

        class Producer:
            def _ensure_producer(self) -> FakeAiokafka:
                return app.aiokafka

        return Producer()


def sender(fake: FakeAiokafka) -> tuple[BatchProducer, list[Record]]:
    singles: list[Record] = []

    async def send_one(topic: str, key: Any, value: Any, headers: Any) -> Any:
        singles.append((topic, key, value, headers))
        fake.sent.append(("one", topic, key))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    return BatchProducer(FakeApp(fake), send_one), singles


async def test_records_of_a_partition_go_together_in_order() -> None:
    fake = FakeAiokafka(capacity=2)
    producer, singles = sender(fake)
    records: list[Record] = [
        ("t", bytes([k]), b"v%d" % i, None) for i, k in enumerate([0, 4, 1, 8])
    ]
    assert await producer.send_all(records) == []
    assert singles == []
    # keys 0, 4 and 8 hash to partition 0 (in that order, split at the capacity of 2), 1 to 1
    assert fake.sent == [
        ("batch", "t", 0, [bytes([0]), bytes([4])]),
        ("batch", "t", 0, [bytes([8])]),
        ("batch", "t", 1, [bytes([1])]),
    ]
    assert fake.client.metadata_waits == ["t"]  # looked up once, then cached


async def test_a_large_record_is_sent_alone_between_its_neighbours() -> None:
    fake = FakeAiokafka(capacity=10)
    producer, singles = sender(fake)
    big = b"x" * (LARGE_RECORD_BYTES + 1)
    records: list[Record] = [
        ("t", b"\x00", b"a", None),
        ("t", b"\x00", big, None),
        ("t", b"\x00", b"c", None),
    ]
    assert await producer.send_all(records) == []
    assert [entry[0] for entry in fake.sent] == ["batch", "one", "batch"]
    assert singles == [records[1]]


async def test_unkeyed_records_take_the_per_record_send() -> None:
    fake = FakeAiokafka()
    producer, singles = sender(fake)
    record: Record = ("dlq.x", None, b"poison", [("h", b"1")])
    assert await producer.send_all([record]) == []
    assert singles == [record]


async def test_a_refused_batch_reports_each_of_its_records() -> None:
    fake = FakeAiokafka(capacity=10, fail_topic="bad")
    producer, _ = sender(fake)
    good: Record = ("good", b"\x01", b"1", None)
    bad = [("bad", b"\x01", b"2", None), ("bad", b"\x01", b"3", None)]
    failed = await producer.send_all([good, *bad])
    assert [record for record, _ in failed] == bad
    assert all(isinstance(exc, RuntimeError) for _, exc in failed)


async def test_in_a_transaction_every_record_goes_through_faust() -> None:
    fake = FakeAiokafka()
    singles: list[Any] = []

    async def send_one(topic: str, key: Any, value: Any, headers: Any) -> Any:
        singles.append(key)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    producer = BatchProducer(FakeApp(fake, in_transaction=True), send_one)
    assert await producer.send_all([("t", b"\x01", b"v", None)]) == []
    assert singles == [b"\x01"]
    assert fake.sent == []


async def test_a_record_no_batch_can_hold_is_a_bug_not_a_retry() -> None:
    fake = FakeAiokafka(capacity=0)
    producer, _ = sender(fake)
    with pytest.raises(RuntimeError, match="fits no batch"):
        await producer.send_all([("t", b"\x01", b"v", None)])


class Metadata:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


class OffsetsAiokafka(FakeAiokafka):
    """Answers each batch with its first offset, as aiokafka's batch future does."""

    def __init__(self, capacity: int, fail_partition: int | None = None) -> None:
        super().__init__(capacity)
        self.fail_partition = fail_partition
        self.next: dict[tuple[str, int], int] = {}

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        assert batch.closed
        self.sent.append(("batch", topic, partition, [r[0] for r in batch.records]))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if partition == self.fail_partition:
            future.set_exception(RuntimeError("broker said no"))
            return future
        base = self.next.get((topic, partition), 40)
        self.next[topic, partition] = base + len(batch.records)
        future.set_result(Metadata(topic, partition, base))
        return future


async def test_placed_records_go_to_the_partition_they_name_and_answer_their_offsets() -> None:
    fake = OffsetsAiokafka(capacity=2)
    producer, singles = sender(fake)
    large = b"x" * (LARGE_RECORD_BYTES + 1)
    # Key 0 would hash to partition 0: the named partition wins.
    records = [("c", 3, bytes([0]), b"a"), ("c", 3, b"k", large), ("c", 1, b"j", b"b")]
    records += [("c", 3, b"m", b"c")]
    acked: dict[tuple[str, int], int] = {}
    assert await producer.send_placed(records, acked) == []
    assert singles == []  # a large record too: Faust's send would place it by its key
    assert fake.sent == [
        ("batch", "c", 3, [bytes([0]), b"k"]),
        ("batch", "c", 3, [b"m"]),
        ("batch", "c", 1, [b"j"]),
    ]
    assert acked == {("c", 3): 42, ("c", 1): 40}


async def test_placed_records_refused_are_answered_with_their_error() -> None:
    fake = OffsetsAiokafka(capacity=5, fail_partition=1)
    producer, _ = sender(fake)
    records = [("c", 1, b"a", b"1"), ("c", 0, b"b", b"2"), ("c", 1, b"c", b"3")]
    acked: dict[tuple[str, int], int] = {}
    failed = await producer.send_placed(records, acked)
    assert [record for record, _ in failed] == [records[0], records[2]]
    assert all(isinstance(exc, RuntimeError) for _, exc in failed)
    assert acked == {("c", 0): 40}
