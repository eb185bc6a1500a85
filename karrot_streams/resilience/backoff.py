"""Bounded exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.base_s * (2 ** min(attempt, 30)))
        # Jitter spreads the retries of several workers hitting the same outage.
        return float(ceiling) * (0.5 + random.random() / 2)  # noqa: S311  not for security
