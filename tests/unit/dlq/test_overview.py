"""Dead letters as the monitoring view shows them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from karrot_streams.dlq.overview import DeadLetterOverview, dead_letter_json, latest, read_window
from karrot_streams.events.topics import TopicNames


def record(offset: int, timestamp: int, topic: str = "dlq.item-events", partition: int = 0) -> Any:
    return SimpleNamespace(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        key="아이템-1".encode(),
        headers=[("original_topic", b"item-events"), ("exception_message", b"\xff bad")],
    )


def test_letter_json() -> None:
    assert dead_letter_json(record(7, 1714555800123)) == {
        "topic": "dlq.item-events",
        "partition": 0,
        "offset": 7,
        "timestamp": "2024-05-01T09:30:00.123Z",
        "key": "아이템-1",
        "headers": {"original_topic": "item-events", "exception_message": "\ufffd bad"},
    }


def test_letter_without_key_or_headers() -> None:
    letter = record(1, 0)
    letter.key = None
    letter.headers = None
    assert dead_letter_json(letter)["key"] is None
    assert dead_letter_json(letter)["headers"] == {}


def test_latest_is_newest_first_across_topics() -> None:
    records = [
        record(1, 100),
        record(2, 300),
        record(5, 200, topic="dlq.user-events"),
        record(3, 300, partition=1),
    ]
    newest = latest(records, 3)
    assert [(r.timestamp, r.partition, r.offset) for r in newest] == [
        (300, 1, 3),
        (300, 0, 2),
        (200, 0, 5),
    ]
    assert latest(records, 0) == []


def test_read_window() -> None:
    assert read_window(0, 100, 20) == (80, 100)
    assert read_window(90, 100, 20) == (90, 100)
    assert read_window(100, 100, 20) is None
    assert read_window(0, 100, 0) is None


def test_to_json() -> None:
    letters = DeadLetterOverview({"dlq.user-events": 3, "dlq.chat-events": 0}, [])
    assert letters.to_json() == {
        "topics": {"dlq.user-events": {"count": 3}, "dlq.chat-events": {"count": 0}},
        "recent": [],
    }


def test_to_json_under_a_prefix_shows_logical_topics() -> None:
    prefixed = dead_letter_json(record(4, 0, topic="p1.dlq.user-events"))
    letters = DeadLetterOverview({"p1.dlq.user-events": 1, "p1.dlq.chat-events": 0}, [prefixed])
    shown = letters.to_json(TopicNames("p1."))
    assert shown["topics"] == {"dlq.user-events": {"count": 1}, "dlq.chat-events": {"count": 0}}
    assert [(x["topic"], x["offset"]) for x in shown["recent"]] == [("dlq.user-events", 4)]
