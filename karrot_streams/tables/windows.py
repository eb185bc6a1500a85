"""Reading a windowed table: the windows of a recent period and their counters (local reads)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from karrot_streams.events.timestamps import iso_epoch
from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.declarations import window_of


def recent_windows(table: Any, now: float, size: float, count: int) -> list[tuple[float, float]]:
    """The ``count`` windows up to the one holding ``now``, oldest first, as the table keys them."""
    latest = window_of(table, now)[0]
    return [window_of(table, latest - size * back) for back in range(count - 1, -1, -1)]


def counted(
    table: Any, key: str, windows: list[tuple[float, float]]
) -> Iterator[tuple[float, agg.Counter]]:
    """(window start, counter) for each window of ``key`` that counted something."""
    for window in windows:
        counter = agg.counter_from(table[(key, window)])
        if counter.count:
            yield window[0], counter


def span(start: float, size: float) -> dict[str, str]:
    """A window as the API shows it: ISO-8601 UTC start and exclusive end."""
    return {"start": iso_epoch(start), "end": iso_epoch(start + size)}
