"""Trace context from HTTP onto the produced records, read back with an independent client."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from karrot_streams.monitoring.tracing import parse_traceparent
from karrot_streams.settings import Settings
from tests.support.kafka import partitions
from tests.support.worker import API_TOKEN

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
STATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def item(item_id: str) -> dict[str, Any]:
    return {
        "eventType": "ITEM_CREATED",
        "aggregateId": item_id,
        "payload": {
            "itemId": item_id,
            "sellerId": "seller-trace",
            "title": "자전거",
            "price": 1000,
            "category": "스포츠/레저",
        },
    }


async def record_headers(
    bootstrap: str, topic: str, partition: int, offset: int
) -> dict[str, bytes]:
    """The headers of one record, read by a plain aiokafka consumer outside any group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
        (record,) = batch[tp]
        assert record.offset == offset
        return dict(record.headers)
    finally:
        await consumer.stop()


async def publish(base: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        answer = await client.post(base + "/api/v1/events", json=body, headers={**AUTH, **headers})
    assert answer.status_code == 201, answer.text
    published: dict[str, Any] = answer.json()
    return published


async def test_a_publish_keeps_the_callers_trace_context(
    worker_url: str, settings: Settings
) -> None:
    published = await publish(
        worker_url,
        item(f"item-{uuid.uuid4().hex[:8]}"),
        {"traceparent": PARENT, "tracestate": STATE},
    )
    headers = await record_headers(
        settings.kafka_bootstrap, published["topic"], published["partition"], published["offset"]
    )
    assert headers["traceparent"] == PARENT.encode()
    assert headers["tracestate"] == STATE.encode()


async def test_a_publish_without_trace_context_starts_a_trace(
    worker_url: str, settings: Settings
) -> None:
    for sent in ({}, {"traceparent": "00-not-valid-01", "tracestate": "a=b"}):
        published = await publish(worker_url, item(f"item-{uuid.uuid4().hex[:8]}"), sent)
        headers = await record_headers(
            settings.kafka_bootstrap,
            published["topic"],
            published["partition"],
            published["offset"],
        )
        started = parse_traceparent(headers["traceparent"])
        assert started is not None
        assert started.trace_id != "0af7651916cd43dd8448eb211c80319c"
        assert "tracestate" not in headers


async def test_every_record_of_a_batch_carries_the_trace_context(
    worker_url: str, settings: Settings
) -> None:
    body = {"events": [item(f"item-{uuid.uuid4().hex[:8]}") for _ in range(3)]}
    async with httpx.AsyncClient(timeout=30.0) as client:
        answer = await client.post(
            worker_url + "/api/v1/events/batch",
            json=body,
            headers={**AUTH, "traceparent": PARENT, "tracestate": STATE},
        )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 3
    for result in results:
        headers = await record_headers(
            settings.kafka_bootstrap, result["topic"], result["partition"], result["offset"]
        )
        assert headers["traceparent"] == PARENT.encode()
        assert headers["tracestate"] == STATE.encode()


async def records_containing(
    bootstrap: str, topics: list[str], needle: bytes, starts: dict[TopicPartition, int]
) -> list[Any]:
    """Records of ``topics`` after ``starts`` whose value holds ``needle`` (waits for one each)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, Any] = {}
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    if record.value and needle in record.value:
                        found.setdefault(record.topic, record)
            if len(found) == len(topics):
                break
    finally:
        await consumer.stop()
    return list(found.values())


async def test_trace_context_follows_a_record_through_the_pipeline(
    worker_url: str, settings: Settings
) -> None:
    topics = ["enriched.item-events"]
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await probe.start()
    try:
        tps = [tp for topic in topics for tp in await partitions(probe, topic)]
        starts = await probe.end_offsets(tps)
    finally:
        await probe.stop()
    item_id = f"item-{uuid.uuid4().hex[:8]}"
    await publish(worker_url, item(item_id), {"traceparent": PARENT, "tracestate": STATE})
    (enriched,) = await records_containing(
        settings.kafka_bootstrap, topics, item_id.encode(), starts
    )
    headers = dict(enriched.headers)
    assert headers["traceparent"] == PARENT.encode()
    assert headers["tracestate"] == STATE.encode()
