"""Decode, validate and enrich one message: an Accepted or a Rejected, never an exception.

The one exception that escapes is TransientFailure (the registry is down): the message is not at
fault, so the caller waits and asks again instead of dead-lettering it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from karrot_streams.avro.codec import decode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import SchemaRegistry
from karrot_streams.events.enrichment import enrich
from karrot_streams.events.failures import PoisonMessage
from karrot_streams.events.validation import event_from_avro
from karrot_streams.pipeline.messages import Accepted, Incoming, Outcome, Rejected


async def classify(
    incoming: Incoming, registry: SchemaRegistry, fee_rate: Decimal, now: datetime
) -> Outcome:
    record: dict[str, Any] = {}
    try:
        schema_id, body = unframe(incoming.value)
        writer = registry.cached(schema_id) or await registry.writer(schema_id)
        record = decode(writer.parsed, body)
        event = event_from_avro(incoming.topic, writer.record_name, record)
    except PoisonMessage as exc:
        return Rejected(incoming, exc, partial=record)
    return Accepted(incoming, event, enrich(event, incoming.position, now, fee_rate))
