"""Produce-to-visible latency at a fixed rate (by default half the end-to-end rate).

Each event's send time is read when it is handed to the producer. It is visible
(a) in the event store at its row's ``created_at``, (b) in the enriched topic when a consumer
here receives it, and (c) in the web API when ``GET /api/v1/categories/{category}`` first counts
it: one probe category is polled every POLL_API_S and its k-th listing (in send order) is taken
as visible once ``itemCount`` reaches k.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from bench import corpus, kafka_io
from bench.context import Bench
from bench.cpu import CpuShare, CpuWindow
from bench.karrot import delete_run_topics, prepare_topics
from bench.options import Variant
from bench.stats import percentile
from bench.store_probe import StoreProbe
from bench.waiting import wait_until
from bench.worker import READY, Worker
from karrot_streams.avro.codec import decode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import as_connection
from karrot_streams.events.enrichment import normalize_category
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import INPUT_TOPICS, EventType
from karrot_streams.traffic import CATEGORIES, Record

POLL_API_S = 0.02
WARMUP_S = 1.0
SETTLE_TIMEOUT_S = 60.0
TOKEN = "test-token"  # noqa: S105  the bench worker's own token (KARROT_API_TOKENS)


@dataclass(frozen=True)
class Percentiles:
    p50_ms: float
    p99_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Percentiles | None:
        if not seconds:
            return None
        ms = [s * 1000 for s in seconds]
        return cls(percentile(ms, 0.5), percentile(ms, 0.99), len(ms))


@dataclass(frozen=True)
class CommitPhase:
    """One part of the worker's transaction commits over a run (exactly_once only): its mean,
    and the bucket bound at or under which 99% of them ended."""

    mean_ms: float
    p99_under_ms: float | None
    commits: int


COMMIT_METRIC = "karrot_transaction_commit_seconds"


def commit_phases(metrics_text: str) -> dict[str, CommitPhase]:
    """The worker's ``karrot_transaction_commit_seconds`` histogram, per phase."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != COMMIT_METRIC:
            continue
        for sample in family.samples:
            phase = sample.labels.get("phase", "")
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets.setdefault(phase, []).append((bound, sample.value))
            elif sample.name.endswith("_sum"):
                sums[phase] = sample.value
            elif sample.name.endswith("_count"):
                counts[phase] = sample.value
    phases = {}
    for phase, count in counts.items():
        if not count:
            continue
        under = next((b for b, c in sorted(buckets.get(phase, [])) if c >= 0.99 * count), None)
        phases[phase] = CommitPhase(
            mean_ms=sums.get(phase, 0.0) / count * 1000,
            p99_under_ms=None if under is None or under == float("inf") else under * 1000,
            commits=int(count),
        )
    return phases


async def _scrape_commit_phases(url: str) -> dict[str, CommitPhase]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        try:
            answer = await client.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        except httpx.HTTPError:
            return {}
    return commit_phases(answer.text) if answer.status_code == 200 else {}


@dataclass(frozen=True)
class LatencyRun:
    rate: float
    sent: int
    store: Percentiles | None
    enriched: Percentiles | None
    api: Percentiles | None
    api_status: str  # "measured", or why it is pending
    #: Median store latency of the last fifth of the events over that of the first fifth: well
    #: above 1 means the worker fell behind at this rate (a growing backlog, not a steady state).
    drift: float | None
    cpu: CpuShare | None  # of the worker while the events were being produced
    variant: str = ""  # Variant.label: the guarantee (and commit interval) it ran under
    #: Where the worker's commits spent their time (exactly_once), by phase.
    commits: Mapping[str, CommitPhase] = field(default_factory=dict)


@dataclass
class Arrivals:
    """Enriched records of this run's events, by event id, when they reached a consumer here."""

    tag: bytes
    writers: Mapping[int, WriterSchema]
    seen: dict[str, float] = field(default_factory=dict)

    async def watch(self, bench: Bench, names: TopicNames, stop: asyncio.Event) -> None:
        topics = [names.enriched(t) for t in INPUT_TOPICS]
        consumer = AIOKafkaConsumer(
            **as_connection(bench.bootstrap).client_kwargs(),
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            # What a downstream reader sees: records of committed transactions only.
            isolation_level="read_committed",
        )
        await consumer.start()
        await asyncio.sleep(0)
        try:
            tps = await kafka_io.partitions_of(consumer, topics)
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                consumer.seek(tp, end)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for messages in batches.values():
                    for m in messages:
                        if m.key is not None and m.key.startswith(self.tag):
                            schema_id, body = unframe(m.value)
                            event_id = str(decode(self.writers[schema_id].parsed, body)["eventId"])
                            self.seen.setdefault(event_id, now)
        finally:
            await consumer.stop()


async def _poll_api(url: str, counts: list[tuple[float, int]], stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=2.0, headers=headers) as client:
        while not stop.is_set():
            began = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.get(url)
                if answer.status_code == 200:
                    counts.append((time.time(), int(answer.json()["itemCount"])))
            await asyncio.sleep(max(0.0, POLL_API_S - (time.monotonic() - began)))


