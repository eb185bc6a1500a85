"""The event store and the registry, each on its own: migrations, trigger, idempotence, BACKWARD."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aiopg
import fastavro
import pytest

from karrot_streams.avro.registry import SchemaIncompatible, SchemaRegistry
from karrot_streams.avro.schemas import SubjectSchema
from karrot_streams.events.failures import UndecodableMessage
from karrot_streams.settings import Settings
from karrot_streams.store.event_store import EventStore, Status, StoreRow
from karrot_streams.store.migrations import migrate

pytestmark = pytest.mark.integration


def row(event_id: str, status: Status, reason: str | None = None) -> StoreRow:
    return StoreRow.of(
        event_id=event_id,
        aggregate_id="agg-1",
        event_type="ITEM_CREATED",
        data={"eventId": event_id, "title": "의자"},
        event_time=datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
        status=status,
        failure_reason=reason,
    )


async def fetch(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with aiopg.connect(dsn) as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        return list(await cur.fetchall())


async def test_migrations_apply_once_and_the_trigger_stamps_updates(settings: Settings) -> None:
    dsn = settings.database_dsn
    await migrate(dsn)
    assert await migrate(dsn) == []  # a second run applies nothing
    versions = [r[0] for r in await fetch(dsn, "SELECT version FROM schema_migrations")]
    assert 1 in versions
    event_id = str(uuid.uuid4())
    store = EventStore(dsn)
    try:
        await store.upsert([row(event_id, Status.CREATED)])
        (before,) = await fetch(
            dsn,
            "SELECT created_at, updated_at, version FROM event_store WHERE event_id=%s",
            event_id,
        )
        await asyncio.sleep(0.05)
        await store.upsert([row(event_id, Status.PUBLISHED)])
        (after,) = await fetch(
            dsn,
            "SELECT created_at, updated_at, version FROM event_store WHERE event_id=%s",
            event_id,
        )
    finally:
        await store.close()
    assert before[0] == before[1]
    assert after[0] == before[0]
    assert after[1] > before[1], "the BEFORE UPDATE trigger did not move updated_at"
    assert after[2] == before[2] + 1


async def test_status_only_moves_forward_and_replays_change_nothing(settings: Settings) -> None:
    store = EventStore(settings.database_dsn)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    try:
        await store.upsert([row(ids[0], Status.PROCESSED), row(ids[0], Status.PROCESSED)])
        await store.upsert([row(ids[0], Status.CREATED), row(ids[0], Status.PUBLISHED)])
        await store.upsert([row(ids[1], Status.FAILED, "InvalidEvent: bad")])
        await store.upsert([row(ids[1], Status.PROCESSED)])  # redriven and fixed
        await store.upsert([row(ids[2], Status.PROCESSED)])
        await store.upsert([row(ids[2], Status.FAILED, "late duplicate")])
        got = {i: await store.get(i) for i in ids}
    finally:
        await store.close()
    assert [g.status if g else None for g in got.values()] == [Status.PROCESSED] * 3
    first = got[ids[0]]
    assert first is not None
    assert first.event_time == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    rows = await fetch(
        settings.database_dsn, "SELECT count(*) FROM event_store WHERE event_id = ANY(%s)", ids
    )
    assert rows == [(3,)]


def schema(fields: list[dict[str, Any]]) -> SubjectSchema:
    raw = {"type": "record", "name": "Probe", "namespace": "com.karrot.test", "fields": fields}
    return SubjectSchema(subject="", raw=raw, parsed=fastavro.parse_schema(raw))


async def test_registry_refuses_a_breaking_change_and_serves_writers(settings: Settings) -> None:
    registry = SchemaRegistry(settings.schema_registry_url)
    subject = f"karrot-test-{uuid.uuid4().hex[:8]}-value"
    v1 = schema([{"name": "id", "type": "string"}])
    ids = await registry.ensure({subject: v1})
    # Adding a field with a default is BACKWARD compatible...
    v2 = schema([{"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0}])
    assert (await registry.ensure({subject: v2}))[subject] != ids[subject]
    # ...adding one without a default is not, and is refused, not registered.
    v3 = schema([{"name": "id", "type": "string"}, {"name": "m", "type": "int"}])
    with pytest.raises(SchemaIncompatible, match=f"schemas/{subject}.avsc is not BACKWARD"):
        await registry.ensure({subject: v3})
    fresh = SchemaRegistry(settings.schema_registry_url)
    writer = await fresh.writer(ids[subject])
    assert writer.record_name == "com.karrot.test.Probe"
    with pytest.raises(UndecodableMessage, match="Unknown schema id"):
        await fresh.writer(1_999_999_999)
