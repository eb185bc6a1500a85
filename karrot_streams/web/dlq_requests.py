"""The dead-letter endpoints' inputs: the topic, the list query and the redrive body. Pure.

Every failure is a 400 naming the field (``details.field``), as for the publish body; a topic that
is not one of the four ``dlq.*`` topics is a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from karrot_streams.dlq.reader import ListRange
from karrot_streams.dlq.selection import (
    DEAD_LETTER_TOPICS,
    InvalidSelection,
    Selection,
    is_dead_letter_topic,
)
from karrot_streams.web.http.errors import BadRequest, NotFound
from karrot_streams.web.http.models import DeadLetterQuery, RedriveRequest
from karrot_streams.web.http.requests import parse_json_object, parse_model, parse_query


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
    selection and a limit. Every combination the document allows is a question with an answer
    (an empty window, an empty range: no letters), never a 400."""
    checked = parse_query(DeadLetterQuery, query)
    one = checked.partition is not None and checked.offset is not None
    selection = _selection(
        # A partition or an offset alone narrows the range read (parse_list_range); together
        # they name one letter.
        partition=checked.partition if one else None,
        offset=checked.offset if one else None,
        since=checked.since,
        until=checked.until,
        exception_class=(checked.exceptionClass or "").strip() or None,
    )
    return selection, checked.limit


def parse_list_range(query: Mapping[str, str]) -> ListRange:
    """``?partition&fromOffset&toOffset&offset&since``: where a listing reads: ``[from, to)``
    in the partition given, else in every partition (``offset`` alone: ``[offset, offset+1)``).
    A range that is empty (``from >= to``) reads nothing."""
    checked = parse_query(DeadLetterQuery, query)
    from_offset, to_offset = checked.fromOffset, checked.toOffset
    if checked.offset is not None:
        from_offset = max(checked.offset, from_offset or 0)
        to_offset = checked.offset + 1 if to_offset is None else min(to_offset, checked.offset + 1)
    return ListRange(
        partition=checked.partition,
        from_offset=from_offset,
        to_offset=to_offset,
        since=checked.since,
    )


def parse_redrive(body: bytes) -> RedriveCommand:
    """``{partition?, offset?, since?, until?, exceptionClass?, dryRun?}``; ``{}`` means all."""
    checked = parse_model(RedriveRequest, parse_json_object(body))
    selection = _selection(
        partition=checked.partition,
        offset=checked.offset,
        since=checked.since,
        until=checked.until,
        exception_class=checked.exceptionClass,
    )
    return RedriveCommand(selection, checked.dryRun)


def _selection(**filters: Any) -> Selection:
    try:
        return Selection(**filters)
    except InvalidSelection as exc:
        raise BadRequest(str(exc), details={"field": exc.field}) from None
