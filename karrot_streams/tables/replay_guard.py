"""Skip what a table has already counted.

Each aggregate value carries, per upstream partition, the highest position it has applied. Records
for one key arrive from one upstream partition in order, so a record at or below that mark is a
redelivery (a crash between the table write and the offset commit) and must not count again.
"""

from __future__ import annotations

from collections.abc import Mapping


def is_replay(applied: Mapping[str, int], source: str, position: int) -> bool:
    mark = applied.get(source)
    return mark is not None and position <= mark


def mark(applied: Mapping[str, int], source: str, position: int) -> dict[str, int]:
    return {**applied, source: position}


def position_of(offset: int, sub: int = 0) -> int:
    """One ordered number for (offset, n-th record emitted for that offset)."""
    return offset * 1024 + sub
