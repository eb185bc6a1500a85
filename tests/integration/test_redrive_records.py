"""The ``dlq_redrive`` table on the real PostgreSQL: claims are exclusive, records are kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiopg
import pytest

from karrot_streams.dlq.records import RedriveRecords, Target
from karrot_streams.settings import Settings
from karrot_streams.store.migrations import migrate

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    """A dead-letter topic name of this test's own (the table does not care that it exists)."""
    await migrate(settings.database_dsn)
    name = f"dlq.test-{uuid.uuid4().hex[:8]}"
    yield name
    async with aiopg.connect(settings.database_dsn) as conn, conn.cursor() as cur:
        await cur.execute("DELETE FROM dlq_redrive WHERE dlq_topic = %s", (name,))


async def test_concurrent_claims_never_share_a_letter(settings: Settings, topic: str) -> None:
    wanted = {(p, o): "chat-events" for p in range(4) for o in range(50)}

    async def claim(request_id: str) -> set[tuple[int, int]]:
        async with RedriveRecords.connect(settings.database_dsn) as records:
            return set(await records.claim(topic, wanted, request_id))

    claims = await asyncio.gather(*(claim(f"r{n}") for n in range(6)))
    assert set().union(*claims) == set(wanted)
    assert sum(len(c) for c in claims) == len(wanted), "a letter was claimed twice"


async def test_claim_record_release_and_takeover(settings: Settings, topic: str) -> None:
    async with RedriveRecords.connect(settings.database_dsn) as records:
        wanted = {(0, 1): "chat-events", (0, 2): "chat-events", (1, 7): "chat-events"}
        assert set(await records.claim(topic, wanted, "first")) == set(wanted)
        assert set(await records.claim(topic, wanted, "second")) == set()

        await records.mark_redriven(topic, {(0, 1): Target("chat-events", 3, 99)})
        await records.release(topic, [(0, 2)], "someone-else")  # not theirs: kept
        await records.release(topic, [(0, 2), (0, 1)], "first")  # a record is never released
        found = await records.lookup(topic, [(0, 1), (0, 2), (1, 7), (5, 5)])
        assert set(found) == {(0, 1), (1, 7)}
        assert found[(0, 1)].redriven
        assert found[(0, 1)].target == Target("chat-events", 3, 99)
        assert found[(0, 1)].request_id == "first"
        assert not found[(1, 7)].redriven
        assert found[(1, 7)].target is None

        # Released: the next request claims it at once. Claimed but never produced: only once
        # the lease has passed (a zero lease here). Redriven: never again.
        assert set(await records.claim(topic, wanted, "second")) == {(0, 2)}
        assert set(await records.claim(topic, wanted, "third", lease_s=0.0)) == {(0, 2), (1, 7)}
        assert (await records.lookup(topic, [(1, 7)]))[(1, 7)].request_id == "third"

        await records.mark_redriven(topic, {(0, 1): Target("chat-events", 0, 1)})
        assert (await records.lookup(topic, [(0, 1)]))[(0, 1)].target == Target(
            "chat-events", 3, 99
        )


async def test_a_pending_target_outlives_its_request(settings: Settings, topic: str) -> None:
    async with RedriveRecords.connect(settings.database_dsn) as records:
        wanted = {(0, 1): "chat-events", (0, 2): "chat-events"}
        assert await records.claim(topic, wanted, "first") == {(0, 1): None, (0, 2): None}
        await records.set_pending(topic, {(0, 1): Target("chat-events", 2, 40)}, "first")
        await records.set_pending(topic, {(0, 2): Target("chat-events", 2, 41)}, "not-theirs")
        found = await records.lookup(topic, list(wanted))
        assert found[(0, 1)].pending == Target("chat-events", 2, 40)
        assert not found[(0, 1)].redriven
        assert found[(0, 2)].pending is None

        # Released: the claim without a target goes, the pending one stays with its lease ended.
        await records.release(topic, list(wanted), "first")
        assert set(await records.lookup(topic, list(wanted))) == {(0, 1)}
        assert await records.claim(topic, wanted, "second") == {
            (0, 1): Target("chat-events", 2, 40),
            (0, 2): None,
        }
        assert await records.claim(topic, wanted, "third") == {}  # the lease holds again

        await records.mark_redriven(topic, {(0, 1): Target("chat-events", 2, 40)})
        done = (await records.lookup(topic, [(0, 1)]))[(0, 1)]
        assert done.redriven
        assert done.target == Target("chat-events", 2, 40)
        assert done.pending is None
