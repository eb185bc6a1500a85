"""Start-up: migrations, then schema registration, each waited for while its dependency is away;
an incompatible schema stops the worker; a registry that lost our subjects is re-registered."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from karrot_streams import resources as resources_module
from karrot_streams.avro import schemas
from karrot_streams.avro.registry import SchemaIncompatible, SchemaRegistry, WriterSchema
from karrot_streams.avro.schemas import SubjectSchema
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings
from karrot_streams.store.errors import StoreUnavailable
from karrot_streams.store.event_store import EventStore


class ScriptedRegistry(SchemaRegistry):
    """Registers subjects with ids from ``first_id``; can be down, or refuse a schema."""

    def __init__(self, *, down_for: int = 0, incompatible: bool = False) -> None:
        super().__init__("http://registry.invalid")
        self.down_for = down_for
        self.incompatible = incompatible
        self.first_id = 1
        self.registered: dict[str, int] = {}
        self.writers: dict[int, WriterSchema] = {}
        self.ensures = 0

    async def ensure(self, subjects: Mapping[str, SubjectSchema]) -> dict[str, int]:
        self.ensures += 1
        if self.down_for > 0:
            self.down_for -= 1
            raise TransientFailure("Schema registry unreachable")
        if self.incompatible:
            raise SchemaIncompatible("schemas/item-events-value.avsc is not BACKWARD-compatible")
        for n, (subject, schema) in enumerate(subjects.items()):
            self.registered[subject] = self.first_id + n
            self.writers[self.first_id + n] = WriterSchema(
                self.first_id + n, schema.record_name, schema.parsed
            )
        return dict(self.registered)

    async def registered_ids(self, subjects: Mapping[str, SubjectSchema]) -> dict[str, int | None]:
        if self.down_for > 0:
            raise TransientFailure("Schema registry unreachable")
        return {subject: self.registered.get(subject) for subject in subjects}

    def cached(self, schema_id: int) -> WriterSchema | None:
        return self.writers.get(schema_id)


def resources_with(registry: SchemaRegistry) -> Resources:
    settings = Settings(app_id="karrot-test", retry_backoff_s=0.001, retry_backoff_max_s=0.001)
    base = Resources.create(settings)
    return Resources(
        settings=settings,
        registry=registry,
        store=EventStore("postgresql://store.invalid/none"),
        topics=base.topics,
    )


def started(resources: Resources) -> bool:
    return resources.is_ready


@pytest.fixture
def migrations_down(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Migrations that fail twice (PostgreSQL not up yet), then apply."""
    calls: list[str] = []

    async def migrate(dsn: str) -> list[int]:
        calls.append(dsn)
        if len(calls) <= 2:
            # What migrate raises when PostgreSQL is not up (it wraps psycopg2's errors).
            raise StoreUnavailable("connection refused")
        return [1]

    monkeypatch.setattr(resources_module, "migrate", migrate)
    return calls


async def test_start_up_waits_for_the_database_then_the_registry(
    migrations_down: list[str],
) -> None:
    registry = ScriptedRegistry(down_for=2)
    resources = resources_with(registry)
    assert not started(resources)

    await resources.ready()
    await resources.ready()  # once: later callers share the first start-up

    assert len(migrations_down) == 3
    assert registry.ensures == 3
    assert started(resources)
    assert not resources.health.is_down("database")
    assert not resources.health.is_down("schema_registry")
    expected = set(INPUT_TOPICS) | {f"enriched.{t}" for t in INPUT_TOPICS}
    assert set(resources.writers) == expected
    assert (
        resources.writers["item-events"].record_name
        == schemas.load("item-events-value").record_name
    )


async def test_an_incompatible_schema_stops_start_up(migrations_down: list[str]) -> None:
    resources = resources_with(ScriptedRegistry(incompatible=True))

    with pytest.raises(SchemaIncompatible):
        await resources.ready()


async def test_registrations_are_refreshed_only_when_the_registry_forgot_them(
    migrations_down: list[str],
) -> None:
    registry = ScriptedRegistry()
    resources = resources_with(registry)
    assert await resources.refresh_registrations() is False  # not started: nothing to refresh
    await resources.ready()
    before = resources.writers["item-events"].schema_id

    assert await resources.refresh_registrations() is False
    assert registry.ensures == 1  # the usual answer: lookups only, no registration

    registry.registered.clear()  # the registry restarted empty and numbers from 100 now
    registry.first_id = 100
    assert await resources.refresh_registrations() is True
    assert resources.writers["item-events"].schema_id != before
    assert resources.writers["item-events"].schema_id >= 100

    registry.down_for = 1
    assert await resources.refresh_registrations() is False  # an outage is no change
    await resources.close()
