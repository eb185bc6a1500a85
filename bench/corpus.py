"""The records every system under test reads: traffic.records() with a tag unique to the run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from aiokafka import AIOKafkaProducer

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import KafkaConnection, as_connection
from karrot_streams.traffic import Record, TrafficSpec, produce, records


def build(writers: Mapping[str, WriterSchema], count: int, tag: str, seed: int) -> list[Record]:
    """``count`` valid events, ids and categories prefixed with ``tag`` (no poison)."""
    return list(records(TrafficSpec(count=count, tag=tag, seed=seed), writers))


def event_ids(batch: Sequence[Record]) -> list[str]:
    return [r.event.event_id for r in batch if r.event is not None]


async def produce_to(
    bootstrap: str | KafkaConnection,
    batch: Sequence[Record],
    topic_of: Callable[[str], str] = lambda t: t,
) -> float:
    """Produce as fast as possible (traffic.produce), optionally to renamed topics."""
    renamed = [replace(r, topic=topic_of(r.topic)) for r in batch]
    return await produce(bootstrap, renamed)


async def produce_paced(
    bootstrap: str | KafkaConnection,
    batch: Sequence[Record],
    rate: float,
    deadline_s: float,
    topic_of: Callable[[str], str] = lambda t: t,
) -> dict[str, float]:
    """Produce at ``rate`` events/s; the send time (epoch s) of each event id.

    Like traffic.produce(rate=...), with the clock read at each send and linger kept short, so
    the send time is the moment a client handed the event over.
    """
    producer = AIOKafkaProducer(**as_connection(bootstrap).client_kwargs(), acks="all", linger_ms=1)
    await producer.start()
    sent: dict[str, float] = {}
    pending = []
    started = time.perf_counter()
    stop_at = started + deadline_s
    try:
        for n, record in enumerate(batch):
            now = time.perf_counter()
            if now > stop_at:
                break
            ahead = n / rate - (now - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
            if record.event is not None:
                sent[record.event.event_id] = time.time()
            topic = topic_of(record.topic)
            pending.append(await producer.send(topic, value=record.raw, key=record.key))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
