"""Decode, validate and enrich one message: an Accepted or a Rejected, never an exception.

The one exception that escapes is TransientFailure (the registry is down): the message is not at
fault, so the caller waits and asks again instead of dead-lettering it.

Before a message whose schema id is cached is dead-lettered, the id gets a second chance: a
registry that lost its state (an in-memory one restarted) numbers schemas from 1 again, so a
cached id can name one schema in old messages and another in new ones. The message is read with
what else the id has meant, and the registry is asked again (throttled, never waiting on it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from karrot_streams.avro.codec import decode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import SchemaRegistry, WriterSchema
from karrot_streams.events.enrichment import enrich
from karrot_streams.events.failures import PoisonMessage
from karrot_streams.events.payloads import MAX_MESSAGE_LENGTH
from karrot_streams.events.validation import event_from_avro
from karrot_streams.pipeline.messages import Accepted, Incoming, Outcome, Rejected


def _read(
    incoming: Incoming,
    writer: WriterSchema,
    body: memoryview,
    fee_rate: Decimal,
    now: datetime,
    max_message_length: int,
) -> Outcome:
    record: dict[str, Any] = {}
    try:
        record = decode(writer.parsed, body)
        event = event_from_avro(
            incoming.topic, writer.record_name, record, max_message_length=max_message_length
        )
    except PoisonMessage as exc:
        return Rejected(incoming, exc, partial=record)
    return Accepted(incoming, event, enrich(event, incoming.position, now, fee_rate))


async def classify(
    incoming: Incoming,
    registry: SchemaRegistry,
    fee_rate: Decimal,
    now: datetime,
    *,
    max_message_length: int = MAX_MESSAGE_LENGTH,
) -> Outcome:
    try:
        schema_id, body = unframe(incoming.value)
        cached = registry.cached(schema_id)
        writer = cached or await registry.writer(schema_id)
    except PoisonMessage as exc:
        return Rejected(incoming, exc)
    first = _read(incoming, writer, body, fee_rate, now, max_message_length)
    if isinstance(first, Accepted) or cached is None:
        return first
    rejected = [first]
    for other in registry.alternatives(schema_id):
        outcome = _read(incoming, other, body, fee_rate, now, max_message_length)
        if isinstance(outcome, Accepted):
            return outcome
        rejected.append(outcome)
    fresh = await registry.recheck(schema_id)
    if fresh is not None:
        outcome = _read(incoming, fresh, body, fee_rate, now, max_message_length)
        if isinstance(outcome, Accepted):
            return outcome
        rejected.append(outcome)
    # Poison under every schema: report the reading that got furthest (decoded, then invalid).
    return next((r for r in rejected if isinstance(r, Rejected) and r.partial), first)
