"""The dead-letter endpoints' inputs: topic, list query, redrive body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from karrot_streams.dlq.reader import ListRange
from karrot_streams.web.dlq_requests import (
    dead_letter_topic_named,
    parse_list_query,
    parse_list_range,
    parse_redrive,
)
from karrot_streams.web.http.errors import BadRequest, NotFound


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_known_topics_only() -> None:
    assert dead_letter_topic_named("dlq.item-events") == "dlq.item-events"
    for name in ("item-events", "dlq.other", "enriched.item-events", ""):
        with pytest.raises(NotFound):
            dead_letter_topic_named(name)


def test_list_query() -> None:
    selection, limit = parse_list_query(
        {
            "limit": "5",
            "since": "2026-11-25T09:00:00Z",
            "exceptionClass": "karrot_streams.events.failures.InvalidEvent",
        }
    )
    assert limit == 5
    assert selection.since == datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert selection.until is None
    assert selection.exception_class == "karrot_streams.events.failures.InvalidEvent"
    assert parse_list_query({}) == (parse_list_query({"exceptionClass": ""})[0], 100)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"since": "soon"}, "since"),
        ({"since": ""}, "since"),
        ({"limit": ""}, "limit"),
    ],
)
def test_bad_list_query(query: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_list_query(query)
    assert caught.value.details == {"field": field}


def test_redrive_everything() -> None:
    command = parse_redrive(b"{}")
    assert not command.dry_run
    assert command.selection.single is None


def test_redrive_one_letter_dry() -> None:
    command = parse_redrive(body({"partition": 2, "offset": 40, "dryRun": True}))
    assert command.dry_run
    assert command.selection.single == (2, 40)


def test_redrive_filtered() -> None:
    command = parse_redrive(
        body(
            {
                "since": "2026-11-25T09:00:00+09:00",
                "until": "2026-11-25T10:00:00Z",
                "exceptionClass": "karrot_streams.events.failures.InvalidEvent",
            }
        )
    )
    assert command.selection.since == datetime(2026, 11, 25, 0, tzinfo=UTC)
    assert command.selection.until == datetime(2026, 11, 25, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"partition": 1}, "offset"),
        ({"partition": "1", "offset": 2}, "partition"),
        ({"partition": True, "offset": 2}, "partition"),
        ({"partition": 0, "offset": 2**63}, "offset"),
        ({"partition": 0, "offset": 1.5}, "offset"),
        ({"dryRun": "yes"}, "dryRun"),
        ({"since": 1700000000}, "since"),
        ({"until": "tomorrow"}, "until"),
        ({"exceptionClass": ""}, "exceptionClass"),
        ({"exception_class": "x"}, "exception_class"),
    ],
)
def test_bad_redrive_body(value: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_redrive(body(value))
    assert caught.value.details is not None
    assert caught.value.details["field"] == field


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'"x"'])
def test_redrive_body_must_be_an_object(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_redrive(raw)


def test_one_letter_by_partition_and_offset() -> None:
    selection, _ = parse_list_query({"partition": "2", "offset": "40"})
    assert selection.single == (2, 40)
    # A partition alone narrows the range, it is no single letter.
    alone, _ = parse_list_query({"partition": "2"})
    assert alone.single is None


def test_list_range() -> None:
    where = parse_list_range(
        {"partition": "1", "fromOffset": "10", "toOffset": "20", "since": "2026-11-25T09:00:00Z"}
    )
    assert (where.partition, where.from_offset, where.to_offset) == (1, 10, 20)
    assert where.since == datetime(2026, 11, 25, 9, tzinfo=UTC)
    with pytest.raises(BadRequest):
        parse_list_range({"partition": ""})  # the document says integer: empty is not one


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"partition": "-1"}, "partition"),
        ({"partition": "1", "fromOffset": "x"}, "fromOffset"),
        ({"partition": "٣"}, "partition"),
        ({"partition": str(2**31)}, "partition"),
    ],
)
def test_bad_list_range(query: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_list_range(query)
    assert caught.value.details == {"field": field}


def test_what_the_document_cannot_forbid_is_answered_not_refused() -> None:
    """Cross-parameter rules cannot be written in OpenAPI: each combination means something."""
    assert parse_list_range({"fromOffset": "5"}) == ListRange(from_offset=5)
    assert parse_list_range({"toOffset": "5"}) == ListRange(to_offset=5)
    empty = parse_list_range({"partition": "1", "fromOffset": "5", "toOffset": "5"})
    assert empty == ListRange(partition=1, from_offset=5, to_offset=5)
    selection, _ = parse_list_query({"offset": "3"})
    assert selection.single is None
    assert parse_list_range({"offset": "3"}) == ListRange(from_offset=3, to_offset=4)
    window, _ = parse_list_query({"since": "2026-11-26T00:00:00Z", "until": "2026-11-25T00:00:00Z"})
    assert window.since is not None
