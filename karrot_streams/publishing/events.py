"""The seed's publish flow: store the event as CREATED, produce it, then mark it PUBLISHED.

Kafka refusing or timing out leaves the row FAILED with the reason and raises PublishUnavailable
(the API answers 503); PostgreSQL down raises it before anything is produced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from karrot_streams.avro.codec import encode
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.model import Event
from karrot_streams.events.timestamps import iso_utc
from karrot_streams.events.topics import TopicNames
from karrot_streams.publishing.errors import PublishUnavailable
from karrot_streams.store.event_store import Status, StoreRow

log = logging.getLogger(__name__)

#: Record headers, as Kafka clients take them.
HeaderList = list[tuple[str, bytes]]
#: Enqueue one record (topic, key, value, headers); the awaitable returned resolves to its
#: RecordMetadata.
Send = Callable[[str, bytes, bytes, HeaderList], Awaitable[Awaitable[Any]]]


class Store(Protocol):
    async def upsert(self, rows: list[StoreRow]) -> None: ...

    async def mark_published(self, event_id: str, published_at: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class Published:
    event_id: str
    published_at: datetime
    topic: str
    partition: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "status": Status.PUBLISHED.value,
            "publishedAt": iso_utc(self.published_at),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


class EventPublisher:
    def __init__(
        self,
        *,
        store: Store,
        send: Send,
        writers: Mapping[str, WriterSchema],
        headers: HeaderList | None = None,
        topics: TopicNames | None = None,
        store_timeout_s: float = 10.0,
        kafka_timeout_s: float = 15.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._send = send
        self._writers = writers
        #: Put on every record this publisher produces: the request's trace context.
        self._headers = list(headers or [])
        self._topics = topics or TopicNames()
        self._store_timeout_s = store_timeout_s
        self._kafka_timeout_s = kafka_timeout_s
        self._clock = clock

    async def publish(self, event: Event) -> Published:
        topic = event.topic
        writer = self._writers[topic]
        # Encoded first: a record Avro refuses must not leave a CREATED row behind.
        value = encode(writer.schema_id, writer.parsed, event.to_avro())
        await self._write(self._row(event, Status.CREATED), "store the event")
        try:
            metadata = await asyncio.wait_for(
                self._produce(
                    self._topics.physical(topic), event.aggregate_id.encode("utf-8"), value
                ),
                self._kafka_timeout_s,
            )
        except Exception as exc:
            reason = _describe(exc, self._kafka_timeout_s)
            log.warning("Publishing event %s to %s failed: %s", event.event_id, topic, reason)
            await self._record_failure(event, reason)
            raise PublishUnavailable(
                "Kafka did not accept the event; it is stored as FAILED",
                details={"eventId": event.event_id, "reason": reason},
            ) from exc
        published_at = self._clock()
        try:
            await asyncio.wait_for(
                self._store.mark_published(event.event_id, published_at), self._store_timeout_s
            )
        except (TransientFailure, TimeoutError) as exc:
            # The event is in Kafka; the pipeline moves the row on to PROCESSED when it reads it.
            log.warning("Event %s published but not marked PUBLISHED: %s", event.event_id, exc)
        return Published(
            event_id=event.event_id,
            published_at=published_at,
            # The contract's name: a client never sees the prefix of the run it talks to.
            topic=topic,
            partition=int(metadata.partition),
            offset=int(metadata.offset),
        )

    async def _produce(self, topic: str, key: bytes, value: bytes) -> Any:
        acknowledged = await self._send(topic, key, value, list(self._headers))
        return await acknowledged

    async def _write(self, row: StoreRow, what: str) -> None:
        try:
            await asyncio.wait_for(self._store.upsert([row]), self._store_timeout_s)
        except (TransientFailure, TimeoutError) as exc:
            raise PublishUnavailable(
                f"The event store is unavailable; could not {what}",
                details={"reason": _describe(exc, self._store_timeout_s)},
            ) from exc

    async def _record_failure(self, event: Event, reason: str) -> None:
        try:
            await self._write(self._row(event, Status.FAILED, reason), "record the failure")
        except PublishUnavailable:
            log.warning(
                "Event %s stays CREATED: the store refused its FAILED status", event.event_id
            )

    @staticmethod
    def _row(event: Event, status: Status, failure_reason: str | None = None) -> StoreRow:
        return StoreRow.of_event(event, status, failure_reason)


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__
