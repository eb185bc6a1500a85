"""A late writer's stale table value in the changelog, after the new owner's newer one: a
recovering worker keeps the newer value, whether it is in the same run of records or already in
its store."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import kafka_connection
from karrot_streams.provision import create_topics
from karrot_streams.settings import Settings
from karrot_streams.tables.aggregates import SellerSales, to_value
from karrot_streams.tables.facts import table_key
from tests.support.api import get_json
from tests.support.worker import WorkerProcess, new_app_id

pytestmark = pytest.mark.integration


def sales(seller_id: str, count: int, mark: int) -> SellerSales:
    amount = 10_000 * count
    return SellerSales(
        seller_id=seller_id,
        sales_count=count,
        gross_amount=amount,
        fee_amount=amount // 30,
        net_amount=amount - amount // 30,
        last_sale_at=1_760_000_000.0 + mark,
        applied={"payment-events:0": mark},
    )


async def write_changelog(settings: Settings, topic: str, values: list[SellerSales]) -> None:
    """Table values as a worker writes them: JSON key, orjson value, the key's partition."""
    producer = AIOKafkaProducer(**kafka_connection(settings).client_kwargs(), acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                topic, orjson.dumps(to_value(value)), key=table_key(value.seller_id)
            )
    finally:
        await producer.stop()


async def sales_count(worker: WorkerProcess, seller_id: str) -> int:
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await get_json(client, worker.url, f"/api/v1/sellers/{seller_id}/sales")
    count: int = answer["salesCount"]
    return count


async def test_a_recovering_worker_keeps_the_newer_value_over_a_later_stale_record(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    app_id = new_app_id()
    changelog = settings.topic_names.changelog(app_id, "sellers")
    await create_topics(settings, [changelog])
    seller = f"{app_id}-seller"
    # The new owner's value (two sales), then a zombie's from before its second sale.
    await write_changelog(settings, changelog, [sales(seller, 2, 10), sales(seller, 1, 5)])

    first = worker_factory(app_id=app_id, data_dir=tmp_path / "data", log_path=tmp_path / "1.log")
    first.start()
    await first.wait_ready()
    assert await sales_count(first, seller) == 2, first.tail()
    first.stop()

    # The newer value is in the worker's store now; another stale record follows it.
    await write_changelog(settings, changelog, [sales(seller, 1, 3)])
    second = worker_factory(app_id=app_id, data_dir=tmp_path / "data", log_path=tmp_path / "2.log")
    second.start()
    await second.wait_ready()
    assert await sales_count(second, seller) == 2, second.tail()
    assert "older than their key's value out" in (tmp_path / "2.log").read_text()
