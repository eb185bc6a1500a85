"""Which dead letters a list or a redrive is about: filters on their position and headers. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from karrot_streams.dlq.dead_letters import DeadLetter, Position, as_utc
from karrot_streams.events.types import INPUT_TOPICS, dead_letter_topic

DEAD_LETTER_TOPICS: tuple[str, ...] = tuple(dead_letter_topic(t) for t in INPUT_TOPICS)


class InvalidSelection(ValueError):
    """A filter that cannot be applied; ``field`` names it as the client spelled it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def is_dead_letter_topic(name: str) -> bool:
    return name in DEAD_LETTER_TOPICS


def parse_instant(text: str, field: str) -> datetime:
    """An ISO-8601 moment (``2024-05-01T09:30:00Z``; no zone means UTC), aware in UTC."""
    try:
        return as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise InvalidSelection(
            f"{field} must be an ISO-8601 date-time such as 2024-05-01T09:30:00Z,"
            f" got {text[:60]!r}",
            field,
        ) from None


@dataclass(frozen=True, slots=True)
class Selection:
    """One letter (``partition`` and ``offset``), or all; narrowed by the other filters.

    ``since <= failed_at < until`` (``since >= until``: an empty window, nothing); a letter
    without a readable ``failed_at`` matches no time filter. ``exception_class`` matches the
    header's value exactly.
    """

    partition: int | None = None
    offset: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    exception_class: str | None = None

    def __post_init__(self) -> None:
        if (self.partition is None) != (self.offset is None):
            missing = "offset" if self.offset is None else "partition"
            raise InvalidSelection(
                "partition and offset go together: give both or neither", missing
            )
        for name in ("partition", "offset"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidSelection(f"{name} must not be negative", name)
        if self.exception_class is not None and not self.exception_class.strip():
            raise InvalidSelection("exceptionClass must not be blank", "exceptionClass")

    @property
    def single(self) -> Position | None:
        if self.partition is None or self.offset is None:
            return None
        return (self.partition, self.offset)

    def matches(self, letter: DeadLetter) -> bool:
        single = self.single
        if single is not None and letter.position != single:
            return False
        if self.exception_class is not None and letter.exception_class != self.exception_class:
            return False
        if self.since is not None or self.until is not None:
            failed_at = letter.failed_at
            if failed_at is None:
                return False
            if self.since is not None and failed_at < self.since:
                return False
            if self.until is not None and failed_at >= self.until:
                return False
        return True


def redrivable(letter: DeadLetter) -> bool:
    """A letter whose ``original_topic`` names one of the input topics."""
    return letter.original_topic is not None


def select(letters: Iterable[DeadLetter], selection: Selection) -> list[DeadLetter]:
    """The redrivable letters the selection matches, in (partition, offset) order."""
    chosen = [x for x in letters if selection.matches(x) and redrivable(x)]
    return sorted(chosen, key=lambda x: x.position)


def newest_first(letters: Iterable[DeadLetter], limit: int) -> list[DeadLetter]:
    """The ``limit`` newest letters (by timestamp, then position), newest first."""
    ordered = sorted(letters, key=lambda x: (x.timestamp, x.partition, x.offset), reverse=True)
    return ordered[:limit]
