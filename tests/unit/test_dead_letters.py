from __future__ import annotations

from datetime import UTC, datetime

from karrot_streams.events.failures import InvalidEvent, UndecodableMessage
from karrot_streams.pipeline.dead_letters import dead_letter_headers, dead_letter_of
from karrot_streams.pipeline.messages import Incoming, Rejected


def test_headers_keep_the_originals_and_add_the_contract_ones() -> None:
    incoming = Incoming(
        "item-events", 3, 1200, b"k", b"\x01junk", headers=(("trace", b"\xff\x00"),)
    )
    rejected = Rejected(incoming, UndecodableMessage("Unknown magic byte 1; expected 0"))
    headers = dead_letter_headers(rejected, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    assert headers == [
        ("trace", b"\xff\x00"),
        ("original_topic", b"item-events"),
        ("original_partition", b"3"),
        ("original_offset", b"1200"),
        ("exception_class", b"karrot_streams.events.failures.UndecodableMessage"),
        ("exception_message", b"Unknown magic byte 1; expected 0"),
        ("failed_at", b"2026-11-25T09:00:00.000Z"),
        ("retry_count", b"1"),
    ]
    assert dead_letter_of(rejected) == "dlq.item-events"


def test_retry_count_adds_to_a_previous_trip() -> None:
    incoming = Incoming(
        "chat-events", 0, 1, None, b"", headers=(("retry_count", b"2"), ("exception_class", b"x"))
    )
    headers = dict(
        dead_letter_headers(Rejected(incoming, InvalidEvent("bad"), attempts=3), datetime.now(UTC))
    )
    assert headers["retry_count"] == b"5"
    assert headers["exception_class"] == b"karrot_streams.events.failures.InvalidEvent"
