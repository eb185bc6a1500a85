"""The open stats view serves event-store counts from a cache a timer refreshes on its own
connection: polling it never queries the database per request."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import aiopg
import httpx
import pytest

from karrot_streams.settings import Settings
from karrot_streams.store.status_counts import StatusCounts
from tests.integration.conftest import StartWorker
from tests.support.worker import free_port

pytestmark = pytest.mark.integration

REFRESH_S = 4


async def test_concurrent_refreshes_share_one_query(
    settings: Settings, input_writers: object
) -> None:
    cache = StatusCounts(settings.database_dsn)
    try:
        await asyncio.gather(*(cache.refresh() for _ in range(20)))
        assert cache.refreshes == 1
        assert cache.error is None
        assert cache.counts is not None
        assert sum(cache.counts.values()) >= 0
        assert cache.sampled_at is not None
    finally:
        await cache.close()


async def test_a_database_that_does_not_answer_is_an_error_not_an_exception() -> None:
    cache = StatusCounts(f"postgresql://karrot:karrot@127.0.0.1:{free_port()}/karrot", timeout_s=2)
    started = time.monotonic()
    await cache.refresh()
    assert time.monotonic() - started < 5
    assert cache.counts is None
    assert cache.error is not None


async def test_the_view_serves_the_timers_sample(
    settings: Settings,
    input_writers: object,
    start_worker: StartWorker,
) -> None:
    worker = await start_worker(KARROT_STATS_REFRESH_S=str(REFRESH_S))
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:

        async def sampled() -> tuple[float, datetime]:
            asked = time.time()
            answer = await http.get("/api/v1/monitoring/stats")
            assert answer.status_code == 200, answer.text
            store = answer.json()["eventStore"]
            assert store["counts"] is not None, store
            return asked, datetime.fromisoformat(store["sampledAt"])

        await sampled()  # the first call may take the first sample itself
        started = time.monotonic()
        calls = [await sampled() for _ in range(10)]
        elapsed = time.monotonic() - started
        # Every answer is a sample taken before it was asked for, never one taken for it.
        for asked, at in calls:
            assert at.timestamp() <= asked, (asked, at)
        samples = {at for _, at in calls}
        assert len(samples) <= elapsed / REFRESH_S + 2, (len(samples), elapsed)
        first = max(samples)
        deadline = time.monotonic() + 3 * REFRESH_S
        while (later := (await sampled())[1]) == first:
            assert time.monotonic() < deadline, "the timer never refreshed the counts"
            await asyncio.sleep(0.5)
        assert later > first

    # The counts come over a connection of their own, not the pipeline's pool.
    async with aiopg.connect(settings.database_dsn) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'karrot-stats'"
        )
        (connections,) = await cur.fetchone()
    assert connections >= 1
