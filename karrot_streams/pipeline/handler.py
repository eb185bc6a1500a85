"""One agent step: a batch of raw messages in; rows stored, events forwarded, poison dead-lettered.

Order of effects for a batch: classify every message, write the event-store rows in one round
trip, then send enriched events, aggregate facts and dead letters, and wait until Kafka has
acknowledged all of them. Only then does the agent ack the messages, so an offset is committed
only after everything the message caused is durable.

Failures a message cannot cause (registry, database or broker unavailable) are waited out, with
backoff and without limit: the stream pauses instead of dead-lettering good events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from karrot_streams.avro.codec import encode
from karrot_streams.avro.registry import SchemaRegistry, WriterSchema
from karrot_streams.events.failures import RetriesExhausted, TransientFailure
from karrot_streams.events.payloads import MAX_MESSAGE_LENGTH
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import enriched_topic
from karrot_streams.monitoring import tracing
from karrot_streams.monitoring.health import Health
from karrot_streams.monitoring.metrics import Metrics
from karrot_streams.pipeline.classify import classify
from karrot_streams.pipeline.dead_letters import dead_letter_headers, dead_letter_of
from karrot_streams.pipeline.facts import facts_for
from karrot_streams.pipeline.messages import Accepted, Incoming, Outcome, Rejected
from karrot_streams.resilience.backoff import Backoff, OnDown, OnUp, until_delivered, until_up
from karrot_streams.store.errors import RowsRefused
from karrot_streams.store.event_store import EventStore, Status, StoreRow

log = logging.getLogger(__name__)

HeaderList = list[tuple[str, bytes]]
Outgoing = tuple[str, bytes | None, bytes | None, HeaderList | None]
#: Send records and wait until the broker has each; returns those it refused, with why.
SendAll = Callable[[Sequence[Outgoing]], Awaitable[list[tuple[Outgoing, BaseException]]]]


def trace_context(headers: Sequence[tuple[str, bytes]]) -> HeaderList | None:
    """The W3C trace context of a record, carried onto every record it causes."""
    return tracing.trace_headers(headers) or None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch classified and stored, ready to be emitted."""

    outcomes: list[Outcome]
    now: datetime


