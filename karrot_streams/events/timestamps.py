"""The one timestamp format of the API and of every JSON body: UTC, milliseconds, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a ``Z``: ``2024-05-01T09:30:00.000Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the event store's columns hold UTC
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_epoch(epoch_s: float) -> str:
    return iso_utc(datetime.fromtimestamp(epoch_s, UTC))
