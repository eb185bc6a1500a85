from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import decode, encode
from karrot_streams.avro.framing import frame, unframe
from karrot_streams.events.failures import UndecodableMessage
from karrot_streams.events.model import Event
from karrot_streams.events.types import NAMESPACE, EventType


def item_event() -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=EventType.ITEM_CREATED,
        aggregate_id="i1",
        occurred_at=datetime(2026, 11, 25, 1, 2, 3, 456000, tzinfo=UTC),
        payload_record=f"{NAMESPACE}.ItemCreated",
        payload={
            "itemId": "i1",
            "sellerId": "s1",
            "title": "자전거",
            "price": 120_000,
            "category": "스포츠/레저",
            "region": None,
        },
    )


def test_round_trip_through_the_wire_format() -> None:
    schema = schemas.load("item-events-value")
    data = encode(42, schema.parsed, item_event().to_avro())
    assert data[:5] == b"\x00\x00\x00\x00\x2a"
    schema_id, body = unframe(data)
    assert schema_id == 42
    record = decode(schema.parsed, body)
    assert record["payload"] == (f"{NAMESPACE}.ItemCreated", item_event().payload)
    assert record["occurredAt"] == datetime(2026, 11, 25, 1, 2, 3, 456000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "tombstone"),
        (b"\x00\x00", "shorter than the wire header"),
        (b"\x07\x00\x00\x00\x01abc", "Unknown magic byte 7"),
    ],
)
def test_bad_frames_are_undecodable(data: bytes | None, message: str) -> None:
    with pytest.raises(UndecodableMessage, match=message):
        unframe(data)


def test_truncated_and_padded_bodies_are_undecodable() -> None:
    schema = schemas.load("item-events-value")
    data = encode(1, schema.parsed, item_event().to_avro())
    _, body = unframe(data[:-4])
    with pytest.raises(UndecodableMessage):
        decode(schema.parsed, body)
    _, body = unframe(data + b"\x00")
    with pytest.raises(UndecodableMessage, match="bytes left"):
        decode(schema.parsed, body)


def test_huge_length_prefix_is_undecodable_not_a_crash() -> None:
    schema = schemas.load("item-events-value")
    # A string length of ~2^62: fastavro must fail cleanly, not allocate it.
    with pytest.raises(UndecodableMessage):
        decode(schema.parsed, memoryview(b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"))


def test_frame_prefixes_magic_and_id() -> None:
    assert frame(258, b"x") == b"\x00\x00\x00\x01\x02x"


def test_every_subject_has_a_schema_file_that_parses() -> None:
    loaded = schemas.load_all()
    assert set(loaded) == set(schemas.owned_subjects())
    for subject, schema in loaded.items():
        assert schema.raw == json.loads((schemas.SCHEMAS_DIR / f"{subject}.avsc").read_text())
