"""Workers dying: SIGKILL mid-stream again and again; two workers, partitions moving away and back.

Duplicates. The enriched and dead-letter topics are at-least-once: a SIGKILL loses the offsets
acked since the last commit (Faust commits every ``broker_commit_interval`` = 1 s), so the records
behind them are read and forwarded again by the next owner. That window is the bound asserted
here, per kill: two seconds of the producer's traffic (the commit interval and the batch being
handled) plus a batch in flight; per rebalance of the two-worker run, three seconds. The event
store and the aggregates count each event once whatever the number of deliveries, and that is
checked exactly.

Under exactly_once (``guarantee``) there is no bound: no duplicate, nothing missing. Both scenarios
take a minute or more each, so the CI size runs exactly_once only; the soak runs both guarantees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import Workers
from tests.faults.probes import assigned_partitions, wait_for
from tests.faults.scenario import Scenario, Size, sized

pytestmark = pytest.mark.faults

SHORT_KILLS = Size(count=2400, rate=60)
SOAK_KILLS = Size(count=15000, rate=100)


def kill_bound(kills: int, size: Size, window_s: float = 2.0) -> int:
    """Replays after ``kills`` SIGKILLs (or rebalances): ``window_s`` of traffic at ``rate`` (the
    1 s commit interval and the batch being handled), plus a batch in flight, per fault."""
    return kills * int(size.rate * window_s + 100)


async def _first_commit_after(run: Scenario, moment: float, timeout_s: float) -> None:
    assert run.watch is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run.watch.recovery_after(moment) is not None:
            return
        await asyncio.sleep(0.5)


@pytest.mark.parametrize(("size", "guarantee"), sized(SHORT_KILLS, SOAK_KILLS, slow=True))
async def test_worker_sigkilled_repeatedly(
    size: Size, guarantee: str, scenario: Callable[[str], Scenario], workers: Workers
) -> None:
    kills = 3 if size is SHORT_KILLS else 8
    run = scenario(f"worker SIGKILL x{kills}")
    worker = workers.start("worker-0", data="data")
    await worker.wait_ready()
    run.watch_commits()
    producing = run.produce(run.traffic(size), size.rate)
    restarted = time.monotonic()
    mid_stream = 0
    for n in range(1, kills + 1):
        # Kill only once this incarnation has committed something: a kill mid-stream.
        await _first_commit_after(run, restarted, timeout_s=60)
        await asyncio.sleep(1.0 + (n % 3) * 0.7)
        worker.kill()
        run.fault()
        worker = workers.start(f"worker-{n}", data="data")
        restarted = time.monotonic()
        run.fault_over()
        await worker.wait_ready()
        mid_stream += 0 if producing.done() else 1
    result = await run.verdict([worker.url], duplicate_bound=kill_bound(kills, size))
    result.notes.append(f"{mid_stream} of {kills} kills while the producer was still sending")


@pytest.mark.parametrize(
    ("size", "guarantee"),
    sized(Size(count=2400, rate=80), Size(count=12000, rate=120), slow=True),
)
async def test_partitions_move_to_the_survivor_and_back(
    size: Size, guarantee: str, scenario: Callable[[str], Scenario], workers: Workers
) -> None:
    run = scenario("two workers, one killed")
    first = workers.start("first")
    second = workers.start("second")
    await first.wait_ready()
    await second.wait_ready()
    shared = await wait_for(
        lambda: assigned_partitions(first.url), lambda n: n is not None and n > 0, 60
    )
    run.watch_commits()
    run.produce(run.traffic(size), size.rate)
    await asyncio.sleep(5)

    second.kill()
    run.fault()
    alone = await wait_for(
        lambda: assigned_partitions(first.url), lambda n: n is not None and n > shared, 60
    )
    assert alone is not None and alone > shared, (
        f"partitions never moved: {shared} -> {alone}; first: {first.state()}"
    )
    run.fault_over()
    await asyncio.sleep(3)

    second = workers.start("second-again", data="second")
    await second.wait_ready()
    back = await wait_for(
        lambda: assigned_partitions(first.url), lambda n: n is not None and n < alone, 60
    )
    assert back is not None and back < alone, (
        f"partitions never moved back: {alone} -> {back}; first: {first.state()};"
        f" second: {second.state()}"
    )
    # Three moments at which offsets acked since the last commit are read again: the kill, and
    # the two rebalances (Faust's are eager: every partition of every member is revoked and
    # assigned again, so each member replays its own uncommitted window too).
    bound = kill_bound(3, size, window_s=3.0)
    result = await run.verdict([first.url, second.url], duplicate_bound=bound)
    result.notes.append(f"partitions on the survivor: {shared} -> {alone} -> {back}")