async def _api_status(url: str) -> str:
    async with httpx.AsyncClient(timeout=2.0) as client:
        try:
            answer = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        except httpx.HTTPError as exc:
            return f"pending: {type(exc).__name__}"
    if answer.status_code != 200 or "itemCount" not in answer.text:
        return f"pending: GET categories answered {answer.status_code}"
    return "measured"


def _listings(batch: Sequence[Record], category: str) -> list[str]:
    return [
        r.event.event_id
        for r in batch
        if r.event is not None
        and r.event.event_type is EventType.ITEM_CREATED
        and r.event.payload["category"] == category
    ]


def _api_visible(listings: Sequence[str], counts: Sequence[tuple[float, int]]) -> dict[str, float]:
    """When each listing was first counted: the k-th once ``itemCount`` reached k."""
    visible = {}
    cursor = 0
    for k, event_id in enumerate(listings, start=1):
        while cursor < len(counts) and counts[cursor][1] < k:
            cursor += 1
        if cursor == len(counts):
            break
        visible[event_id] = counts[cursor][0]
    return visible


def _drift(sent: Mapping[str, float], created: Mapping[str, float]) -> float | None:
    ordered = [created[i] - t for i, t in sorted(sent.items(), key=lambda x: x[1]) if i in created]
    fifth = len(ordered) // 5
    if fifth < 10:
        return None
    first, last = statistics.median(ordered[:fifth]), statistics.median(ordered[-fifth:])
    return last / first if first > 0 else None


def _after_warmup(sent: Mapping[str, float], values: Mapping[str, float]) -> list[float]:
    start = min(sent.values()) + WARMUP_S
    return [values[i] - t for i, t in sent.items() if i in values and t >= start]


async def run(bench: Bench, index: int, rate: float, variant: Variant | None = None) -> LatencyRun:
    variant = variant or bench.options.main
    app_id = f"bench-{bench.run_id}-l{index}{variant.key}"
    tag = f"{bench.run_id}l{index}{variant.key}-"
    seconds = bench.options.latency_seconds
    batch = corpus.build(bench.writers, int(rate * seconds), tag, seed=300 + index)
    probe_category = tag + CATEGORIES[0]
    names = bench.topics(f"l{index}{variant.key}")
    worker = Worker(
        app_id,
        bench.logs / f"{app_id}.data",
        bench.logs / f"{app_id}.log",
        {"KARROT_TOPIC_PREFIX": names.prefix, **variant.env()},
    )
    enriched_by_id = {w.schema_id: w for w in bench.enriched_writers.values()}
    arrivals = Arrivals(tag.encode(), enriched_by_id)
    counts: list[tuple[float, int]] = []
    stop = asyncio.Event()
    await prepare_topics(bench, app_id, names)
    try:
        worker.start()
        bench.own_pids.add(worker.pid)
        await worker.wait_for_log(READY, 120)
        url = f"{worker.url}/api/v1/categories/{quote(normalize_category(probe_category))}"
        api_status = await _api_status(url)
        watchers = [asyncio.create_task(arrivals.watch(bench, names, stop))]
        if api_status == "measured":
            watchers.append(asyncio.create_task(_poll_api(url, counts, stop)))
        await asyncio.sleep(1.0)  # the watchers are at the end of their topics
        bench.note_noise(f"latency run {index}")
        window = CpuWindow(worker.pid)
        sent = await corpus.produce_paced(bench.bootstrap, batch, rate, seconds * 3, names.physical)
        cpu = window.close()
        listings = _listings(batch, probe_category)
        created: dict[str, float] = {}
        async with StoreProbe.open(bench.dsn) as probe:

            async def stored() -> bool:
                created.update(await probe.created(set(sent) - set(created)))
                return len(created) >= len(sent)

            await wait_until(stored, SETTLE_TIMEOUT_S, 0.5)

        async def seen() -> bool:
            counted = not counts or counts[-1][1] >= len(listings)
            return len(arrivals.seen) >= len(sent) and counted

        await wait_until(seen, SETTLE_TIMEOUT_S)
        stop.set()
        await asyncio.gather(*watchers)
        commits = await _scrape_commit_phases(worker.url)
    finally:
        stop.set()
        worker.cleanup()
        await delete_run_topics(bench, app_id, names)
    return LatencyRun(
        rate=rate,
        sent=len(sent),
        store=Percentiles.of(_after_warmup(sent, created)),
        enriched=Percentiles.of(_after_warmup(sent, arrivals.seen)),
        api=Percentiles.of(_after_warmup(sent, _api_visible(listings, counts)))
        if api_status == "measured"
        else None,
        api_status=api_status,
        drift=_drift(sent, created),
        cpu=cpu,
        variant=variant.label,
        commits=commits,
    )
