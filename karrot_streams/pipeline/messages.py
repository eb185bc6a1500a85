"""What the pipeline reads and what it decides for each message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from karrot_streams.events.enrichment import SourcePosition
from karrot_streams.events.failures import PoisonMessage
from karrot_streams.events.model import Event

Headers = Sequence[tuple[str, bytes]]


def normalized_headers(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """Kafka headers as (name, bytes) pairs, whatever the client gave: a mapping, a list, None.

    A header without a value keeps its name, with empty bytes.
    """
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), bytes(v) if v is not None else b"") for k, v in pairs)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed record, bytes untouched."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Accepted:
    incoming: Incoming
    event: Event
    enriched: dict[str, Any]


@dataclass(slots=True)
class Rejected:
    incoming: Incoming
    failure: PoisonMessage
    attempts: int = 1
    #: What could be read of the envelope, for the FAILED event-store row.
    partial: dict[str, Any] = field(default_factory=dict)


Outcome = Accepted | Rejected
