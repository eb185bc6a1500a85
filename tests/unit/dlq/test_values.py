"""A dead letter's value as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from karrot_streams.avro.codec import encode
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.avro.schemas import load
from karrot_streams.dlq.values import EnvelopeReader, json_safe, value_base64
from karrot_streams.events.failures import TransientFailure, UndecodableMessage


@dataclass
class FakeRegistry:
    writers: dict[int, WriterSchema] = field(default_factory=dict)
    down: bool = False

    def cached(self, schema_id: int) -> WriterSchema | None:
        return None

    async def writer(self, schema_id: int) -> WriterSchema:
        if self.down:
            raise TransientFailure("registry down")
        if schema_id not in self.writers:
            raise UndecodableMessage(f"Unknown schema id {schema_id}")
        return self.writers[schema_id]


def chat_value() -> tuple[FakeRegistry, bytes]:
    schema = load("chat-events-value")
    writer = WriterSchema(9, schema.record_name, schema.parsed)
    record = {
        "eventId": "5b0e8c9e-4e5f-4a43-9c39-2b8f1b3a2d10",
        "eventType": "CHAT_MESSAGE_SENT",
        "aggregateId": "room-1",
        "occurredAt": datetime(2026, 11, 25, 9, 0, 0, 123000, tzinfo=UTC),
        "correlationId": None,
        "userId": None,
        "source": None,
        "payload": (
            "com.karrot.events.ChatMessage",
            {"chatRoomId": "room-1", "senderId": "u-1", "message": "안녕하세요"},
        ),
    }
    return FakeRegistry({9: writer}), encode(9, writer.parsed, record)


async def test_an_envelope_decodes_to_json() -> None:
    registry, value = chat_value()
    decoded = await EnvelopeReader(registry).json(value)  # type: ignore[arg-type]
    assert decoded["eventId"] == "5b0e8c9e-4e5f-4a43-9c39-2b8f1b3a2d10"
    assert decoded["occurredAt"] == "2026-11-25T09:00:00.123Z"
    assert decoded["payload"] == {
        "chatRoomId": "room-1",
        "senderId": "u-1",
        "message": "안녕하세요",
    }


async def test_bytes_that_do_not_decode_are_none() -> None:
    registry, value = chat_value()
    reader = EnvelopeReader(registry)  # type: ignore[arg-type]
    for bad in (None, b"", b"\x01junk", b"\x00\x00\x00\x00\x2ajunk", value[:-3]):
        assert await reader.json(bad) is None
    registry.down = True
    assert await EnvelopeReader(registry).json(value) is None  # type: ignore[arg-type]


async def test_an_unknown_schema_id_is_asked_about_once() -> None:
    registry, _ = chat_value()
    asked: list[int] = []
    writer = registry.writer

    async def counting(schema_id: int) -> WriterSchema:
        asked.append(schema_id)
        return await writer(schema_id)

    registry.writer = counting  # type: ignore[method-assign]
    reader = EnvelopeReader(registry)  # type: ignore[arg-type]
    for _ in range(3):
        assert await reader.json(b"\x00\x00\x00\x00\x2ajunk") is None
    assert asked == [42]


def test_json_safe() -> None:
    assert json_safe({"a": (1, 2), "b": [b"\x00\xff"], "c": Decimal("1.5"), "d": float("nan")}) == {
        "a": [1, 2],
        "b": ["AP8="],
        "c": "1.5",
        "d": "nan",
    }
    assert json_safe(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert value_base64(None) is None
