"""The raw limit: a plain aiokafka consume -> fastavro decode -> re-encode -> produce loop.

Same records, same broker, same durability (acks=all, every batch acknowledged before the next
is read), none of the pipeline's work: no validation, enrichment, tables or database.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import corpus, kafka_io
from bench.context import Bench
from bench.cpu import CpuShare, CpuWindow
from karrot_streams.avro.framing import frame, unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import as_connection

PARTITIONS = 4
BATCH = 500
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class RawRun:
    events: int
    seconds: float
    cpu: CpuShare | None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _pass_through(parsed: Mapping[int, Any], value: bytes) -> bytes:
    schema_id, body = unframe(value)
    schema = parsed[schema_id]
    record = fastavro.schemaless_reader(io.BytesIO(body), schema, None, return_record_name=True)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return frame(schema_id, out.getvalue())


async def _drain(
    bench: Bench, source: str, sink: str, expected: int, parsed: Mapping[int, Any]
) -> tuple[float, CpuShare | None]:
    consumer = AIOKafkaConsumer(
        source,
        **as_connection(bench.bootstrap).client_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        **as_connection(bench.bootstrap).client_kwargs(),
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        first_send: float | None = None
        window: CpuWindow | None = None
        deadline = time.monotonic() + TIMEOUT_S
        while done < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            acks = []
            for messages in batches.values():
                for message in messages:
                    value = _pass_through(parsed, message.value)
                    if first_send is None:
                        first_send = time.perf_counter()
                        window = CpuWindow(os.getpid())
                    acks.append(await producer.send(sink, value, key=message.key))
                    done += 1
            await asyncio.gather(*acks)
        if done < expected or first_send is None:
            raise TimeoutError(f"raw pass-through read {done} of {expected} records")
        return time.perf_counter() - first_send, window.close() if window else None
    finally:
        await producer.stop()
        await consumer.stop()


async def run(bench: Bench, index: int, writers: Mapping[str, WriterSchema]) -> RawRun:
    prefix = f"bench.{bench.run_id}.raw{index}"
    source, sink = f"{prefix}.in", f"{prefix}.out"
    batch = corpus.build(writers, bench.options.events, f"{bench.run_id}r{index}-", seed=index)
    parsed = {w.schema_id: w.parsed for w in writers.values()}
    await kafka_io.create_topics(bench.bootstrap, (source, sink), PARTITIONS)
    try:
        await corpus.produce_to(bench.bootstrap, batch, lambda _: source)
        seconds, cpu = await _drain(bench, source, sink, len(batch), parsed)
    finally:
        await kafka_io.delete_topics(bench.bootstrap, (source, sink))
    return RawRun(len(batch), seconds, cpu)
