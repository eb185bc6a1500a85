"""Selecting dead letters by position, time range and exception class."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from karrot_streams.dlq.dead_letters import DeadLetter
from karrot_streams.dlq.selection import (
    InvalidSelection,
    Selection,
    is_dead_letter_topic,
    newest_first,
    parse_instant,
    select,
)

INVALID = "karrot_streams.events.failures.InvalidEvent"
UNDECODABLE = "karrot_streams.events.failures.UndecodableMessage"


def letter(
    partition: int,
    offset: int,
    failed_at: str | None = "2026-11-25T09:00:00.000Z",
    exception_class: str = INVALID,
    original_topic: str = "chat-events",
    timestamp: int = 0,
) -> DeadLetter:
    headers = [
        ("original_topic", original_topic.encode()),
        ("exception_class", exception_class.encode()),
    ]
    if failed_at is not None:
        headers.append(("failed_at", failed_at.encode()))
    return DeadLetter("dlq.chat-events", partition, offset, timestamp, b"k", b"v", tuple(headers))


def at(text: str) -> datetime:
    return parse_instant(text, "since")


def test_parse_instant() -> None:
    assert at("2026-11-25T09:00:00Z") == datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert at("2026-11-25T18:00:00+09:00") == datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert at("2026-11-25") == datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(InvalidSelection) as caught:
        parse_instant("last tuesday", "until")
    assert caught.value.field == "until"


def test_everything_by_default_in_position_order() -> None:
    letters = [letter(1, 5), letter(0, 9), letter(1, 2)]
    assert [x.position for x in select(letters, Selection())] == [(0, 9), (1, 2), (1, 5)]


def test_one_letter() -> None:
    letters = [letter(1, 5), letter(0, 5)]
    assert [x.position for x in select(letters, Selection(partition=0, offset=5))] == [(0, 5)]


def test_time_range_is_since_inclusive_until_exclusive() -> None:
    letters = [
        letter(0, 1, "2026-11-25T08:59:59.999Z"),
        letter(0, 2, "2026-11-25T09:00:00.000Z"),
        letter(0, 3, "2026-11-25T09:59:59.999Z"),
        letter(0, 4, "2026-11-25T10:00:00.000Z"),
        letter(0, 5, None),
    ]
    chosen = Selection(since=at("2026-11-25T09:00:00Z"), until=at("2026-11-25T10:00:00Z"))
    assert [x.offset for x in select(letters, chosen)] == [2, 3]
    assert [x.offset for x in select(letters, Selection(since=at("2026-11-25T09:30Z")))] == [3, 4]
    assert [x.offset for x in select(letters, Selection())] == [1, 2, 3, 4, 5]


def test_exception_class_is_an_exact_match() -> None:
    letters = [letter(0, 1), letter(0, 2, exception_class=UNDECODABLE)]
    assert [x.offset for x in select(letters, Selection(exception_class=INVALID))] == [1]
    assert select(letters, Selection(exception_class="InvalidEvent")) == []


def test_letters_without_an_input_topic_are_not_redrivable() -> None:
    letters = [letter(0, 1), letter(0, 2, original_topic="enriched.chat-events")]
    assert [x.offset for x in select(letters, Selection())] == [1]
    assert Selection().matches(letters[1])  # still listed, never redriven


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"partition": 1}, "offset"),
        ({"offset": 1}, "partition"),
        ({"partition": -1, "offset": 0}, "partition"),
        ({"partition": 0, "offset": -1}, "offset"),
        ({"exception_class": " "}, "exceptionClass"),
    ],
)
def test_bad_filters(filters: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSelection) as caught:
        Selection(**filters)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_newest_first() -> None:
    letters = [letter(0, 1, timestamp=5), letter(1, 1, timestamp=9), letter(0, 2, timestamp=9)]
    assert [x.position for x in newest_first(letters, 2)] == [(1, 1), (0, 2)]
    assert newest_first(letters, 0) == []


def test_dead_letter_topics() -> None:
    assert is_dead_letter_topic("dlq.payment-events")
    assert not is_dead_letter_topic("payment-events")
    assert not is_dead_letter_topic("dlq.other")


def test_an_empty_window_selects_nothing() -> None:
    """``since >= until`` is a window with nothing in it, not an error (the document cannot say
    that one parameter must be below another)."""
    since, until = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert Selection(since=since, until=until).until == until
