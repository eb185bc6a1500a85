"""Table recovery: a fresh worker (empty data dir) restoring a sellers table of N keys.

The changelog ``bench.<run>.rec.<app_id>-sellers-changelog`` (the run's topic prefix, as the
worker's ``KARROT_TOPIC_PREFIX``) is filled directly, in the format Faust writes:
the key as a JSON string (karrot_streams.pipeline.facts.table_key), the value as the JSON of
``SellerSales`` (karrot_streams.tables.aggregates.to_value), each in the partition the default
partitioner gives its key. Recovery time runs from process start to Faust's "Worker ready";
one recovered key is then read back through ``GET /api/v1/sellers/{id}/sales``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench import kafka_io
from bench.context import Bench
from bench.cpu import process_cpu_s
from bench.karrot import delete_run_topics, prepare_topics
from bench.worker import READY, Worker
from karrot_streams.connections import as_connection
from karrot_streams.events.topics import TopicNames
from karrot_streams.tables.aggregates import SellerSales, to_value
from karrot_streams.tables.facts import table_key

RESTORING = "Restoring state from changelog topics"
RESTORED = "Done reading from changelog topics"
READY_TIMEOUT_S = 600.0
TOKEN = "test-token"  # noqa: S105  the bench worker's own token


@dataclass(frozen=True)
class RecoveryRun:
    keys: int
    seconds: float  # process start to "Worker ready"
    restore_seconds: float | None  # Faust's changelog-reading phase alone
    verified: bool  # a recovered key answered through the web API
    rss_bytes: int | None
    cpu_seconds: float | None  # the worker's user + system CPU, start to ready


def seller(tag: str, n: int) -> SellerSales:
    amount = 10_000 + n % 1000
    return SellerSales(
        seller_id=f"{tag}seller-{n:07d}",
        sales_count=n % 7 + 1,
        gross_amount=amount,
        fee_amount=amount // 30,
        net_amount=amount - amount // 30,
        last_sale_at=1_760_000_000.0 + n,
        applied={"payment-events:0": n},
    )


async def fill(bench: Bench, app_id: str, names: TopicNames, tag: str, keys: int) -> float:
    """Write ``keys`` changelog records; return the seconds it took."""
    topic = names.changelog(app_id, "sellers")
    partitions = bench.settings.topic_partitions
    await kafka_io.create_topics(
        bench.bootstrap, [topic], partitions, {"cleanup.policy": "compact"}
    )
    producer = AIOKafkaProducer(
        **as_connection(bench.bootstrap).client_kwargs(),
        acks="all",
        linger_ms=20,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        batches = [producer.create_batch() for _ in range(partitions)]
        pending = []
        for n in range(keys):
            sale = seller(tag, n)
            key = table_key(sale.seller_id)
            value = json.dumps(to_value(sale)).encode()
            partition = (murmur2(key) & 0x7FFFFFFF) % partitions
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                pending.append(
                    await producer.send_batch(batches[partition], topic, partition=partition)
                )
                batches[partition] = producer.create_batch()
                batches[partition].append(key=key, value=value, timestamp=None)
        for partition, batch in enumerate(batches):
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))
        for future in pending:
            await future
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _verify(worker: Worker, tag: str, keys: int) -> bool:
    probe = seller(tag, keys - 1)
    url = f"{worker.url}/api/v1/sellers/{probe.seller_id}/sales"
    async with httpx.AsyncClient(timeout=5.0) as client:
        try:
            answer = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        except httpx.HTTPError:
            return False
    return answer.status_code == 200 and answer.json().get("salesCount") == probe.sales_count


async def recover(
    bench: Bench, app_id: str, names: TopicNames, tag: str, keys: int, index: int
) -> RecoveryRun:
    worker = Worker(
        app_id,
        bench.logs / f"{app_id}.r{index}.data",
        bench.logs / f"{app_id}.r{index}.log",
        {"KARROT_TOPIC_PREFIX": names.prefix},
    )
    try:
        worker.start()
        bench.own_pids.add(worker.pid)
        bench.note_noise(f"recovery run {index}")
        ready = await worker.wait_for_log(READY, READY_TIMEOUT_S)
        cpu = process_cpu_s(worker.pid)
        began, ended = worker.log_time(RESTORING), worker.log_time(RESTORED)
        return RecoveryRun(
            keys=keys,
            seconds=ready - worker.started_at,
            restore_seconds=ended - began if began is not None and ended is not None else None,
            verified=await _verify(worker, tag, keys),
            rss_bytes=worker.rss(),
            cpu_seconds=cpu,
        )
    finally:
        worker.cleanup()


async def run(bench: Bench) -> tuple[float, list[RecoveryRun]]:
    """Fill one changelog, then recover it ``runs`` times; the fill time and each recovery."""
    app_id = f"bench-{bench.run_id}-rec"
    tag = f"{bench.run_id}rec-"
    keys = bench.options.recovery_keys
    names = bench.topics("rec")
    await prepare_topics(bench, app_id, names)
    try:
        filled = await fill(bench, app_id, names, tag, keys)
        runs = [
            await recover(bench, app_id, names, tag, keys, i) for i in range(bench.options.runs)
        ]
    finally:
        await delete_run_topics(bench, app_id, names)
    return filled, runs
