"""One dead letter as read back from ``dlq.<topic>``, its failure headers, and its redrive form.

Pure. A redriven record is the original message again (key, value and the headers it had before
it was dead-lettered), plus ``redrive_count`` and ``redriven_from``; its ``retry_count`` is carried
along, so that if it fails once more the pipeline's dead letter counts every attempt made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.pipeline.dead_letters import (
    ADDED_HEADERS,
    EXCEPTION_CLASS,
    EXCEPTION_MESSAGE,
    FAILED_AT,
    ORIGINAL_TOPIC,
    RETRY_COUNT,
    previous_retry_count,
)
from karrot_streams.pipeline.messages import normalized_headers

REDRIVE_COUNT = "redrive_count"
REDRIVEN_FROM = "redriven_from"
#: Headers a redrive sets; an older copy (a letter redriven before) is replaced, not repeated.
REDRIVE_HEADERS = (REDRIVE_COUNT, REDRIVEN_FROM)

HeaderList = list[tuple[str, bytes]]
#: (partition, offset): where a letter sits in its dead-letter topic.
Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    #: Milliseconds since the epoch, as Kafka gives it (the attribute name aiokafka uses).
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of_record(cls, record: Any) -> DeadLetter:
        """From an aiokafka ConsumerRecord."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            key=record.key,
            value=record.value,
            headers=normalized_headers(record.headers),
        )

    @property
    def position(self) -> Position:
        return (self.partition, self.offset)

    @property
    def address(self) -> str:
        """``dlq-topic:partition:offset``, the value of ``redriven_from``."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text, or None."""
        for key, value in reversed(self.headers):
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def exception_class(self) -> str | None:
        return self.header(EXCEPTION_CLASS)

    @property
    def exception_message(self) -> str | None:
        return self.header(EXCEPTION_MESSAGE)

    @property
    def failed_at(self) -> datetime | None:
        """The ``failed_at`` header as an aware datetime; None if missing or not ISO-8601."""
        text = self.header(FAILED_AT)
        if text is None:
            return None
        try:
            return as_utc(datetime.fromisoformat(text))
        except ValueError:
            return None

    @property
    def original_topic(self) -> str | None:
        """The input topic to redrive to; None unless the header names one of ours."""
        topic = self.header(ORIGINAL_TOPIC)
        return topic if topic in INPUT_TOPICS else None

    @property
    def retry_count(self) -> int:
        return previous_retry_count(self.headers)

    @property
    def redrive_count(self) -> int:
        return _count(self.header(REDRIVE_COUNT))


def as_utc(moment: datetime) -> datetime:
    """Aware in UTC; a naive moment is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def redrive_headers(letter: DeadLetter) -> HeaderList:
    """The headers the message had before it was dead-lettered, then the redrive's own.

    ``retry_count`` stays (as the attempts made so far): when the redriven message fails again,
    the pipeline adds its attempts to it (``dead_letters.previous_retry_count``).
    """
    dropped = set(ADDED_HEADERS) | set(REDRIVE_HEADERS)
    kept = [(k, v) for k, v in letter.headers if k not in dropped]
    added = {
        RETRY_COUNT: str(letter.retry_count),
        REDRIVE_COUNT: str(letter.redrive_count + 1),
        REDRIVEN_FROM: letter.address,
    }
    return kept + [(k, v.encode("utf-8")) for k, v in added.items()]


def _count(text: str | None) -> int:
    try:
        return max(0, int(text)) if text is not None else 0
    except ValueError:
        return 0
