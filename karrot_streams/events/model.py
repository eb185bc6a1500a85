"""The event envelope as the pipeline sees it once decoded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from karrot_streams.events.types import EventType


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event_type: EventType
    aggregate_id: str
    occurred_at: datetime
    payload_record: str
    payload: Mapping[str, Any]
    correlation_id: str | None = None
    user_id: str | None = None
    source: str | None = None

    @property
    def topic(self) -> str:
        from karrot_streams.events.types import TOPIC_OF  # noqa: PLC0415  cycle-free lookup

        return TOPIC_OF[self.event_type]

    def to_avro(self) -> dict[str, Any]:
        """The envelope in the shape fastavro writes (payload as a named union branch)."""
        return {
            "eventId": self.event_id,
            "eventType": self.event_type.value,
            "aggregateId": self.aggregate_id,
            "occurredAt": self.occurred_at,
            "correlationId": self.correlation_id,
            "userId": self.user_id,
            "source": self.source,
            "payload": (self.payload_record, dict(self.payload)),
        }

    def to_json(self) -> dict[str, Any]:
        """The envelope as stored in ``event_store.event_data``."""
        return {
            "eventId": self.event_id,
            "eventType": self.event_type.value,
            "aggregateId": self.aggregate_id,
            "occurredAt": self.occurred_at.isoformat(),
            "correlationId": self.correlation_id,
            "userId": self.user_id,
            "source": self.source,
            "payloadType": self.payload_record.rsplit(".", 1)[-1],
            "payload": dict(self.payload),
        }
