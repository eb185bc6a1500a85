"""Rolling restarts without storms (issue 19, item 5): static members restarted on their volumes.

Two workers with static membership (``KARROT_GROUP_INSTANCE_ID``) and data directories of their
own share the partitions under steady traffic. One is stopped with SIGTERM and started again with
the same instance id, data directory and URL, within the session timeout; later the same worker
is SIGKILLed and started again the same way. For each restart:

* the other worker sees no rebalance (its ``karrot_rebalances_total`` does not move) and its
  commits do not pause (the largest ``karrot_last_commit_age_seconds`` it reports from the
  signal until the restarted worker is healthy, and while the restarted worker then drains
  what waited for it; the same before the signal for comparison);
* the restarted worker does not replay its changelogs: it resumes from its RocksDB stores (under
  exactly-once they hold committed writes only, runtime/transactional_store.py), and its
  ``karrot_changelog_records_read_total{replica="active"}`` counts what recovery read, printed
  with the time from its start to a healthy answer and the size of the changelogs;
* with exactly_once nothing is duplicated or lost (the suite's verdict: a ``read_committed``
  count of ``enriched.*`` and ``dlq.*``, the event store and every aggregate against the truth).

The figures are printed and added to the suite's summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.conftest import Workers
from tests.faults.probes import assigned_partitions, wait_for
from tests.faults.scenario import Scenario, Size, sized
from tests.support.worker import WorkerProcess, free_port

pytestmark = pytest.mark.faults

#: Long enough for a worker to stop and start again on this machine (the chart's default is 60 s).
SESSION_TIMEOUT_S = 30
#: The survivor commits every commit interval (0.1 s) while traffic flows: its largest commit
#: age stays well under a second. A rebalance would stop it for the join and the sync, the
#: revocation of every partition (Faust's assignor is eager) and the recovery of what moved.
#: Once the traffic has ended the age only grows (nothing to commit): the traffic is sized to
#: outlast both restarts, and a restart that outlasts it is reported, not judged on its age.
COMMIT_PAUSE_MAX_S = 3.0


async def metric(url: str, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(timeout=10.0) as client:
        text = (await client.get(url + "/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not exported by {url}")


@dataclass
class CommitAges:
    """The largest commit age a worker reports while this watches (sampled every 0.25 s)."""

    url: str
    largest: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError, AssertionError, ValueError):
                age = await metric(self.url, "karrot_last_commit_age_seconds")
                self.largest = max(self.largest, age)
            await asyncio.sleep(0.25)

    async def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return round(self.largest, 2)


async def changelog_offsets(bootstrap: str, app_id: str) -> int:
    """The end offsets of the app's changelog topics, summed: what a full replay would read
    (records and transaction markers)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()  # as load.input_ends
        tps = [
            TopicPartition(topic, p)
            for topic in cluster.topics()
            if topic.startswith(f"{app_id}-") and topic.endswith("-changelog")
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Restart:
    how: str
    rebalances_seen: int
    #: The other worker's largest commit age: before the signal, while the restarted worker is
    #: away (signal to healthy: where a rebalance would stop it), and while it catches up.
    commit_age_before_s: float
    commit_age_away_s: float
    commit_age_catching_up_s: float
    ready_s: float
    away_s: float
    #: The producer was still sending when the last window closed (else ages say nothing).
    traffic_flowing: bool
    records_read: int
    standby_records_read: int
    changelog_offsets: int

    def line(self) -> str:
        return (
            f"{self.how}: other worker saw {self.rebalances_seen} rebalances, largest commit"
            f" age {self.commit_age_away_s:.1f} s while the worker was away (before:"
            f" {self.commit_age_before_s:.1f} s; while it caught up:"
            f" {self.commit_age_catching_up_s:.1f} s); restarted worker healthy"
            f" {self.ready_s:.1f} s after its start ({self.away_s:.1f} s after the signal),"
            f" changelog records read {self.records_read} for its active partitions"
            f" ({self.standby_records_read} for standbys) of {self.changelog_offsets}"
            " changelog offsets"
            + ("" if self.traffic_flowing else " (traffic had ended: commit ages not judged)")
        )


async def largest_commit_age(url: str, until: Awaitable[Any]) -> tuple[float, Any]:
    """The largest commit age ``url`` reports until ``until`` is done, and what it returned."""
    ages = CommitAges(url)
    ages.start()
    try:
        result = await until
    finally:
        largest = await ages.stop()
    return largest, result


async def restart(
    how: str,
    run: Scenario,
    workers: Workers,
    survivor: WorkerProcess,
    leaving: WorkerProcess,
    static: dict[str, str],
    producing: asyncio.Task[float],
) -> tuple[WorkerProcess, Restart]:
    age_before, _ = await largest_commit_age(survivor.url, asyncio.sleep(3))
    rebalances = await metric(survivor.url, "karrot_rebalances_total")
    signalled = time.monotonic()

    async def away() -> tuple[WorkerProcess, float]:
        # In a thread: the producer's traffic keeps going while the worker stops.
        await asyncio.to_thread(leaving.stop if how == "SIGTERM" else leaving.kill)
        run.fault()
        back = workers.start(f"restarted-after-{how}", data="restarted", **static)
        return back, await back.wait_ready()

    age_away, (back, ready_s) = await largest_commit_age(survivor.url, away())
    away_s = time.monotonic() - signalled
    run.fault_over()
    # The survivor goes on while the restarted worker drains what waited for it.
    age_catching_up, _ = await largest_commit_age(survivor.url, asyncio.sleep(4))
    flowing = not producing.done()
    figures = Restart(
        how=how,
        rebalances_seen=int(await metric(survivor.url, "karrot_rebalances_total") - rebalances),
        commit_age_before_s=age_before,
        commit_age_away_s=age_away,
        commit_age_catching_up_s=age_catching_up,
        ready_s=round(ready_s, 1),
        away_s=round(away_s, 1),
        traffic_flowing=flowing,
        records_read=int(
            await metric(back.url, "karrot_changelog_records_read_total", replica="active")
        ),
        standby_records_read=int(
            await metric(back.url, "karrot_changelog_records_read_total", replica="standby")
        ),
        changelog_offsets=await changelog_offsets(run.settings.kafka_bootstrap, run.group),
    )
    print(figures.line())
    return back, figures


# In `make soak` only: 90 s that the fresh-clone CI run cannot spare (it stays under 25 min).
@pytest.mark.soak
@pytest.mark.parametrize(
    ("size", "guarantee"), sized(Size(count=2400, rate=40), Size(count=9000, rate=100), slow=True)
)
async def test_static_members_restart_without_rebalance_or_replay(
    size: Size, guarantee: str, scenario: Callable[[str], Scenario], workers: Workers
) -> None:
    run = scenario("rolling restarts, static members")
    static = {"BROKER_SESSION_TIMEOUT": str(SESSION_TIMEOUT_S)}
    survivor = workers.start("survivor", KARROT_GROUP_INSTANCE_ID="worker-0", **static)
    # The restarted worker keeps its instance id, data directory and URL (a pod's name).
    static.update(KARROT_GROUP_INSTANCE_ID="worker-1", KARROT_WEB_PORT=str(free_port()))
    leaving = workers.start("restarted", data="restarted", **static)
    await survivor.wait_ready()
    await leaving.wait_ready()
    for worker in (survivor, leaving):
        url = worker.url

        async def owned(url: str = url) -> int | None:
            return await assigned_partitions(url)

        assert await wait_for(owned, bool, timeout_s=60), f"{url} never got partitions"
    run.watch_commits()
    # 60 s of traffic in CI: a restart's windows take 20-30 s here.
    producing = run.produce(run.traffic(size), size.rate)
    await asyncio.sleep(3)
    restarts: list[Restart] = []
    for how in ("SIGTERM", "SIGKILL"):
        leaving, figures = await restart(how, run, workers, survivor, leaving, static, producing)
        restarts.append(figures)
    # Under at_least_once (the soak) the SIGKILL replays up to a commit interval of output,
    # as in test_workers.py; under exactly_once the verdict allows none.
    result = await run.verdict(
        [survivor.url, leaving.url], duplicate_bound=int(size.rate * 2.0 + 100)
    )
    result.notes.extend(figures.line() for figures in restarts)
    for figures in restarts:
        assert figures.rebalances_seen == 0, figures.line()
        if figures.traffic_flowing:
            paused = max(figures.commit_age_away_s, figures.commit_age_catching_up_s)
            assert paused <= COMMIT_PAUSE_MAX_S, figures.line()
        # Resumed from its stores: at most the records of the commits it had not flushed, far
        # from the changelogs' size.
        assert figures.records_read * 10 < figures.changelog_offsets, figures.line()
    started = time.monotonic() - run.started
    print(f"rolling restarts scenario: {started:.0f} s")