class BatchHandler:
    def __init__(
        self,
        *,
        registry: SchemaRegistry,
        store: EventStore,
        send: SendAll,
        topics: InternalTopics,
        enriched_writers: Mapping[str, WriterSchema],
        fee_rate: Decimal,
        retry_attempts: int,
        backoff: Backoff,
        health: Health,
        metrics: Metrics,
        max_message_length: int = MAX_MESSAGE_LENGTH,
    ) -> None:
        self._registry = registry
        self._store = store
        self._send = send
        self._topics = topics
        self._enriched_writers = enriched_writers
        self._fee_rate = fee_rate
        self._retry_attempts = retry_attempts
        self._backoff = backoff
        self._health = health
        self._metrics = metrics
        self._max_message_length = max_message_length

    async def handle(self, batch: Sequence[Incoming]) -> list[Outcome]:
        """One batch, start to end: what :meth:`prepare` and :meth:`emit` do in turn."""
        prepared = await self.prepare(batch)
        await self.emit(prepared)
        return prepared.outcomes

    async def prepare(self, batch: Sequence[Incoming]) -> Prepared:
        """Classify the batch and write its event-store rows (waits out outages)."""
        now = datetime.now(UTC)
        batch = self._logical(batch)
        outcomes = [await self._classify(message, now) for message in batch]
        outcomes = await self._store_rows(outcomes)
        return Prepared(outcomes, now)

    async def emit(self, prepared: Prepared) -> None:
        """Send what the batch causes and wait until Kafka has all of it (waits out outages).

        A partition's batches must be emitted one after another, in offset order: the
        aggregates' replay guard takes a record below its mark for a replay.
        """
        outcomes = prepared.outcomes
        with tracing.batch_span(
            "karrot.pipeline.batch", [outcome.incoming.headers for outcome in outcomes]
        ):
            await self._emit(outcomes, prepared.now)
        self._metrics.batch_size.observe(len(outcomes))
        # Counted per batch: a labelled counter costs a lookup and a lock per increment.
        processed: Counter[str] = Counter()
        dead: Counter[tuple[str, str]] = Counter()
        for outcome in outcomes:
            topic = outcome.incoming.topic
            if isinstance(outcome, Accepted):
                processed[topic] += 1
            else:
                dead[topic, type(outcome.failure).__name__] += 1
        for topic, n in processed.items():
            self._metrics.processed.labels(topic).inc(n)
        for (topic, reason), n in dead.items():
            self._metrics.dead_lettered.labels(topic, reason).inc(n)

    def _logical(self, batch: Sequence[Incoming]) -> Sequence[Incoming]:
        """The batch under its logical topic: the edge where the physical name is dropped.

        Validation, rows, headers and metrics below speak the contract's names; only
        :meth:`_outgoing` turns names back into physical ones.
        """
        names = self._topics.names
        if not names.prefix:
            return batch
        logical = {topic: names.logical(topic) for topic in {m.topic for m in batch}}
        # The constructor, not dataclasses.replace: a third of the cost, on every record.
        return [
            Incoming(
                logical[m.topic], m.partition, m.offset, m.key, m.value, m.headers, m.timestamp_ms
            )
            for m in batch
        ]

    def _down(self, component: str) -> OnDown:
        def report(exc: BaseException, attempt: int) -> None:
            if attempt == 0:
                log.warning("%s unavailable, pausing the stream: %s", component, exc)
            self._health.report(component, False, str(exc)[:300])
            self._metrics.transient_failures.labels(component).inc()

        return report

    def _up(self, component: str) -> OnUp:
        def report(attempts: int) -> None:
            log.info("%s reachable again after %d waits", component, attempts)
            self._health.report(component, True)

        return report

    async def _classify(self, message: Incoming, now: datetime) -> Outcome:
        return await until_up(
            lambda: classify(
                message,
                self._registry,
                self._fee_rate,
                now,
                max_message_length=self._max_message_length,
            ),
            self._backoff,
            transient=TransientFailure,
            on_down=self._down("schema_registry"),
            on_up=self._up("schema_registry"),
        )

    # -- event store -------------------------------------------------------------------------

    @staticmethod
    def _row(outcome: Outcome) -> StoreRow | None:
        if isinstance(outcome, Accepted):
            return StoreRow.of_event(outcome.event, Status.PROCESSED)
        event_id = outcome.failure.event_id
        if not event_id or len(event_id) > 255 or not event_id.strip():
            return None  # nothing identifies it: the dead letter is its only record
        partial = outcome.partial
        aggregate_id = partial.get("aggregateId")
        occurred_at = partial.get("occurredAt")
        return StoreRow.of(
            event_id=event_id,
            aggregate_id=aggregate_id[:255] if isinstance(aggregate_id, str) else "",
            event_type=str(partial.get("eventType") or "UNKNOWN")[:100],
            data=partial,
            event_time=occurred_at if isinstance(occurred_at, datetime) else datetime.now(UTC),
            status=Status.FAILED,
            failure_reason=f"{type(outcome.failure).__name__}: {outcome.failure}",
        )

    async def _store_rows(self, outcomes: list[Outcome]) -> list[Outcome]:
        rows = {i: row for i, o in enumerate(outcomes) if (row := self._row(o)) is not None}
        if not rows:
            return outcomes
        try:
            await self._upsert_waiting(list(rows.values()))
        except RowsRefused as exc:
            log.warning("Event-store batch refused (%s); writing its rows one by one", exc)
            return [await self._store_one(o, rows.get(i)) for i, o in enumerate(outcomes)]
        return outcomes

    async def _upsert_waiting(self, rows: list[StoreRow]) -> None:
        async def upsert_timed() -> float:
            started = time.perf_counter()
            await self._store.upsert(rows)
            return time.perf_counter() - started

        seconds = await until_up(
            upsert_timed,
            self._backoff,
            transient=TransientFailure,
            on_down=self._down("database"),
            on_up=self._up("database"),
        )
        self._metrics.store_write_seconds.observe(seconds)

    async def _store_one(self, outcome: Outcome, row: StoreRow | None) -> Outcome:
        """Retry one row its budget of times; a row the database keeps refusing is poison."""
        if row is None:
            return outcome
        error: RowsRefused | None = None
        for attempt in range(self._retry_attempts):
            try:
                await self._upsert_waiting([row])
            except RowsRefused as exc:
                error = exc
                await asyncio.sleep(self._backoff.delay(attempt))
                continue
            return outcome
        if isinstance(outcome, Accepted):
            failure = RetriesExhausted(
                f"Event store refused the event: {error}".strip(), event_id=row.event_id
            )
            return Rejected(outcome.incoming, failure, attempts=self._retry_attempts)
        return outcome

    # -- Kafka -------------------------------------------------------------------------------

    def _outgoing(
        self, outcome: Outcome, now: datetime, chains: dict[tuple[object, ...], int]
    ) -> list[Outgoing]:
        incoming = outcome.incoming
        if isinstance(outcome, Rejected):
            headers = dead_letter_headers(outcome, now)
            dead_letters = self._topics.names.physical(dead_letter_of(outcome))
            return [(dead_letters, incoming.key, incoming.value, headers)]
        writer = self._enriched_writers[enriched_topic(incoming.topic)]
        topic = self._topics.names.enriched(incoming.topic)
        key = incoming.key if incoming.key is not None else outcome.event.aggregate_id.encode()
        trace = trace_context(incoming.headers) if incoming.headers else None
        records: list[Outgoing] = [
            (topic, key, encode(writer.schema_id, writer.parsed, outcome.enriched), trace)
        ]
        for fact in facts_for(outcome, self._topics):
            chain = fact.chain
            fact_key, fact_value = fact.encoded(chains.get(chain))
            chains[chain] = incoming.offset
            records.append((fact.topic, fact_key, fact_value, trace))
        return records

    async def _emit(self, outcomes: list[Outcome], now: datetime) -> None:
        # The resend below puts a refused record behind the later ones the broker took: each
        # fact names the one of its chain sent before it (``prev``), so the stage can tell a late
        # fact from a replay (tables/replay_guard.py).
        chains: dict[tuple[object, ...], int] = {}
        pending = [
            record for outcome in outcomes for record in self._outgoing(outcome, now, chains)
        ]
        await until_delivered(
            self._send,
            pending,
            self._backoff,
            on_down=self._down("kafka"),
            on_up=self._up("kafka"),
        )
