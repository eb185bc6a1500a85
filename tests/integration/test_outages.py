"""Dependencies going away while events flow: the stream pauses; nothing is lost or dead."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.settings import Settings
from karrot_streams.traffic import TrafficSpec, produce, records
from tests.support import kafka, store
from tests.support.stack import stack
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


async def test_database_outage_loses_and_dead_letters_nothing(
    settings: Settings, input_writers: dict[str, WriterSchema], worker: WorkerProcess
) -> None:
    tag = f"db{uuid.uuid4().hex[:6]}-"
    before = list(records(TrafficSpec(count=200, tag=tag, seed=1), input_writers))
    during = list(records(TrafficSpec(count=300, tag=tag + "x", seed=2), input_writers))
    ids = {r.event.event_id for r in before + during if r.event is not None}

    await produce(settings.kafka_bootstrap, before)
    await stack("stop", "postgres")
    try:
        await produce(settings.kafka_bootstrap, during)
        await asyncio.sleep(8)  # the worker meets the outage and waits it out
    finally:
        await stack("start", "postgres")

    found = await store.wait_for_statuses(settings.database_dsn, dict.fromkeys(ids, "PROCESSED"))
    missing = [i for i in ids if found.get(i, ("",))[0] != "PROCESSED"]
    assert not missing, f"{len(missing)} events lost in the outage:\n{worker.tail()}"
    await asyncio.sleep(2)
    dead = [
        m
        for t in _topics()
        for m in await kafka.read_all(settings.kafka_bootstrap, f"dlq.{t}")
        if m.key is not None and m.key.startswith(tag.encode())
    ]
    assert dead == [], "a good event was dead-lettered because of the outage"
    assert "PostgreSQL unavailable" in worker.tail(400) or "database unavailable" in worker.tail(
        400
    )


def _topics() -> tuple[str, ...]:
    return ("user-events", "item-events", "payment-events", "chat-events")
