"""Consistency tokens: read-your-writes for the table queries.

A token names the position an event was written at, ``<topic>:<partition>:<offset>:<eventId>``
(the input topic's contract name). Every publish answers one. A table query given tokens answers
only with figures that include their events: each aggregate value carries, per upstream source,
the highest position it has applied and the positions below it still owed (replay_guard.py), so
"this value includes the event" is ``includes(value, source, position)``, with the source and
position the stage that wrote the value keys that event by:

- the sellers, payment-volume and new-users stages read the pipeline's facts: source
  ``<input topic>:<partition>``, position the input offset;
- the items stage reads the same facts at ``position_of(offset)``; the categories stage reads
  what the items stage sends on, under source ``<items partition>|<input topic>:<partition>`` at
  the same position: a listing reaches its category only through the items stage, and the
  category's marks show it once the category stage has applied it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.tables.replay_guard import position_of

_UUID: Final = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ONE: Final = rf"(?:{'|'.join(INPUT_TOPICS)}):[0-9]{{1,9}}:[0-9]{{1,18}}:{_UUID}"
_LIST: Final = rf"{_ONE}(?:,{_ONE})*"
#: One token; a list of them (comma-separated, as a query and its header give them).
TOKEN_PATTERN: Final = f"^{_ONE}$"
TOKEN_LIST_PATTERN: Final = f"^{_LIST}$"


def parse_tokens(text: str) -> list[Token]:
    """The tokens of a comma-separated list; ValueError unless it is one (TOKEN_LIST_PATTERN)."""
    if not re.fullmatch(_LIST, text):
        raise ValueError(f"not a list of consistency tokens: {text[:80]!r}")
    return [Token.parse(part) for part in text.split(",")]


@dataclass(frozen=True, slots=True)
class Token:
    topic: str  # the input topic's contract (logical) name
    partition: int
    offset: int
    event_id: str

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}:{self.event_id}"

    @classmethod
    def parse(cls, text: str) -> Token:
        """The token ``text`` spells; ValueError when it is not one (TOKEN_PATTERN)."""
        if not re.fullmatch(_ONE, text.strip()):
            raise ValueError(f"not a consistency token: {text[:80]!r}")
        topic, partition, offset, event_id = text.strip().split(":")
        return cls(topic, int(partition), int(offset), event_id.lower())


def includes(value: Mapping[str, Any] | None, source: str, position: int) -> bool:
    """Whether an aggregate value has applied the record at ``position`` of ``source``: its mark
    for the source is at or past it, and the position is not one of those still owed."""
    if not value:
        return False
    mark = (value.get("applied") or {}).get(source)
    if mark is None or mark < position:
        return False
    owed = (value.get("owed") or {}).get(source) or ()
    return not any(lo <= position <= hi for lo, hi in owed)


def fact_position(offset: int) -> tuple[int, int]:
    """(position in the facts stages, position in the items and categories stages)."""
    return offset, position_of(offset)


def effect_source(items_partition: int, source: str) -> str:
    """The categories stage's mark key for what the items stage's partition sent on."""
    return f"{items_partition}|{source}"
