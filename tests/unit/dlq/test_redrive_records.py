"""The dlq_redrive table through a scripted aiopg: claims, lookups, marks and releases, each in
one statement over sorted positions, and an unreachable database as a transient failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiopg
import psycopg2
import pytest

from karrot_streams.dlq.records import RedriveRecords, Target
from karrot_streams.events.failures import TransientFailure
from tests.unit.store.fake_pg import FakeDatabase

CLAIMED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> FakeDatabase:
    database = FakeDatabase()
    monkeypatch.setattr(aiopg, "connect", database.connect)
    return database


async def test_nothing_asked_sends_nothing(db: FakeDatabase) -> None:
    async with RedriveRecords.connect("postgresql://db/karrot") as records:
        assert await records.lookup("dlq.item-events", []) == {}
        assert await records.claim("dlq.item-events", {}, "r1") == {}
        await records.set_pending("dlq.item-events", {}, "r1")
        await records.mark_redriven("dlq.item-events", {})
        await records.release("dlq.item-events", [], "r1")
    assert db.statements == []
    assert db.connects[0]["timeout"] == 10.0


async def test_claims_go_in_one_statement_and_return_what_was_claimed(db: FakeDatabase) -> None:
    # The other letter was claimed by someone else; this one was left pending by a request.
    db.respond = lambda sql, params: [(0, 5, "item-events", 1, 40)]

    async with RedriveRecords.connect("postgresql://db/karrot") as records:
        claimed = await records.claim(
            "dlq.item-events", {(1, 2): "item-events", (0, 5): "item-events"}, "r1", lease_s=30
        )

    assert claimed == {(0, 5): Target("item-events", 1, 40)}
    [(sql, params)] = db.statements
    assert "dlq_redrive" in sql
    # Positions sorted: claims of concurrent requests take their row locks in one order.
    assert params == ("dlq.item-events", "r1", [0, 1], [5, 2], ["item-events"] * 2, 30.0)


async def test_lookup_tells_claims_from_redriven_letters(db: FakeDatabase) -> None:
    redriven_at = datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    db.respond = lambda sql, params: [
        (0, 5, "r1", CLAIMED, "item-events", 2, 77, redriven_at, None, None),
        (1, 2, "r2", CLAIMED, "item-events", None, None, None, 0, 12),
        (1, 3, "r2", CLAIMED, "item-events", None, None, None, None, None),
    ]

    async with RedriveRecords.connect("postgresql://db/karrot") as records:
        found = await records.lookup("dlq.item-events", [(1, 2), (0, 5)])

    done, claimed = found[0, 5], found[1, 2]
    assert done.target == Target("item-events", 2, 77)
    assert done.redriven_at == redriven_at
    assert claimed.target is None
    assert claimed.request_id == "r2"
    assert claimed.pending == Target("item-events", 0, 12)
    assert not claimed.redriven
    assert found[1, 3].pending is None
    assert db.statements[0][1] == ([0, 1], [5, 2], "dlq.item-events")


async def test_marks_and_releases_carry_their_targets_and_request(db: FakeDatabase) -> None:
    async with RedriveRecords.connect("postgresql://db/karrot") as records:
        await records.mark_redriven(
            "dlq.item-events", {(0, 5): Target("item-events", 2, 77), (0, 1): Target("x", 0, 3)}
        )
        await records.release("dlq.item-events", [(0, 9)], "r1")
        await records.set_pending("dlq.item-events", {(0, 5): Target("item-events", 2, 78)}, "r1")

    marked, released, noted = (params for _, params in db.statements)
    assert marked == ([0, 0], [1, 5], ["x", "item-events"], [0, 2], [3, 77], "dlq.item-events")
    assert released == ([0], [9], "dlq.item-events", "r1", "dlq.item-events", "r1")
    assert noted == ([0], [5], ["item-events"], [2], [78], "dlq.item-events", "r1")
    assert Target("x", 0, 3).to_json() == {"topic": "x", "partition": 0, "offset": 3}


async def test_an_unreachable_database_is_a_transient_failure(
    db: FakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(sql: str, params: Sequence[Any] | None) -> None:
        raise psycopg2.OperationalError("server closed the connection")

    db.respond = respond
    async with RedriveRecords.connect("postgresql://db/karrot") as records:
        with pytest.raises(TransientFailure, match="PostgreSQL unavailable"):
            await records.release("dlq.item-events", [(0, 9)], "r1")

    def refuse(dsn: str, **kwargs: Any) -> Any:
        raise psycopg2.OperationalError("connection refused")

    monkeypatch.setattr(aiopg, "connect", refuse)
    with pytest.raises(TransientFailure):
        async with RedriveRecords.connect("postgresql://db/karrot"):
            pass
