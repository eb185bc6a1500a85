"""A worker that is stuck, with every dependency up, says so and exits non-zero.

The stall is real, not simulated: another session holds a SHARE lock on ``event_store`` (as a
long migration or a forgotten admin transaction would), so the pipeline's upsert hangs. The
database answers ``SELECT 1``, Kafka and the registry answer, the pipeline reports no outage, and
the commits stop: that is stuck. The worker must turn its health DOWN and then exit with a
non-zero status; a worker started after the lock is gone (what a supervisor does) processes every
event, none lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiopg
import pytest

from karrot_streams.settings import Settings
from karrot_streams.traffic import Record
from tests.faults.conftest import Workers
from tests.faults.load import produce_through
from tests.faults.probes import health, wait_for
from tests.faults.scenario import BOTH, Scenario, Size
from tests.support import store

pytestmark = pytest.mark.faults

STUCK_FAST = {
    "KARROT_COMMIT_STALL_S": "4",
    "KARROT_LIVENESS_GRACE_S": "4",
    "KARROT_LIVENESS_CHECK_S": "1",
}


def items_only(batch: list[Record]) -> list[Record]:
    return [r for r in batch if r.topic == "item-events" and not r.poison]


@pytest.mark.parametrize("guarantee", BOTH)
async def test_stuck_worker_reports_down_and_exits_non_zero(
    guarantee: str, scenario: Callable[[str], Scenario], workers: Workers, fault_settings: Settings
) -> None:
    run = scenario("stuck worker (hung DB lock)")
    traffic = items_only(run.traffic(Size(count=400, rate=400)))
    before, during = traffic[: len(traffic) // 2], traffic[len(traffic) // 2 :]
    worker = workers.start("worker", **STUCK_FAST)
    await worker.wait_ready()
    run.batch += before
    await produce_through(fault_settings.kafka_bootstrap, before, rate=400)
    ids = {r.event.event_id: "PROCESSED" for r in before if r.event is not None}
    found = await store.wait_for_statuses(fault_settings.database_dsn, ids, timeout_s=60)
    assert all(found.get(i, ("",))[0] == "PROCESSED" for i in ids), worker.tail()

    async with aiopg.connect(fault_settings.database_dsn) as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute("LOCK TABLE event_store IN SHARE MODE")
        locked_at = time.monotonic()
        run.fault()
        run.batch += during
        await produce_through(fault_settings.kafka_bootstrap, during, rate=400)

        async def commits_down() -> tuple[int, dict[str, object]]:
            return await health(worker.url)

        status, body = await wait_for(
            commits_down,
            lambda answer: (
                answer[0] == 503 and answer[1]["components"]["commits"]["status"] == "DOWN"
            ),
            timeout_s=30,
        )
        assert status == 503, body
        components = body["components"]
        assert components["database"]["status"] == "UP", components
        assert components["broker"]["status"] == "UP", components
        assert worker.process is not None
        code = await asyncio.to_thread(worker.process.wait, 90)
        stopped_after = time.monotonic() - locked_at
        await cur.execute("ROLLBACK")
    run.fault_over()
    assert code != 0, f"a stuck worker must exit non-zero, got {code}"
    log = worker.tail(400)
    assert "Liveness: stuck" in log, log
    assert "commits stalled with every dependency answering" in log, log

    # What a supervisor does: start it again. Nothing was lost.
    run.watch_commits()
    again = workers.start("worker-again", data="worker")
    await again.wait_ready()
    result = await run.verdict([again.url])
    result.notes.append(f"exit status {code}, {stopped_after:.1f}s after the lock was taken")
