"""Sustained end-to-end throughput of one karrot-streams worker.

The events are produced before the worker starts, to topics of the run's own
(``KARROT_TOPIC_PREFIX=bench.<run>.<label>.``): the worker reads nothing but them, and nobody
else reads them. The run is timed from the worker's first output (first event-store row or
first fact) to its last effect: the last event-store row, fact or aggregate table update
(changelog record), whichever is later. It is over when every row exists, the worker has
committed the input offsets past this run's events, and nothing is left unread in its internal
topics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition

from bench import corpus, kafka_io
from bench.context import Bench
from bench.cpu import CpuShare, CpuWindow
from bench.options import Variant
from bench.store_probe import StoreProbe
from bench.worker import READY, Worker
from karrot_streams.events.topics import InternalTopics, TopicNames
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.provision import contract_topics

TIMEOUT_S = 600.0
POLL_S = 0.25

#: Called with the worker once its first row exists; returns a stop function (the profiler).
Attach = Callable[[Worker], Awaitable[Callable[[], Awaitable[None]]]]


@dataclass(frozen=True)
class KarrotRun:
    events: int
    seconds: float  # first output to last effect
    pipeline_seconds: float  # first output to last event-store row
    startup_seconds: float  # process start to "Worker ready"
    rss_bytes: int | None
    cpu: CpuShare | None  # from the first row to the end of the run
    variant: str = ""  # Variant.label: the guarantee (and commit interval) it ran under

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def pipeline_rate(self) -> float:
        return self.events / self.pipeline_seconds


async def _wait_done(
    bench: Bench,
    probe: StoreProbe,
    workers: list[Worker],
    app_id: str,
    names: TopicNames,
    tag: str,
    since: datetime,
    n: int,
    inputs: Mapping[TopicPartition, int],
    attach: Attach | None,
) -> CpuShare | None:
    internal = InternalTopics(app_id, names.prefix).all()
    # A split layout's aggregates process reads the facts in a group of its own.
    facts_group = app_id if len(workers) == 1 else f"{app_id}-aggregates"
    worker = workers[0]
    deadline = time.monotonic() + TIMEOUT_S
    detach: Callable[[], Awaitable[None]] | None = None
    window: CpuWindow | None = None
    try:
        while time.monotonic() < deadline:
            for each in workers:
                if not each.alive():
                    raise RuntimeError(f"worker exited: {each.tail()}")
            rows = await probe.count(tag, since)
            if rows and window is None:
                window = CpuWindow(*(each.pid for each in workers))
                detach = await attach(worker) if attach is not None else None
            if (
                rows >= n
                and await kafka_io.group_reached(bench.bootstrap, app_id, inputs)
                and await kafka_io.group_lag(bench.bootstrap, facts_group, internal) == 0
            ):
                return window.close() if window is not None else None
            await asyncio.sleep(POLL_S)
        raise TimeoutError(f"{app_id}: not done after {TIMEOUT_S}s: {worker.tail()}")
    finally:
        if detach is not None:
            await detach()


async def prepare_topics(bench: Bench, app_id: str, names: TopicNames) -> None:
    """Create the run's input, output and internal topics, as a deployed app finds them.

    Before 5d24784 declared the aggregate stages' source topics internal, a fresh app
    subscribed before they existed and Faust ignored them until its next metadata refresh
    (5 minutes): the aggregates stood still. Made here, the measurement does not depend on that.
    """
    wanted = [*contract_topics(names), *InternalTopics(app_id, names.prefix).all()]
    await kafka_io.create_topics(bench.bootstrap, wanted, bench.settings.topic_partitions)


async def delete_run_topics(bench: Bench, app_id: str, names: TopicNames) -> None:
    """Everything the run made: its prefixed topics, and Faust's own named after the app id."""
    ours = await kafka_io.topics_matching(bench.bootstrap, app_id)
    ours += await kafka_io.topics_matching(bench.bootstrap, names.prefix)
    await kafka_io.delete_topics(bench.bootstrap, ours)


def layout_workers(
    bench: Bench, app_id: str, layout: str, names: TopicNames, variant: Variant
) -> list[Worker]:
    """One worker doing everything, or (``split``) a pipeline and an aggregates process."""
    prefix = {"KARROT_TOPIC_PREFIX": names.prefix, **variant.env()}
    if layout == "one":
        return [Worker(app_id, bench.logs / f"{app_id}.data", bench.logs / f"{app_id}.log", prefix)]
    return [
        Worker(
            app_id,
            bench.logs / f"{app_id}-{role}.data",
            bench.logs / f"{app_id}-{role}.log",
            extra_env={**prefix, "KARROT_ROLE": role},
        )
        for role in ("pipeline", "aggregates")
    ]


async def run(
    bench: Bench,
    index: int,
    attach: Attach | None = None,
    layout: str = "one",
    variant: Variant | None = None,
) -> KarrotRun:
    """One throughput run; the same ``index`` gives every variant the same events."""
    variant = variant or bench.options.main
    suffix = f"{'k' if layout == 'one' else 's'}{index}{variant.key}"
    app_id = f"bench-{bench.run_id}-{suffix}"
    tag = f"{bench.run_id}{suffix}-"
    batch = corpus.build(bench.writers, bench.options.events, tag, seed=100 + index)
    names = bench.topics(suffix)
    workers = layout_workers(bench, app_id, layout, names, variant)
    worker = workers[0]
    await prepare_topics(bench, app_id, names)
    internal = InternalTopics(app_id, names.prefix).all()
    try:
        async with StoreProbe.open(bench.dsn) as probe:
            since = await probe.mark()
            await corpus.produce_to(bench.bootstrap, batch, names.physical)
            inputs = await kafka_io.end_offsets(
                bench.bootstrap, [names.physical(t) for t in INPUT_TOPICS]
            )
            for each in workers:
                each.start()
                bench.own_pids.add(each.pid)
            ready = max([await each.wait_for_log(READY, 120) for each in workers])
            bench.note_noise(f"karrot run {index} ({layout})")
            cpu = await _wait_done(
                bench, probe, workers, app_id, names, tag, since, len(batch), inputs, attach
            )
            rss = sum(each.rss() or 0 for each in workers) or None
            rows = await probe.times(tag, since)
        facts = await kafka_io.edge_timestamps(bench.bootstrap, internal)
        changelogs = await kafka_io.topics_matching(bench.bootstrap, names.physical(f"{app_id}-"))
        tables = await kafka_io.edge_timestamps(
            bench.bootstrap, [t for t in changelogs if t.endswith("-changelog")]
        )
    finally:
        for each in workers:
            each.cleanup()
        await delete_run_topics(bench, app_id, names)
    assert rows is not None  # noqa: S101  _wait_done saw them all
    start = min(rows.first, facts[0]) if facts else rows.first
    pipeline_end = max(rows.last, facts[1]) if facts else rows.last
    end = max(pipeline_end, tables[1]) if tables else pipeline_end
    return KarrotRun(
        events=len(batch),
        seconds=end - start,
        pipeline_seconds=pipeline_end - start,
        startup_seconds=ready - worker.started_at,
        rss_bytes=rss,
        cpu=cpu,
        variant=variant.label,
    )
