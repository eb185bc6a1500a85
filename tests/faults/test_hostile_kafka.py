"""Hostile bytes on the input topics: each is dead-lettered, bytes and headers intact, and the
worker keeps going. ``tests/integration/test_pipeline.py`` has one of each basic poison kind; this
adds many random ones, cuts of Avro at every region of a record, an output schema's id on an
input topic, payloads at the broker's size limit, and headers no one should send.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaProducer

from karrot_streams.avro.codec import encode
from karrot_streams.avro.framing import frame
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.types import EventType
from karrot_streams.resources import Resources
from karrot_streams.traffic import Record, TrafficSpec, valid_events
from tests.faults.conftest import Workers
from tests.faults.scenario import BOTH, Scenario, Size
from tests.support import kafka

pytestmark = pytest.mark.faults

#: The broker's default ``max.message.bytes`` is 1 MiB + 12; a record batch adds ~80 bytes.
NEAR_LIMIT = 1_048_576 - 2_048

ODD_HEADERS: list[tuple[str, bytes | None]] = [
    ("", b"empty name"),
    ("latin-1", "café".encode("latin-1")),
    ("not-utf8", b"\xff\xfe\xfd\x80"),
    ("none-value", None),
    ("한국어-이름", "값".encode()),
    ("retry_count", b"not a number"),
    ("original_topic", b"forged"),
    ("nul", b"\x00\x00"),
]


def hostile(tag: str, writers: Mapping[str, WriterSchema], enriched_id: int) -> list[Record]:
    rng = random.Random(5)
    spec = TrafficSpec(count=20, tag=tag, seed=77)
    item = next(e for e in valid_events(spec) if e.event_type is EventType.ITEM_CREATED)
    writer = writers["item-events"]
    good = encode(writer.schema_id, writer.parsed, item.to_avro())
    key = f"{tag}hostile".encode()

    def poison(kind: str, raw: bytes) -> Record:
        return Record("item-events", key, raw=raw, poison=kind)

    out = [poison("random", rng.randbytes(rng.randrange(1, 2000))) for _ in range(30)]
    out += [poison(f"truncated@{cut}", good[:cut]) for cut in range(5, len(good), 7)]
    out += [poison("enriched-schema-id", frame(enriched_id, good[5:]))]
    out += [poison("trailing", good + b"\x00")]
    out += [poison("near-limit", frame(writer.schema_id, rng.randbytes(NEAR_LIMIT)))]
    out += [poison("near-limit-garbage", b"\x00" + rng.randbytes(NEAR_LIMIT))]
    # NUL in a string: PostgreSQL text cannot hold it (psycopg2 raises ValueError, which once
    # escaped the batch and crashed the worker on every restart).
    nul_id = replace(item, event_id=str(uuid.uuid4()), aggregate_id=f"{tag}nul\x00id")
    out += [poison("nul-aggregate-id", encode(writer.schema_id, writer.parsed, nul_id.to_avro()))]
    nul_event = {**item.to_avro(), "eventId": "not-a-uuid\x00"}
    out += [poison("nul-event-id", encode(writer.schema_id, writer.parsed, nul_event))]
    return out


async def send_with_headers(bootstrap: str, batch: list[Record]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=1_048_576 + 1024
    )
    await producer.start()
    try:
        for n, record in enumerate(batch):
            headers = [(ODD_HEADERS[n % len(ODD_HEADERS)]), ("seq", str(n).encode())]
            await producer.send_and_wait(
                record.topic, value=record.raw, key=record.key, headers=headers
            )
    finally:
        await producer.stop()


@pytest.mark.parametrize("guarantee", BOTH)
async def test_hostile_records_are_dead_lettered_intact(
    guarantee: str,
    scenario: Callable[[str], Scenario],
    workers: Workers,
    writers: Mapping[str, WriterSchema],
) -> None:
    run = scenario("hostile Kafka input")
    worker = workers.start("worker")
    await worker.wait_ready()
    run.watch_commits()
    resources = Resources.create(run.settings)
    await resources.ready()
    enriched_id = resources.writers["enriched.item-events"].schema_id
    await resources.close()
    bad = hostile(run.tag, writers, enriched_id)
    run.batch += bad
    await send_with_headers(run.settings.kafka_bootstrap, bad)
    # Then ordinary traffic: the worker is still going.
    after = run.traffic(Size(count=400, rate=400), seed=3)
    await run.produce(after, 400)
    run.fault_over()
    result = await run.verdict([worker.url])

    letters = [
        m
        for m in await kafka.read_all(run.settings.kafka_bootstrap, "dlq.item-events")
        if m.key == f"{run.tag}hostile".encode()
    ]
    assert len(letters) == len(bad)
    for letter in letters:
        headers = list(letter.headers)
        seq = int(dict(headers)["seq"])
        name, value = ODD_HEADERS[seq % len(ODD_HEADERS)]
        assert letter.value == bad[seq].raw, f"bytes of {bad[seq].poison} changed"
        if name not in ("retry_count", "original_topic"):
            assert (name, value or b"") in headers, (name, value, headers)
        assert dict(headers)["original_topic"] == b"item-events"
    result.notes.append(f"{len(bad)} hostile records, every one dead-lettered intact")
