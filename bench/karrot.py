"""Sustained end-to-end throughput of one karrot-streams worker.

The events are produced before the worker starts (its consumer group is first moved to the end
of the input topics, so it skips everything older). The run is timed from the worker's first
output (first event-store row or first fact) to its last effect: the last event-store row, fact
or aggregate table update (changelog record), whichever is later. It is over when every row
exists, the worker has committed the input offsets past this run's events (other people's
workers read the same input topics and may write a row first), and nothing is left unread in
its internal topics.
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
from bench.store_probe import StoreProbe
from bench.worker import READY, Worker
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import INPUT_TOPICS

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
    #: Other people's events the worker read from the shared input topics during the run.
    foreign_events: int

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
    tag: str,
    since: datetime,
    n: int,
    inputs: Mapping[TopicPartition, int],
    attach: Attach | None,
) -> CpuShare | None:
    internal = InternalTopics(app_id).all()
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


async def prepare_internal_topics(bench: Bench, app_id: str) -> None:
    """Create the aggregate stages' source topics, as a deployed app finds them.

    Before 5d24784 declared them internal, a fresh app subscribed before they existed and Faust
    ignored them until its next metadata refresh (5 minutes): the aggregates stood still. Made
    here, the measurement does not depend on that.
    """
    names = InternalTopics(app_id).all()
    await kafka_io.create_topics(bench.bootstrap, names, bench.settings.topic_partitions)


def layout_workers(bench: Bench, app_id: str, layout: str) -> list[Worker]:
    """One worker doing everything, or (``split``) a pipeline and an aggregates process."""
    if layout == "one":
        return [Worker(app_id, bench.logs / f"{app_id}.data", bench.logs / f"{app_id}.log")]
    return [
        Worker(
            app_id,
            bench.logs / f"{app_id}-{role}.data",
            bench.logs / f"{app_id}-{role}.log",
            extra_env={"KARROT_ROLE": role},
        )
        for role in ("pipeline", "aggregates")
    ]


async def run(
    bench: Bench, index: int, attach: Attach | None = None, layout: str = "one"
) -> KarrotRun:
    suffix = "k" if layout == "one" else "s"
    app_id = f"bench-{bench.run_id}-{suffix}{index}"
    tag = f"{bench.run_id}{suffix}{index}-"
    batch = corpus.build(bench.writers, bench.options.events, tag, seed=100 + index)
    workers = layout_workers(bench, app_id, layout)
    worker = workers[0]
    starts = await kafka_io.start_group_at_end(bench.bootstrap, app_id, INPUT_TOPICS)
    await prepare_internal_topics(bench, app_id)
    try:
        async with StoreProbe.open(bench.dsn) as probe:
            since = await probe.mark()
            await corpus.produce_to(bench.bootstrap, batch)
            inputs = await kafka_io.end_offsets(bench.bootstrap, INPUT_TOPICS)
            for each in workers:
                each.start()
                bench.own_pids.add(each.pid)
            ready = max([await each.wait_for_log(READY, 120) for each in workers])
            bench.note_noise(f"karrot run {index} ({layout})")
            cpu = await _wait_done(
                bench, probe, workers, app_id, tag, since, len(batch), inputs, attach
            )
            rss = sum(each.rss() or 0 for each in workers) or None
            rows = await probe.times(tag, since)
        consumed = await kafka_io.consumed_since(bench.bootstrap, app_id, starts)
        facts = await kafka_io.edge_timestamps(bench.bootstrap, InternalTopics(app_id).all())
        changelogs = await kafka_io.topics_matching(bench.bootstrap, f"{app_id}-")
        tables = await kafka_io.edge_timestamps(
            bench.bootstrap, [t for t in changelogs if t.endswith("-changelog")]
        )
    finally:
        for each in workers:
            each.cleanup()
        await kafka_io.delete_topics(
            bench.bootstrap, await kafka_io.topics_matching(bench.bootstrap, app_id)
        )
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
        foreign_events=max(0, consumed - len(batch)),
    )
