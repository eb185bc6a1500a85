"""What a worker holds open while it runs: registry client, database pool, health, metrics.

Start-up (migrations, schema registration) runs once, lazily, the first time an agent or a view
needs it, and is retried while a dependency is still coming up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from karrot_streams.avro import schemas
from karrot_streams.avro.registry import SchemaIncompatible, SchemaRegistry, WriterSchema
from karrot_streams.connections import registry_tls_context
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import INPUT_TOPICS, enriched_topic, value_subject
from karrot_streams.monitoring.health import Health
from karrot_streams.monitoring.metrics import Metrics
from karrot_streams.resilience.backoff import Backoff, until_up
from karrot_streams.settings import Settings
from karrot_streams.store.errors import StoreUnavailable
from karrot_streams.store.event_store import EventStore
from karrot_streams.store.migrations import migrate
from karrot_streams.store.status_counts import StatusCounts

log = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    registry: SchemaRegistry
    store: EventStore
    topics: InternalTopics
    health: Health = field(default_factory=Health)
    metrics: Metrics = field(default_factory=Metrics.create)
    #: Event-store counts for the stats view, refreshed by a timer (store/status_counts.py).
    status_counts: StatusCounts | None = None
    #: Writer schema of each output and input topic's value, once registered.
    writers: dict[str, WriterSchema] = field(default_factory=dict)
    _ready: asyncio.Task[None] | None = None

    @classmethod
    def create(cls, settings: Settings) -> Resources:
        return cls(
            settings=settings,
            registry=SchemaRegistry(
                settings.schema_registry_url,
                username=settings.schema_registry_username,
                password=settings.schema_registry_password,
                tls=registry_tls_context(settings),
            ),
            store=EventStore(settings.database_dsn),
            topics=InternalTopics(settings.app_id, settings.topic_prefix),
            status_counts=StatusCounts(settings.database_dsn),
        )

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.settings.retry_backoff_s, self.settings.retry_backoff_max_s)

    async def ready(self) -> None:
        """Migrations applied and schemas registered; waits while dependencies come up."""
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._prepare())
        await asyncio.shield(self._ready)

    @property
    def is_ready(self) -> bool:
        return self._ready is not None and self._ready.done() and not self._ready.cancelled()

    async def _prepare(self) -> None:
        def database_down(exc: BaseException, _: int) -> None:
            self.health.report("database", False, str(exc)[:300])
            log.warning("Waiting for PostgreSQL to run migrations: %s", exc)

        def registry_down(exc: BaseException, _: int) -> None:
            self.health.report("schema_registry", False, str(exc)[:300])
            log.warning("Waiting for the schema registry: %s", exc)

        await until_up(
            lambda: migrate(self.settings.database_dsn),
            self.backoff,
            transient=StoreUnavailable,
            on_down=database_down,
        )
        self.health.report("database", True)
        try:
            ids = await until_up(
                lambda: self.registry.ensure(schemas.load_all()),
                self.backoff,
                transient=TransientFailure,
                on_down=registry_down,
            )
        except SchemaIncompatible:
            log.exception("Refusing to start with an incompatible schema")
            raise
        self.health.report("schema_registry", True)
        for topic in INPUT_TOPICS:
            for name in (topic, enriched_topic(topic)):
                writer = self.registry.cached(ids[value_subject(name)])
                assert writer is not None  # noqa: S101  ensure() caches what it registers
                self.writers[name] = writer
        log.info("Schemas registered: %s", ids)

    async def refresh_registrations(self) -> bool:
        """Register our subjects again; True when the registry gave them other ids.

        A registry that lost its state (Apicurio in memory, restarted) has forgotten our subjects
        and numbers schemas from 1 again: our cached ids would frame enriched output, and the
        events published over HTTP, with ids that name nothing there, or another schema.
        Registering is idempotent, so while the registry remembers, this changes nothing.
        """
        if not self.is_ready:
            return False
        subjects = schemas.load_all()
        try:
            known = await self.registry.registered_ids(subjects)
            expected = {value_subject(name): w.schema_id for name, w in self.writers.items()}
            if all(known[subject] == expected.get(subject) for subject in subjects):
                return False  # the usual answer: one read-only lookup per subject
            ids = await self.registry.ensure(subjects)
        except (TransientFailure, SchemaIncompatible) as exc:
            log.debug("Registration check skipped: %s", exc)
            return False
        changed = []
        for topic in INPUT_TOPICS:
            for name in (topic, enriched_topic(topic)):
                writer = self.registry.cached(ids[value_subject(name)])
                current = self.writers.get(name)
                if writer is not None and (
                    current is None or current.schema_id != writer.schema_id
                ):
                    self.writers[name] = writer
                    before = current.schema_id if current is not None else None
                    changed.append(f"{name}: {before} -> {writer.schema_id}")
        if changed:
            log.warning("The schema registry gave our subjects new ids: %s", ", ".join(changed))
        return bool(changed)

    async def close(self) -> None:
        await self.store.close()
        if self.status_counts is not None:
            await self.status_counts.close()
