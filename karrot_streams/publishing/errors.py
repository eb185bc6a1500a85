"""What publishing raises when a dependency cannot take the event; the web maps it to a 503."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PublishUnavailable(Exception):
    """Kafka or the event store could not take the event now; ``details`` say which and why."""

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details else None
