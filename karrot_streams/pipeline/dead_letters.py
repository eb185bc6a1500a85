"""The one way a poison message leaves the pipeline: ``dlq.<topic>``, bytes untouched."""

from __future__ import annotations

from datetime import UTC, datetime

from karrot_streams.events.failures import qualified_name
from karrot_streams.events.types import dead_letter_topic
from karrot_streams.pipeline.messages import Headers, Rejected

ORIGINAL_TOPIC = "original_topic"
ORIGINAL_PARTITION = "original_partition"
ORIGINAL_OFFSET = "original_offset"
EXCEPTION_CLASS = "exception_class"
EXCEPTION_MESSAGE = "exception_message"
FAILED_AT = "failed_at"
RETRY_COUNT = "retry_count"

ADDED_HEADERS = (
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    EXCEPTION_CLASS,
    EXCEPTION_MESSAGE,
    FAILED_AT,
    RETRY_COUNT,
)
MAX_MESSAGE_BYTES = 2000


def previous_retry_count(headers: Headers) -> int:
    for key, value in reversed(list(headers)):
        if key == RETRY_COUNT:
            try:
                return int(value.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return 0
    return 0


def dead_letter_headers(rejected: Rejected, failed_at: datetime) -> list[tuple[str, bytes]]:
    """Original headers (less any stale copy of ours), then the contract's failure headers."""
    incoming = rejected.incoming
    kept = [(k, v) for k, v in incoming.headers if k not in ADDED_HEADERS]
    message = str(rejected.failure) or type(rejected.failure).__name__
    added = {
        ORIGINAL_TOPIC: incoming.topic,
        ORIGINAL_PARTITION: str(incoming.partition),
        ORIGINAL_OFFSET: str(incoming.offset),
        EXCEPTION_CLASS: qualified_name(rejected.failure),
        EXCEPTION_MESSAGE: message.encode("utf-8")[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore"),
        FAILED_AT: failed_at.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        RETRY_COUNT: str(previous_retry_count(incoming.headers) + rejected.attempts),
    }
    return kept + [(k, v.encode("utf-8")) for k, v in added.items()]


def dead_letter_of(rejected: Rejected) -> str:
    return dead_letter_topic(rejected.incoming.topic)
