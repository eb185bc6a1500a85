"""The load side of a fault scenario: a patient upstream producer, and a watch on the commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.traffic import Record


async def produce_through(
    bootstrap: str, batch: Sequence[Record], rate: float, *, timeout_s: float = 180.0
) -> float:
    """Produce ``batch`` at ``rate``/s like a patient upstream service; return seconds taken.

    Idempotent, ``acks=all``, with a long delivery timeout: while the broker is away the records
    wait in the producer's buffer and go out once it is back, each once (no resend by hand, so
    the input holds each record exactly once and every copy downstream is the pipeline's).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=int(timeout_s * 1000),
        retry_backoff_ms=250,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for n, record in enumerate(batch):
            pending.append(await producer.send(record.topic, value=record.raw, key=record.key))
            ahead = n / rate - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.wait_for(asyncio.gather(*pending), timeout_s)
    finally:
        await producer.stop()
    return time.perf_counter() - started


@dataclass
class CommitWatch:
    """Polls the consumer group's committed offsets on the input topics (a second client).

    ``advances`` holds the monotonic times at which the total committed offset grew; recovery
    after a fault is the first advance after the fault ended.
    """

    bootstrap: str
    group: str
    interval_s: float = 0.5
    advances: list[float] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        total = -1
        admin: AIOKafkaAdminClient | None = None
        while True:
            try:
                if admin is None:
                    admin = AIOKafkaAdminClient(
                        bootstrap_servers=self.bootstrap, request_timeout_ms=5000
                    )
                    await admin.start()
                offsets = await admin.list_consumer_group_offsets(self.group)
            except (KafkaError, OSError, TimeoutError):
                if admin is not None:
                    with contextlib.suppress(KafkaError, OSError):
                        await admin.close()
                admin = None
                await asyncio.sleep(1.0)
                continue
            except asyncio.CancelledError:
                if admin is not None:
                    await admin.close()
                raise
            current = {
                tp: meta.offset
                for tp, meta in offsets.items()
                if tp.topic in INPUT_TOPICS and meta.offset >= 0
            }
            now_total = sum(current.values())
            if now_total > total:
                if total >= 0:
                    self.advances.append(time.monotonic())
                total = now_total
            self.committed = current
            await asyncio.sleep(self.interval_s)

    def recovery_after(self, moment: float) -> float | None:
        later = [t for t in self.advances if t >= moment]
        return round(later[0] - moment, 1) if later else None

    async def wait_caught_up(self, ends: dict[TopicPartition, int], timeout_s: float) -> bool:
        """True once every input partition's committed offset reached ``ends``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.committed.get(tp, 0) >= end for tp, end in ends.items() if end > 0):
                return True
            await asyncio.sleep(0.5)
        return False


async def input_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """End offsets of every input partition now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(topic, p)
            for topic in INPUT_TOPICS
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
