"""The failure kinds of the pipeline. Each maps to one route: dead letter, or wait and retry."""

from __future__ import annotations


class PoisonMessage(Exception):
    """A message that can never be processed as it is: it goes to its dead-letter topic."""

    def __init__(self, message: str, *, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id


class UndecodableMessage(PoisonMessage):
    """Bad framing, unknown schema id, or bytes that are not Avro of the writer schema."""


class InvalidEvent(PoisonMessage):
    """Decoded, but breaks a validation rule."""

    def __init__(self, message: str, *, field: str | None = None, event_id: str | None = None):
        super().__init__(message, event_id=event_id)
        self.field = field


class RetriesExhausted(PoisonMessage):
    """A failure the message may have caused kept happening after the retry budget."""


class TransientFailure(Exception):
    """A dependency (registry, database, broker) is unavailable: wait, never dead-letter."""


def qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"
