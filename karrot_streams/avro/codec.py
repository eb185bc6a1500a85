"""Avro bodies in and out, with fastavro's parsed schemas."""

from __future__ import annotations

import io
from typing import Any

import fastavro

from karrot_streams.avro.framing import frame
from karrot_streams.events.failures import UndecodableMessage


def decode(parsed_schema: Any, body: memoryview) -> dict[str, Any]:
    """Read one record; any bytes that are not exactly one record of the schema are undecodable."""
    buffer = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buffer, parsed_schema, None, return_record_name=True)
    # fastavro reports malformed input through many exception types (EOFError, ValueError,
    # UnicodeDecodeError, IndexError, OverflowError, MemoryError...): all mean the same here.
    except Exception as exc:
        raise UndecodableMessage(
            f"Not Avro of the writer schema: {type(exc).__name__}: {exc}"[:500]
        ) from exc
    if buffer.tell() != len(body):
        raise UndecodableMessage(f"{len(body) - buffer.tell()} bytes left after the Avro record")
    if not isinstance(record, dict):
        raise UndecodableMessage("Writer schema is not a record")
    return record


def encode(schema_id: int, parsed_schema: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_schema, record)
    return frame(schema_id, buffer.getvalue())
