"""A dead-letter topic of 50,000 letters: listing and inspecting stay fast and small.

The letters are produced straight to ``dlq.user-events`` (the list endpoint serves only the four
``dlq.*`` topics) by librdkafka in large batches, in the contract's dead-letter form.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import confluent_kafka
import httpx
import pytest

from karrot_streams.provision import contract_topics, create_topics
from karrot_streams.settings import Settings
from tests.support.worker import API_TOKEN, WorkerProcess

pytestmark = pytest.mark.integration

DLQ = "dlq.user-events"
LETTERS = 50_000
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
INVALID = "karrot_streams.events.failures.InvalidEvent"


def produce_letters(bootstrap: str, tag: str, count: int) -> None:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000, "acks": "all"}
    )
    failures: list[str] = []

    def delivered(err: confluent_kafka.KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    # One millisecond apart: distinct times, so "the newest hundred" is the last hundred produced.
    base_ms = int(time.time() * 1000) - count
    for n in range(count):
        headers = [
            ("original_topic", b"user-events"),
            ("original_partition", b"0"),
            ("original_offset", str(n).encode()),
            ("exception_class", INVALID.encode()),
            ("exception_message", b"InvalidEvent: email is not valid"),
            ("failed_at", datetime.now(UTC).isoformat().encode()),
            ("retry_count", b"1"),
        ]
        # Not Confluent-framed (magic 1): the listing shows "value": null without asking the
        # registry about 50,000 schema ids.
        value = b"\x01" + f"{tag}{n:08d}".encode() * 8
        while True:
            try:
                producer.produce(
                    DLQ,
                    value=value,
                    key=f"{tag}{n}".encode(),
                    headers=headers,
                    on_delivery=delivered,
                    timestamp=base_ms + n,
                )
                break
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let deliveries drain it
        if n % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert not failures, failures[:3]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_listing_50000_letters_answers_in_under_a_second(
    settings: Settings, input_writers: object, worker: WorkerProcess
) -> None:
    await create_topics(settings, contract_topics())
    tag = f"big{uuid.uuid4().hex[:6]}-"
    await asyncio.to_thread(produce_letters, settings.kafka_bootstrap, tag, LETTERS)
    assert worker.process is not None
    async with httpx.AsyncClient(base_url=worker.url, timeout=30.0, headers=AUTH) as http:
        first = await http.get(f"/api/v1/dlq/{DLQ}/messages", params={"limit": "100"})
        assert first.status_code == 200, first.text
        before = rss_kib(worker.process.pid)
        for _ in range(10):
            started = time.monotonic()
            answer = await http.get(f"/api/v1/dlq/{DLQ}/messages", params={"limit": "100"})
            took = time.monotonic() - started
            assert answer.status_code == 200, answer.text
            assert took < 1.0, f"listing took {took:.2f}s"
        after = rss_kib(worker.process.pid)
        body = answer.json()
        # The newest hundred are the last hundred produced (one producer, in order).
        keys = {m["key"] for m in body["messages"]}
        assert keys == {f"{tag}{n}" for n in range(LETTERS - 100, LETTERS)}
        assert body["complete"] is False
        assert body["scanned"]["records"] < 2000, body["scanned"]
        assert after - before < 64 * 1024, f"RSS grew {after - before} KiB over ten listings"

        # Inspect: exactly one record, by partition and offset.
        newest = body["messages"][0]
        one = await http.get(
            f"/api/v1/dlq/{DLQ}/messages",
            params={"partition": newest["partition"], "offset": newest["offset"]},
        )
        assert one.status_code == 200, one.text
        inspected = one.json()
        assert [(m["partition"], m["offset"]) for m in inspected["messages"]] == [
            (newest["partition"], newest["offset"])
        ]
        assert inspected["scanned"]["records"] == 1

        # One partition, an offset range: exactly that range, oldest letters included.
        part = newest["partition"]
        ranged = await http.get(
            f"/api/v1/dlq/{DLQ}/messages",
            params={"partition": part, "fromOffset": 0, "toOffset": 10, "limit": "1000"},
        )
        assert ranged.status_code == 200, ranged.text
        offsets = sorted(m["offset"] for m in ranged.json()["messages"])
        assert offsets == [o for o in range(10) if o in set(offsets)]
        assert ranged.json()["complete"] is True
        assert all(m["partition"] == part for m in ranged.json()["messages"])
