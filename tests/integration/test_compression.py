"""Compressed input from an independent producer (librdkafka): every codec is read and processed.

Upstream services often compress (the seed's producer used lz4). aiokafka reads snappy, lz4 and
zstd only with its extras installed; without them the worker crashes at fetch. librdkafka frames
each codec its own way (lz4 frames, zstd's), so this is not our own client talking to itself.
"""

from __future__ import annotations

import asyncio
import uuid

import confluent_kafka
import pytest

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record, TrafficSpec, records
from tests.integration.conftest import StartWorker
from tests.support import store

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")


def produce_compressed(bootstrap: str, codec: str, batch: list[Record]) -> None:
    """Produce ``batch`` with librdkafka compressing with ``codec``; raise on any failed send."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "acks": "all",
            # One message set per partition: many records per compressed batch.
            "linger.ms": 50,
        }
    )
    failures: list[str] = []

    def delivered(err: confluent_kafka.KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for record in batch:
        producer.produce(record.topic, value=record.raw, key=record.key, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    assert left == 0, f"{left} {codec} records not delivered"
    assert not failures, failures


async def test_every_codec_is_processed(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    start_worker: StartWorker,
) -> None:
    # The worker compresses its own output too, so its producer's codec is exercised as well.
    worker = await start_worker(KARROT_PRODUCER_COMPRESSION="zstd")

    expected: dict[str, str] = {}
    for n, codec in enumerate(CODECS):
        tag = f"z{uuid.uuid4().hex[:6]}-"
        batch = list(records(TrafficSpec(count=200, tag=tag, seed=n), input_writers))
        expected |= {r.event.event_id: "PROCESSED" for r in batch if r.event is not None}
        await asyncio.to_thread(produce_compressed, settings.kafka_bootstrap, codec, batch)

    found = await store.wait_for_statuses(settings.database_dsn, expected)
    missing = [i for i, status in expected.items() if found.get(i, ("",))[0] != status]
    assert not missing, f"{len(missing)} of {len(expected)} not processed:\n{worker.tail()}"
    assert worker.process is not None
    assert worker.process.poll() is None, "the worker crashed on compressed input"
    assert "UnsupportedCodecError" not in worker.log_path.read_text(errors="replace")
