"""The dead-letter endpoints' inputs: the topic, the list query and the redrive body. Pure.

Every failure is a 400 naming the field (``details.field``), as for the publish body; a topic that
is not one of the four ``dlq.*`` topics is a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from karrot_streams.dlq.reader import ListRange
from karrot_streams.dlq.selection import (
    DEAD_LETTER_TOPICS,
    InvalidSelection,
    Selection,
    is_dead_letter_topic,
    parse_instant,
)
from karrot_streams.web.http.errors import BadRequest, NotFound
from karrot_streams.web.http.requests import parse_json_object, parse_limit

LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000
REDRIVE_FIELDS = ("partition", "offset", "since", "until", "exceptionClass", "dryRun")
#: Kafka's partition (INT32) and offset (INT64) ranges.
LIMITS = {"partition": 2**31 - 1, "offset": 2**63 - 1}


@dataclass(frozen=True, slots=True)
class RedriveCommand:
    selection: Selection
    dry_run: bool


def dead_letter_topic_named(topic: str) -> str:
    if not is_dead_letter_topic(topic):
        raise NotFound(
            f"No dead-letter topic {topic[:100]!r}; known: {', '.join(DEAD_LETTER_TOPICS)}",
            details={"topic": topic[:255], "known": list(DEAD_LETTER_TOPICS)},
        )
    return topic


def parse_list_query(query: Mapping[str, str]) -> tuple[Selection, int]:
    """``?limit&since&until&exceptionClass`` (and ``partition&offset``: one letter) as a
    selection and a limit."""
    limit = parse_limit(query.get("limit"), default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
    offset = _whole_query(query, "offset")
    selection = _selection(
        # A partition alone narrows the range read (parse_list_range); with an offset it names
        # one letter.
        partition=_whole_query(query, "partition") if offset is not None else None,
        offset=offset,
        since=_instant(query.get("since") or None, "since"),
        until=_instant(query.get("until") or None, "until"),
        exception_class=query.get("exceptionClass") or None,
    )
    return selection, limit


def parse_list_range(query: Mapping[str, str]) -> ListRange:
    """``?partition&fromOffset&toOffset&since``: where a listing reads (``[from, to)``)."""
    partition = _whole_query(query, "partition")
    from_offset = _whole_query(query, "fromOffset")
    to_offset = _whole_query(query, "toOffset")
    if partition is None and (from_offset is not None or to_offset is not None):
        field = "fromOffset" if from_offset is not None else "toOffset"
        raise BadRequest(
            "an offset range needs its partition: give partition too", details={"field": field}
        )
    if from_offset is not None and to_offset is not None and from_offset >= to_offset:
        raise BadRequest("fromOffset must be below toOffset", details={"field": "fromOffset"})
    return ListRange(
        partition=partition,
        from_offset=from_offset,
        to_offset=to_offset,
        since=_instant(query.get("since") or None, "since"),
    )


def _whole_query(query: Mapping[str, str], field: str) -> int | None:
    raw = query.get(field)
    if raw is None or raw == "":
        return None
    limit = LIMITS["partition" if field == "partition" else "offset"]
    if not raw.isascii() or not raw.isdigit() or int(raw) > limit:
        raise BadRequest(
            f"{field} must be a whole number from 0 to {limit}", details={"field": field}
        )
    return int(raw)


def parse_redrive(body: bytes) -> RedriveCommand:
    """``{partition?, offset?, since?, until?, exceptionClass?, dryRun?}``; ``{}`` means all."""
    request = parse_json_object(body)
    unknown = sorted(set(request) - set(REDRIVE_FIELDS))
    if unknown:
        raise BadRequest(
            f"Unknown field {unknown[0][:60]!r}; a redrive takes {', '.join(REDRIVE_FIELDS)}",
            details={"field": unknown[0][:255], "allowed": list(REDRIVE_FIELDS)},
        )
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("dryRun must be true or false", details={"field": "dryRun"})
    selection = _selection(
        partition=_whole(request.get("partition"), "partition"),
        offset=_whole(request.get("offset"), "offset"),
        since=_instant(_text(request.get("since"), "since"), "since"),
        until=_instant(_text(request.get("until"), "until"), "until"),
        exception_class=_text(request.get("exceptionClass"), "exceptionClass"),
    )
    return RedriveCommand(selection, dry_run)


def _selection(**filters: Any) -> Selection:
    try:
        return Selection(**filters)
    except InvalidSelection as exc:
        raise BadRequest(str(exc), details={"field": exc.field}) from None


def _instant(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text, field)
    except InvalidSelection as exc:
        raise BadRequest(str(exc), details={"field": exc.field}) from None


def _whole(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMITS[field]:
        raise BadRequest(
            f"{field} must be a whole number from 0 to {LIMITS[field]}", details={"field": field}
        )
    return value


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string", details={"field": field})
    return value
