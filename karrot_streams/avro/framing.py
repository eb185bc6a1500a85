"""Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body."""

from __future__ import annotations

import struct

from karrot_streams.events.failures import UndecodableMessage

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    if data is None:
        raise UndecodableMessage("Message has no value (tombstone)")
    if len(data) < HEADER_SIZE:
        raise UndecodableMessage(f"Message of {len(data)} bytes is shorter than the wire header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise UndecodableMessage(f"Unknown magic byte {magic}; expected {MAGIC}")
    return schema_id, memoryview(data)[HEADER_SIZE:]
