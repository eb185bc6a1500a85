"""The event store, migrations and status counts against a scripted aiopg: which statements they
send with which parameters, and which database errors mean "wait" rather than "bad row"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiopg
import psycopg2
import pytest

from karrot_streams.events.failures import TransientFailure
from karrot_streams.store import migrations
from karrot_streams.store.errors import RowsRefused
from karrot_streams.store.event_store import EventStore, Status, StoreRow, collapse
from karrot_streams.store.status_counts import StatusCounts
from tests.unit.store.fake_pg import FakeDatabase

SEOUL = timezone(timedelta(hours=9))
AT = datetime(2026, 11, 30, 18, 0, tzinfo=SEOUL)


def naive_utc(hour: int, minute: int = 0) -> datetime:
    """A time as the TIMESTAMP columns hold it: UTC, without a zone."""
    return datetime(2026, 11, 30, hour, minute, tzinfo=UTC).replace(tzinfo=None)


def sample(counts: StatusCounts) -> tuple[dict[str, int] | None, str | None]:
    return counts.counts, counts.error


def row(event_id: str, status: Status, **changes: Any) -> StoreRow:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "aggregate_id": "a1",
        "event_type": "ITEM_CREATED",
        "data": {"eventId": event_id, "title": "자전거"},
        "event_time": AT,
        "status": status,
    }
    return StoreRow.of(**{**fields, **changes})


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> FakeDatabase:
    database = FakeDatabase()
    monkeypatch.setattr(aiopg, "create_pool", database.create_pool)
    monkeypatch.setattr(aiopg, "connect", database.connect)
    return database


def test_collapse_keeps_the_most_advanced_status_per_event() -> None:
    rows = [
        row("e1", Status.CREATED),
        row("e1", Status.PROCESSED),
        row("e1", Status.FAILED),
        row("e2", Status.PUBLISHED),
    ]
    assert {(r.event_id, r.status) for r in collapse(rows)} == {
        ("e1", Status.PROCESSED),
        ("e2", Status.PUBLISHED),
    }


async def test_upsert_sends_one_statement_of_arrays_in_naive_utc(db: FakeDatabase) -> None:
    store = EventStore("postgresql://db/karrot")
    await store.upsert(
        [
            row("e1", Status.PROCESSED),
            row("e1", Status.CREATED),
            row("e2", Status.FAILED, failure_reason="InvalidEvent: x"),
        ]
    )

    [(sql, params)] = db.statements
    assert "INSERT INTO event_store" in sql
    assert params is not None
    ids, _, _, data, times, statuses, reasons, published = params
    assert ids == ["e1", "e2"]
    assert statuses == ["PROCESSED", "FAILED"]
    assert reasons == [None, "InvalidEvent: x"]
    assert times == [naive_utc(9)] * 2  # the columns hold UTC without a zone
    assert published == [None, None]
    assert "자전거" in data[0]  # JSON kept readable, not \\u-escaped
    assert len(db.pools) == 1


async def test_upsert_drops_ids_with_nul_and_replaces_nul_elsewhere(db: FakeDatabase) -> None:
    store = EventStore("postgresql://db/karrot")
    await store.upsert([row("bad\x00id", Status.PROCESSED)])
    assert db.statements == []  # nothing left to write: no round trip

    await store.upsert([row("e1", Status.FAILED, aggregate_id="a\x00b", failure_reason="r\x00")])
    params = db.statements[0][1]
    assert params is not None
    assert params[1] == ["a\ufffdb"]
    assert params[6] == ["r\ufffd"]


@pytest.mark.parametrize(
    "error",
    [psycopg2.OperationalError("server closed"), psycopg2.InterfaceError("closed"), OSError(111)],
)
async def test_an_unreachable_database_is_a_transient_failure(
    db: FakeDatabase, error: Exception
) -> None:
    def respond(sql: str, params: Sequence[Any] | None) -> None:
        raise error

    db.respond = respond
    store = EventStore("postgresql://db/karrot")
    with pytest.raises(TransientFailure, match="PostgreSQL unavailable"):
        await store.upsert([row("e1", Status.PROCESSED)])
    assert await store.ping() is False


async def test_a_bad_row_is_a_database_error_not_an_outage(db: FakeDatabase) -> None:
    def respond(sql: str, params: Sequence[Any] | None) -> None:
        raise psycopg2.DataError("value too long")

    db.respond = respond
    # What BatchHandler takes for "write the rows one by one", never for "wait": the store
    # answers a database error with RowsRefused, which is no TransientFailure.
    with pytest.raises(RowsRefused, match="value too long") as refused:
        await EventStore("postgresql://db/karrot").upsert([row("e1", Status.PROCESSED)])
    assert not isinstance(refused.value, TransientFailure)
    assert isinstance(refused.value.__cause__, psycopg2.DataError)


async def test_get_reads_a_row_with_aware_times(db: FakeDatabase) -> None:
    stored = (
        "e1",
        "a1",
        "ITEM_CREATED",
        "FAILED",
        naive_utc(9),
        naive_utc(9, 1),
        "InvalidEvent: x",
        "{}",
    )
    db.respond = lambda sql, params: [stored] if "FROM event_store" in sql else None
    store = EventStore("postgresql://db/karrot")

    found = await store.get("e1")

    assert found is not None
    assert (found.status, found.failure_reason) == (Status.FAILED, "InvalidEvent: x")
    assert found.event_time == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert found.published_at == datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    assert await store.get("e\x00") is None  # never sent: PostgreSQL refuses NUL in text


async def test_get_of_an_unknown_id_is_none_and_counts_come_grouped(db: FakeDatabase) -> None:
    db.respond = lambda sql, params: [("PROCESSED", 3), ("FAILED", 1)] if "GROUP BY" in sql else []
    store = EventStore("postgresql://db/karrot")

    assert await store.get("nope") is None
    assert await store.counts_by_status() == {"PROCESSED": 3, "FAILED": 1}
    assert await store.ping() is True
    await store.mark_published("e1", AT)
    assert db.statements[-1][1] == (naive_utc(9), "e1")
    await store.close()
    assert db.pools[0].closed
    await store.close()  # closing twice is harmless


# -- migrations ------------------------------------------------------------------------------


@pytest.fixture
def migrations_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDatabase:
    """A scripted database, and two migrations in a directory of their own."""
    (tmp_path / "V2__second.sql").write_text("CREATE TABLE b ();", encoding="utf-8")
    (tmp_path / "V1__first.sql").write_text("CREATE TABLE a ();", encoding="utf-8")
    (tmp_path / "README.md").write_text("not a migration", encoding="utf-8")
    original = migrations.pending_files
    monkeypatch.setattr(migrations, "pending_files", lambda: original(tmp_path))
    database = FakeDatabase()
    monkeypatch.setattr(aiopg, "connect", database.connect)
    return database


def test_pending_files_are_the_versioned_sql_files_in_order() -> None:
    files = migrations.pending_files()
    versions = [version for version, _ in files]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert all(path.suffix == ".sql" for _, path in files)


async def test_missing_migrations_are_applied_in_order_under_the_lock(
    migrations_db: FakeDatabase,
) -> None:
    migrations_db.respond = lambda sql, params: [(1,)] if sql.startswith("SELECT version") else None

    applied = await migrations.migrate("postgresql://db/karrot")

    assert applied == [2]
    sql = migrations_db.sql()
    assert sql[0].startswith("SELECT pg_advisory_lock")
    assert sql[-1].startswith("SELECT pg_advisory_unlock")
    assert "CREATE TABLE b ();" in sql
    assert "CREATE TABLE a ();" not in sql  # V1 was applied before
    assert sql[sql.index("CREATE TABLE b ();") - 1] == "BEGIN"
    assert sql[sql.index("CREATE TABLE b ();") + 2] == "COMMIT"


async def test_a_failing_migration_is_rolled_back_and_the_lock_released(
    migrations_db: FakeDatabase,
) -> None:
    def respond(sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]] | None:
        if sql == "CREATE TABLE a ();":
            raise psycopg2.ProgrammingError("syntax error")
        return [] if sql.startswith("SELECT version") else None

    migrations_db.respond = respond

    with pytest.raises(psycopg2.ProgrammingError):
        await migrations.migrate("postgresql://db/karrot")

    sql = migrations_db.sql()
    assert "ROLLBACK" in sql
    assert "COMMIT" not in sql
    assert "CREATE TABLE b ();" not in sql
    assert sql[-1].startswith("SELECT pg_advisory_unlock")


# -- the stats view's cached counts ----------------------------------------------------------


async def test_status_counts_are_sampled_on_their_own_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = FakeDatabase(lambda sql, params: [("PROCESSED", 5)])
    monkeypatch.setattr(aiopg, "connect", database.connect)
    counts = StatusCounts("postgresql://db/karrot", timeout_s=2.0)

    await counts.first()
    await counts.first()  # a sample exists: no second query

    assert counts.counts == {"PROCESSED": 5}
    assert counts.sampled_at is not None
    assert counts.refreshes == 1
    [connect] = database.connects
    assert "statement_timeout=2000" in connect["options"]
    await counts.refresh()
    assert len(database.connects) == 1  # the connection is reused
    await counts.close()


async def test_status_counts_keep_the_last_error_and_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def respond(sql: str, params: Sequence[Any] | None) -> None:
        raise psycopg2.errors.UndefinedTable('relation "event_store" does not exist')

    database = FakeDatabase(respond)
    monkeypatch.setattr(aiopg, "connect", database.connect)
    counts = StatusCounts("postgresql://db/karrot")

    await counts.refresh()
    assert counts.counts is None
    assert counts.error is not None and counts.error.startswith("UndefinedTable")

    database.respond = lambda sql, params: [("FAILED", 2)]
    await counts.refresh()
    assert sample(counts) == ({"FAILED": 2}, None)
    assert len(database.connects) == 2  # the broken connection was not reused
