"""Dependencies going away under load: Kafka, PostgreSQL, the schema registry; and a poison flood.

The stream pauses while a dependency is away and resumes when it is back: nothing lost, no good
event dead-lettered, aggregates exact, commits moving again.

Duplicates. PostgreSQL, the registry and the poison flood cause none (the batch waits before it
sends anything), so their bound is zero. A broker restart can: a send whose acknowledgement was
lost with the connection is sent again (at-least-once, the pipeline cannot know it got through),
and the group's coordinator moves, so offsets acked but not yet committed are read again by the
rejoined consumer. The bound is what the producer sent while the broker was away plus a second of
commit interval and a batch in flight.

Under exactly_once (``guarantee``) no bound: no duplicate, nothing missing, after any of them.
The broker restart takes about a minute, so its CI size runs exactly_once only (both guarantees
in the soak); the PostgreSQL restart and the poison flood are short and run both in CI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.faults.conftest import Workers
from tests.faults.probes import health
from tests.faults.scenario import Scenario, Size, sized
from tests.faults.stackctl import FaultStack
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.faults

SHORT = Size(count=2400, rate=150)
SOAK = Size(count=20000, rate=200)


def outage_s(size: Size) -> float:
    return 8.0 if size is SHORT else 30.0


def still_running(worker: WorkerProcess) -> None:
    assert worker.process is not None
    assert worker.process.poll() is None, f"the worker exited: {worker.tail()}"


@pytest.mark.parametrize(("size", "guarantee"), sized(SHORT, SOAK, slow=True))
async def test_broker_stopped_and_restarted(
    size: Size,
    guarantee: str,
    scenario: Callable[[str], Scenario],
    workers: Workers,
    fault_stack: FaultStack,
) -> None:
    run = scenario("Kafka broker restart")
    worker = workers.start("worker")
    await worker.wait_ready()
    run.watch_commits()
    run.produce(run.traffic(size), size.rate)
    await asyncio.sleep(4)
    run.fault()
    await fault_stack.run("stop", "kafka")
    try:
        await asyncio.sleep(outage_s(size))
    finally:
        await fault_stack.run("start", "kafka")
    run.fault_over()
    bound = int(size.rate * (outage_s(size) + 2)) + 500
    await run.verdict([worker.url], duplicate_bound=bound)
    still_running(worker)


@pytest.mark.parametrize(("size", "guarantee"), sized(SHORT, SOAK))
async def test_postgres_stopped_and_restarted(
    size: Size,
    guarantee: str,
    scenario: Callable[[str], Scenario],
    workers: Workers,
    fault_stack: FaultStack,
) -> None:
    run = scenario("PostgreSQL restart")
    worker = workers.start("worker")
    await worker.wait_ready()
    run.watch_commits()
    run.produce(run.traffic(size), size.rate)
    await asyncio.sleep(3)
    run.fault()
    await fault_stack.run("stop", "postgres")
    try:
        await asyncio.sleep(outage_s(size) / 2)
        status, body = await health(worker.url)
        assert status == 503, body
        assert body["components"]["database"]["status"] == "DOWN"
        await asyncio.sleep(outage_s(size) / 2)
    finally:
        await fault_stack.run("start", "postgres")
    run.fault_over()
    await run.verdict([worker.url])
    still_running(worker)


@pytest.mark.parametrize(
    ("size", "guarantee"), sized(Size(count=3000, rate=250), Size(count=30000, rate=400))
)
async def test_poison_flood(
    size: Size, guarantee: str, scenario: Callable[[str], Scenario], workers: Workers
) -> None:
    """A third of the run sends half poison; before and after, the usual 5%."""
    run = scenario("poison flood (50%)")
    worker = workers.start("worker")
    await worker.wait_ready()
    run.watch_commits()
    third = Size(count=size.count // 3, rate=size.rate)
    before = run.traffic(third, seed=21)
    run.tag = run.tag + "p"
    flood = run.traffic(third, poison_share=0.5, seed=22)
    run.tag = run.tag + "q"
    after = run.traffic(third, seed=23)
    run.tag = run.tag[:-2]
    await run.produce(before, size.rate)
    run.fault()
    await run.produce(flood, size.rate)
    run.fault_over()
    await run.produce(after, size.rate)
    result = await run.verdict([worker.url])
    result.notes.append(f"{sum(1 for r in flood if r.poison)} of {len(flood)} poison in the flood")
    still_running(worker)
