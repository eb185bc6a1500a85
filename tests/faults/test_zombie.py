"""A zombie worker: frozen longer than its session, its partitions taken over, then resumed.

Two workers of one group drain a backlog (mixed events, payments for ~30 sellers) while the
upstream keeps producing. One is SIGSTOPped for longer than the session timeout (the app's 15 s;
the suite's workers run 8 s, FAST_REBALANCE): the group drops it and the other takes its
partitions and keeps committing. The frozen one is SIGCONTed while the other is still processing
(asserted: the producer still sends, the survivor committed during the freeze): it wakes up with
batches, table writes and (under exactly_once) a transaction of a generation that is gone. Then
everything is processed, both stop, the zombie's local state is wiped and it starts alone, so
every table is rebuilt from its changelog.

Verdict: every aggregate equal to the truth through the rebuilt worker's API, under both
guarantees (a zombie's late changelog writes must not count twice); under exactly_once no
duplicate and nothing missing in ``enriched.*`` and ``dlq.*`` read ``read_committed``; under
at_least_once nothing missing, duplicates reported only. The zombie may exit by itself once it
learns it was fenced (a non-zero exit is accepted for it, and reported); the survivor must not.

CI size (~29,000 events, about 90 s) under exactly_once only: a second run would add
as much again to ``make test``. The soak (``-m soak``) runs it under at_least_once too, and both
guarantees at ~80,000.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from tests.faults.conftest import Workers
from tests.faults.load import input_ends
from tests.faults.probes import assigned_partitions, wait_for
from tests.faults.scenario import (
    AT_LEAST_ONCE,
    EXACTLY_ONCE,
    GUARANTEES,
    Scenario,
    Size,
)
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.faults

#: Upstream rate of the backlog: produced before the freeze, as fast as the producer goes.
BACKLOG_RATE = 5000.0


@dataclass(frozen=True)
class ZombieRun:
    backlog: int
    #: Produced at ``rate`` from the backlog's end until after the zombie is resumed.
    tail: int
    rate: float
    #: Longer than the session timeout (the app's 15 s, the suite's 8 s).
    freeze_s: float

    @property
    def tail_s(self) -> float:
        return self.tail / self.rate


SHORT = ZombieRun(backlog=20_000, tail=9_000, rate=200, freeze_s=25)
SOAK = ZombieRun(backlog=60_000, tail=20_000, rate=250, freeze_s=40)


def _alive(worker: WorkerProcess) -> bool:
    return worker.process is not None and worker.process.poll() is None


def _signal(worker: WorkerProcess, sig: signal.Signals) -> None:
    assert worker.process is not None
    os.kill(worker.process.pid, sig)


def _held_by(worker: WorkerProcess) -> Callable[[], Awaitable[int | None]]:
    return lambda: assigned_partitions(worker.url)


async def _partitions(worker: WorkerProcess, timeout_s: float = 60) -> int:
    """Partitions ``worker`` holds; its health view may be slow to answer while it drains."""
    held = await wait_for(
        _held_by(worker), lambda n: n is not None or not _alive(worker), timeout_s
    )
    assert _alive(worker), f"{worker.log_path.stem} exited: {worker.tail()}"
    assert held is not None, f"{worker.log_path.stem} did not answer for {timeout_s}s"
    return int(held)


def _log_mentions(worker: WorkerProcess, word: str) -> int:
    try:
        text = worker.log_path.read_text(errors="replace").lower()
    except FileNotFoundError:
        return 0
    return text.count(word)


@pytest.mark.parametrize(
    ("size", "guarantee"),
    [
        pytest.param(SHORT, EXACTLY_ONCE, id=f"short-{EXACTLY_ONCE}"),
        pytest.param(SHORT, AT_LEAST_ONCE, id=f"short-{AT_LEAST_ONCE}", marks=pytest.mark.soak),
    ]
    + [pytest.param(SOAK, g, id=f"soak-{g}", marks=pytest.mark.soak) for g in GUARANTEES],
)
async def test_zombie_worker_then_tables_rebuilt_from_changelogs(
    size: ZombieRun, guarantee: str, scenario: Callable[[str], Scenario], workers: Workers
) -> None:
    run = scenario("zombie worker, tables rebuilt")
    zombie = workers.start("zombie")
    survivor = workers.start("survivor")
    await asyncio.gather(zombie.wait_ready(), survivor.wait_ready())
    for worker in (zombie, survivor):
        held = await wait_for(_held_by(worker), lambda n: n is not None and n > 0, 60)
        assert held, f"{worker.log_path.stem} never got partitions"
    run.watch_commits()
    assert run.watch is not None

    traffic = run.traffic(Size(count=size.backlog + size.tail, rate=size.rate), sellers=30)
    backlog, tail = traffic[: size.backlog], traffic[size.backlog :]
    await run.produce(backlog, BACKLOG_RATE)
    producing = run.produce(tail, size.rate)
    await asyncio.sleep(3)  # both draining the backlog

    assert _alive(zombie), f"the zombie-to-be exited before the freeze: {zombie.tail()}"
    shared = await _partitions(survivor)
    _signal(zombie, signal.SIGSTOP)
    run.fault()
    frozen_at = time.monotonic()
    try:
        took = await wait_for(
            lambda: assigned_partitions(survivor.url),
            lambda n: n is not None and n > shared,
            size.freeze_s + 60,
        )
        moved_after_s = time.monotonic() - frozen_at
        assert _alive(survivor), f"the survivor exited: {survivor.tail()}"
        assert took is not None and took > shared, f"partitions never moved: {shared} -> {took}"
        await asyncio.sleep(max(0.0, size.freeze_s - (time.monotonic() - frozen_at)))
        # The survivor is still processing when the zombie wakes: the upstream still sends and
        # the survivor committed progress during the freeze, after it took the partitions.
        assert not producing.done(), "the producer finished before the zombie was resumed"
        moved_at = frozen_at + moved_after_s
        assert any(t > moved_at for t in run.watch.advances), "no commit during the freeze"
        assert _alive(survivor), f"the survivor exited: {survivor.tail()}"
    finally:
        _signal(zombie, signal.SIGCONT)
    run.fault_over()
    frozen_s = time.monotonic() - frozen_at

    await producing
    ends = await input_ends(run.settings.kafka_bootstrap)
    caught_up = await run.watch.wait_caught_up(ends, timeout_s=300)
    zombie_after = await assigned_partitions(zombie.url) if _alive(zombie) else None
    assert _alive(survivor), f"the survivor exited: {survivor.tail()}"
    zombie_exit = zombie.process.poll() if zombie.process is not None else None
    survivor.stop()
    zombie.stop()
    assert survivor.process is not None
    assert caught_up, "the group never committed the input's end"

    # The zombie's local state goes; alone, it rebuilds every table from the changelogs.
    shutil.rmtree(zombie.data_dir)
    rebuilt = workers.start("rebuilt", data="zombie")
    recovery_s = await rebuilt.wait_ready(timeout_s=600)

    # Under at_least_once the outputs' duplicates are reported, not bounded (the tables are
    # checked exactly all the same); under exactly_once the verdict allows none.
    bound = len(run.batch) if guarantee == AT_LEAST_ONCE else 0
    result = await run.verdict([rebuilt.url], duplicate_bound=bound)
    result.notes += [
        f"frozen {frozen_s:.0f}s; partitions on the survivor {shared} -> {took} after "
        f"{moved_after_s:.0f}s",
        "zombie "
        + (
            f"exited by itself with {zombie_exit} after it was resumed"
            if zombie_exit is not None
            else f"ran on after it was resumed ({zombie_after} partitions), stopped with "
            f"{zombie.process.returncode if zombie.process else '?'}"
        )
        + f"; its log says 'fenced' {_log_mentions(zombie, 'fenced')} times",
        f"survivor stopped with {survivor.process.returncode}",
        f"tables rebuilt from the changelogs in {recovery_s:.0f}s",
    ]
