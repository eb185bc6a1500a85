"""A recovery under exactly-once finishes whatever a changelog partition ends with: a committed
transaction's marker, an aborted transaction's records and its marker, or several transactions
each ending in a marker.

Under ``read_committed`` none of those offsets is delivered as a record, so the recovery can end
a partition only from the consumer's position, which the consumer noted only after fetches that
returned records. A partition whose last fetch returns none was never ended: in the soak-size
zombie scenario, partitions whose last records had waited for room in the recovery's queue
("remaining 1" for 600 s; tests/unit/runtime/test_drain_loop.py has that case). Here one
partition ends in more aborted bytes than one fetch of a partition takes (the app's 4 MiB), so
its last fetch holds only the rest of them and the abort marker.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import kafka_connection
from karrot_streams.provision import create_topics
from karrot_streams.settings import Settings
from karrot_streams.tables.aggregates import SellerSales, to_value
from karrot_streams.tables.facts import table_key
from tests.support.api import get_json
from tests.support.worker import WorkerProcess, new_app_id

pytestmark = pytest.mark.integration

#: More than one fetch of a partition (``consumer_max_fetch_size``, 4 MiB in karrot_streams/app.py).
ABORTED_BYTES = 5 * 1024 * 1024
ABORTED_VALUE = b"x" * 1024


def sales(seller_id: str, count: int) -> SellerSales:
    amount = 10_000 * count
    return SellerSales(
        seller_id=seller_id,
        sales_count=count,
        gross_amount=amount,
        fee_amount=amount // 30,
        net_amount=amount - amount // 30,
        last_sale_at=1_760_000_000.0 + count,
        applied={"payment-events:0": count},
    )


def sellers_of(prefix: str, partition: int, partitions: int, count: int) -> list[str]:
    """``count`` seller ids whose table key falls in ``partition`` (the producer's murmur2)."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        seller = f"{prefix}-{n}"
        n += 1
        if (murmur2(table_key(seller)) & 0x7FFFFFFF) % partitions == partition:
            found.append(seller)
    return found


class Changelog:
    """A transactional writer of one changelog topic, one transaction at a time."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.producer = AIOKafkaProducer(
            **kafka_connection(settings).client_kwargs(),
            transactional_id=f"{topic}-writer",
            enable_idempotence=True,
            acks="all",
        )

    async def commit(self, partition: int, values: list[SellerSales]) -> None:
        async with self.producer.transaction():
            for value in values:
                await self.producer.send(
                    self.topic,
                    orjson.dumps(to_value(value)),
                    key=table_key(value.seller_id),
                    partition=partition,
                )

    async def abort(self, partition: int, total_bytes: int) -> None:
        await self.producer.begin_transaction()
        sent = 0
        n = 0
        while sent < total_bytes:
            await self.producer.send(
                self.topic, ABORTED_VALUE, key=f"aborted-{n}".encode(), partition=partition
            )
            sent += len(ABORTED_VALUE)
            n += 1
        await self.producer.flush()
        await self.producer.abort_transaction()


async def test_recovery_ends_partitions_that_end_in_transaction_markers(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    app_id = new_app_id()
    topic = settings.topic_names.changelog(app_id, "sellers")
    await create_topics(settings, [topic])
    partitions = settings.topic_partitions
    assert partitions >= 4, "the shapes below take four partitions"
    chosen = [sellers_of(f"{app_id}-p{p}", p, partitions, 6) for p in range(4)]
    expected: dict[str, int] = {}

    changelog = Changelog(settings, topic)
    await changelog.producer.start()
    try:
        # 0: one committed transaction; its commit marker is the partition's last offset.
        await changelog.commit(0, [sales(s, 1) for s in chosen[0][:3]])
        expected.update(dict.fromkeys(chosen[0][:3], 1))
        # 1: committed records, then a zombie's aborted writes, larger than a fetch.
        await changelog.commit(1, [sales(s, 2) for s in chosen[1][:2]])
        expected.update(dict.fromkeys(chosen[1][:2], 2))
        await changelog.abort(1, ABORTED_BYTES)
        # 2: several transactions, each ending in a marker.
        for n, seller in enumerate(chosen[2]):
            await changelog.commit(2, [sales(seller, n + 1)])
            expected[seller] = n + 1
        # 3: a small aborted transaction between committed ones, and at the end.
        await changelog.commit(3, [sales(chosen[3][0], 4)])
        await changelog.abort(3, 10 * len(ABORTED_VALUE))
        await changelog.commit(3, [sales(chosen[3][1], 5)])
        await changelog.abort(3, 10 * len(ABORTED_VALUE))
        expected.update({chosen[3][0]: 4, chosen[3][1]: 5})
    finally:
        await changelog.producer.stop()

    worker = worker_factory(app_id=app_id, data_dir=tmp_path / "data", log_path=tmp_path / "w.log")
    started = time.monotonic()
    worker.start()
    # A worker of a new app is healthy in ~10 s here (3x that on a busy machine); a partition
    # that recovery cannot end keeps it unhealthy for good.
    await worker.wait_ready(timeout_s=90.0)
    took = time.monotonic() - started
    log = (tmp_path / "w.log").read_text(errors="replace")
    assert "Recovery complete" in log, worker.tail()

    async with httpx.AsyncClient(timeout=10.0) as client:
        for seller, count in expected.items():
            answer = await get_json(client, worker.url, f"/api/v1/sellers/{seller}/sales")
            assert answer["salesCount"] == count, (seller, answer, took)
