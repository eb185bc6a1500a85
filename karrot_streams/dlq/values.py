"""A dead letter's value as JSON: the Avro envelope when its bytes decode, else None."""

from __future__ import annotations

import base64
import logging
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from karrot_streams.avro.codec import decode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import SchemaRegistry, WriterSchema
from karrot_streams.events.failures import PoisonMessage, TransientFailure

log = logging.getLogger(__name__)


class EnvelopeReader:
    """Decodes letters' values; a schema id the registry does not know is asked about once.

    With the registry unreachable a value is None too: listing letters does not need it.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._unknown: set[int] = set()

    async def json(self, value: bytes | None) -> Any:
        """The decoded record as JSON values; None for bytes that are not Avro of a known schema."""
        try:
            schema_id, body = unframe(value)
            if schema_id in self._unknown:
                return None
            writer = self._registry.cached(schema_id) or await self._writer(schema_id)
            return json_safe(decode(writer.parsed, body))
        except PoisonMessage:
            return None
        except TransientFailure as exc:
            log.warning("Dead letter value left undecoded: %s", exc)
            return None

    async def _writer(self, schema_id: int) -> WriterSchema:
        try:
            return await self._registry.writer(schema_id)
        except PoisonMessage:
            self._unknown.add(schema_id)
            raise


def json_safe(value: Any) -> Any:
    """Avro values as JSON: named-union branches as their record, timestamps as ISO-8601 UTC."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return json_safe(value[1])  # fastavro's (record name, record) for a union branch
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value_base64(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    return value


def value_base64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")
