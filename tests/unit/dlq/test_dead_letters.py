"""A dead letter's headers, and the headers it is redriven with."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from karrot_streams.dlq.dead_letters import DeadLetter, redrive_headers
from karrot_streams.events.failures import InvalidEvent
from karrot_streams.monitoring.tracing import trace_headers
from karrot_streams.pipeline.dead_letters import dead_letter_headers
from karrot_streams.pipeline.messages import Incoming, Rejected

FAILED_AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def dead_letter(
    headers: tuple[tuple[str, bytes], ...], *, partition: int = 2, offset: int = 17
) -> DeadLetter:
    return DeadLetter(
        topic="dlq.chat-events",
        partition=partition,
        offset=offset,
        timestamp=1_764_061_200_000,
        key=b"room-1",
        value=b"\x00\x00\x00\x00\x07avro",
        headers=headers,
    )


def pipeline_letter(original: tuple[tuple[str, bytes], ...] = ()) -> DeadLetter:
    """A letter with exactly the headers the pipeline writes."""
    incoming = Incoming("chat-events", 1, 40, b"room-1", b"v", headers=original)
    headers = dead_letter_headers(Rejected(incoming, InvalidEvent("Message too long")), FAILED_AT)
    return dead_letter(tuple(headers))


def test_failure_headers_are_read() -> None:
    letter = pipeline_letter((("trace", b"abc"),))
    assert letter.exception_class == "karrot_streams.events.failures.InvalidEvent"
    assert letter.exception_message == "Message too long"
    assert letter.failed_at == FAILED_AT
    assert letter.original_topic == "chat-events"
    assert letter.retry_count == 1
    assert letter.redrive_count == 0
    assert letter.position == (2, 17)
    assert letter.address == "dlq.chat-events:2:17"


def test_unreadable_headers_read_as_missing() -> None:
    letter = dead_letter(
        (
            ("failed_at", b"yesterday"),
            ("original_topic", b"somebody-elses-topic"),
            ("redrive_count", b"many"),
        )
    )
    assert letter.failed_at is None
    assert letter.original_topic is None
    assert letter.redrive_count == 0
    assert letter.exception_class is None


def test_a_naive_failed_at_is_utc() -> None:
    letter = dead_letter((("failed_at", b"2026-11-25T09:00:00"),))
    assert letter.failed_at == FAILED_AT


def test_redrive_keeps_the_original_headers_and_adds_its_own() -> None:
    letter = pipeline_letter((("trace", b"\xff\x00"), ("tenant", b"kr")))
    assert redrive_headers(letter) == [
        ("trace", b"\xff\x00"),
        ("tenant", b"kr"),
        ("retry_count", b"1"),
        ("redrive_count", b"1"),
        ("redriven_from", b"dlq.chat-events:2:17"),
    ]


def test_a_second_redrive_counts_on_and_replaces_the_old_marks() -> None:
    letter = dead_letter(
        (
            ("trace", b"t"),
            ("redrive_count", b"1"),
            ("redriven_from", b"dlq.chat-events:0:3"),
            ("original_topic", b"chat-events"),
            ("retry_count", b"2"),
        ),
        partition=0,
        offset=99,
    )
    assert redrive_headers(letter) == [
        ("trace", b"t"),
        ("retry_count", b"2"),
        ("redrive_count", b"2"),
        ("redriven_from", b"dlq.chat-events:0:99"),
    ]


def test_failing_again_counts_every_attempt() -> None:
    """The pipeline adds its attempts to the retry_count a redriven message carries."""
    letter = pipeline_letter()
    redriven = Incoming("chat-events", 1, 41, letter.key, letter.value, redrive_headers(letter))
    again = dict(dead_letter_headers(Rejected(redriven, InvalidEvent("still too long")), FAILED_AT))
    assert again["retry_count"] == b"2"
    assert again["redrive_count"] == b"1"
    assert again["redriven_from"] == b"dlq.chat-events:2:17"


def test_of_record() -> None:
    record = SimpleNamespace(
        topic="dlq.item-events",
        partition=1,
        offset=5,
        timestamp=10,
        key=None,
        value=None,
        headers=[("exception_class", b"x"), ("empty", None)],
    )
    letter = DeadLetter.of_record(record)
    assert letter.headers == (("exception_class", b"x"), ("empty", b""))
    assert letter.key is None
    assert DeadLetter.of_record(SimpleNamespace(**{**vars(record), "headers": None})).headers == ()


def test_redrive_keeps_the_trace_context() -> None:
    parent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    letter = pipeline_letter((("traceparent", parent), ("tracestate", b"congo=t61rcWkgMzE")))
    redriven = redrive_headers(letter)
    assert trace_headers(redriven) == [
        ("traceparent", parent),
        ("tracestate", b"congo=t61rcWkgMzE"),
    ]
    assert redriven[:2] == [("traceparent", parent), ("tracestate", b"congo=t61rcWkgMzE")]
