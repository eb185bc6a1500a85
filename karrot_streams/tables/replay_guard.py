"""Skip what a table has already counted.

Each aggregate value carries, per upstream partition, the highest position it has applied. Records
for one key arrive from one upstream partition in order, so a record at or below that mark is a
redelivery (a crash between the table write and the offset commit) and must not count again.

The same marks order two values of one key: at recovery a changelog record that is older than the
value its key already has does not replace it (``order``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


def is_replay(applied: Mapping[str, int], source: str, position: int) -> bool:
    mark = applied.get(source)
    return mark is not None and position <= mark


def mark(applied: Mapping[str, int], source: str, position: int) -> dict[str, int]:
    return {**applied, source: position}


def position_of(offset: int, sub: int = 0) -> int:
    """One ordered number for (offset, n-th record emitted for that offset)."""
    return offset * 1024 + sub


class Order(Enum):
    """How one value's marks stand against another's (a missing source counts as below all)."""

    NEWER = "newer"  # ahead for some source, behind for none
    EQUAL = "equal"
    OLDER = "older"  # behind for some source, ahead for none
    INCOMPARABLE = "incomparable"  # ahead for one source, behind for another


def order(current: Mapping[str, int], incoming: Mapping[str, int]) -> Order:
    """Where ``incoming`` stands against ``current``.

    Marks only grow as a value is updated, so an ``OLDER`` value is one that a newer write of the
    same key has already superseded: a zombie worker's late changelog record, say.
    """
    ahead = behind = False
    shared = 0
    for source, position in incoming.items():
        held = current.get(source)
        if held is None:
            ahead = True
            continue
        shared += 1
        if position > held:
            ahead = True
        elif position < held:
            behind = True
    if shared < len(current):
        behind = True
    if ahead:
        return Order.INCOMPARABLE if behind else Order.NEWER
    return Order.OLDER if behind else Order.EQUAL
