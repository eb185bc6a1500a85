"""End to end on the real broker, registry and database: valid events land once, poison once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import decode, encode
from karrot_streams.avro.framing import frame, unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.types import EventType
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record, TrafficSpec, produce, records, valid_events
from tests.support import kafka, store
from tests.support.truth import compute
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


def hostile_records(tag: str, writers: dict[str, WriterSchema]) -> list[Record]:
    """One of each way a message can be poison, all on item-events."""
    spec = TrafficSpec(count=50, tag=tag, seed=99)
    item = next(e for e in valid_events(spec) if e.event_type is EventType.ITEM_CREATED)
    item_writer = writers["item-events"]
    user_writer = writers["user-events"]
    good = encode(item_writer.schema_id, item_writer.parsed, item.to_avro())
    user = next(e for e in valid_events(spec) if e.event_type is EventType.USER_CREATED)
    key = f"{tag}hostile".encode()
    bad_price = replace(item, event_id=str(uuid.uuid4()), payload={**item.payload, "price": -1})

    def poison(name: str, raw: bytes | None) -> Record:
        return Record("item-events", key, raw=raw, poison=name)

    return [
        poison("garbage", b"\xde\xad\xbe\xef" * 8),
        poison("magic", b"\x01" + good[1:]),
        poison("unknown-schema", frame(2_000_000_000, good[5:])),
        poison("truncated", good[:-5]),
        poison("other-subject", encode(user_writer.schema_id, user_writer.parsed, user.to_avro())),
        poison("empty", b""),
        poison("enormous", frame(item_writer.schema_id, b"\xfe\xff\xff\xff\x0f" + b"x" * 900_000)),
        Record(
            "item-events",
            key,
            event=bad_price,
            raw=encode(item_writer.schema_id, item_writer.parsed, bad_price.to_avro()),
            poison="invalid-event",
        ),
    ]


async def test_mixed_batch_lands_once_each(
    settings: Settings, input_writers: dict[str, WriterSchema], worker: WorkerProcess
) -> None:
    tag = f"t{uuid.uuid4().hex[:6]}-"
    batch = list(records(TrafficSpec(count=800, poison_share=0.05, tag=tag), input_writers))
    hostile = hostile_records(tag, input_writers)
    batch += hostile
    truth = compute(batch, settings.fee_rate)
    await produce(settings.kafka_bootstrap, batch)

    expected = {i: "PROCESSED" for i in truth.valid_ids} | {i: "FAILED" for i in truth.failed_ids}
    found = await store.wait_for_statuses(settings.database_dsn, expected)
    missing = {i: s for i, s in expected.items() if found.get(i, ("",))[0] != s}
    assert not missing, f"{len(missing)} events without their row; worker log:\n{worker.tail()}"
    bad_price = next(r for r in hostile if r.poison == "invalid-event")
    assert bad_price.event is not None
    assert found[bad_price.event.event_id][1] == "InvalidEvent: Price cannot be negative"

    # Every valid event exactly once in its enriched topic (the row is written before the
    # forward, so poll until the forwards are all there too).
    async def forwarded() -> Counter[str]:
        seen: Counter[str] = Counter()
        for topic in truth.enriched:
            writer = schemas.load(f"{topic}-value")
            for message in await kafka.read_all(settings.kafka_bootstrap, topic):
                if message.key is None or not message.key.startswith(tag.encode()):
                    continue
                _, body = unframe(message.value)
                seen[decode(writer.parsed, body)["eventId"]] += 1
        return seen

    deadline = time.monotonic() + 60
    seen = await forwarded()
    while set(seen) != truth.valid_ids and time.monotonic() < deadline:
        await asyncio.sleep(1)
        seen = await forwarded()
    assert set(seen) == truth.valid_ids
    assert max(seen.values()) == 1, "an event was forwarded twice"

    # Every poison message exactly once in its DLQ, bytes untouched, with the contract headers.
    produced = Counter((r.topic, r.key, r.raw) for r in batch if r.poison)

    async def dead_lettered() -> Counter[tuple[str, bytes | None, bytes | None]]:
        dead: Counter[tuple[str, bytes | None, bytes | None]] = Counter()
        for topic in truth.dead_letters:
            for message in await kafka.read_all(settings.kafka_bootstrap, topic):
                if message.key is None or not message.key.startswith(tag.encode()):
                    continue
                headers = dict(message.headers)
                original = headers["original_topic"].decode()
                assert topic == f"dlq.{original}"
                assert int(headers["original_offset"]) >= 0
                assert int(headers["original_partition"]) >= 0
                assert headers["exception_class"].startswith(b"karrot_streams.events.failures.")
                assert headers["exception_message"]
                assert headers["retry_count"] == b"1"
                failed_at = datetime.fromisoformat(headers["failed_at"].decode())
                assert failed_at.tzinfo is not None
                assert abs((datetime.now(UTC) - failed_at).total_seconds()) < 600
                dead[(original, message.key, message.value)] += 1
        return dead

    deadline = time.monotonic() + 60
    dead = await dead_lettered()
    while dead != produced and time.monotonic() < deadline:
        await asyncio.sleep(1)
        dead = await dead_lettered()
    assert dead == produced

    # The worker is still consuming after all that.
    late = next(e for e in valid_events(TrafficSpec(count=1, tag=tag, seed=5)))
    topic = late.topic
    writer = input_writers[topic]
    after = Record(
        topic,
        late.aggregate_id.encode(),
        late,
        encode(writer.schema_id, writer.parsed, late.to_avro()),
    )
    await produce(settings.kafka_bootstrap, [after])
    found = await store.wait_for_statuses(settings.database_dsn, {late.event_id: "PROCESSED"})
    assert found[late.event_id][0] == "PROCESSED"


async def test_redelivered_event_leaves_one_row(
    settings: Settings, input_writers: dict[str, WriterSchema], worker: WorkerProcess
) -> None:
    tag = f"r{uuid.uuid4().hex[:6]}-"
    event = next(iter(valid_events(TrafficSpec(tag=tag))))
    writer = input_writers[event.topic]
    raw = encode(writer.schema_id, writer.parsed, event.to_avro())
    record = Record(event.topic, event.aggregate_id.encode(), event, raw)
    await produce(settings.kafka_bootstrap, [record, record])
    await store.wait_for_statuses(settings.database_dsn, {event.event_id: "PROCESSED"})
    deadline = time.monotonic() + 30
    copies = 0
    while time.monotonic() < deadline and copies < 2:
        copies = sum(
            1
            for m in await kafka.read_all(settings.kafka_bootstrap, f"enriched.{event.topic}")
            if m.key == event.aggregate_id.encode()
        )
    assert copies == 2, "both deliveries are forwarded (at-least-once downstream)"
    rows = await store.statuses(settings.database_dsn, [event.event_id])
    assert rows == {event.event_id: ("PROCESSED", None)}
