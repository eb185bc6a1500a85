"""Skip what a table has already counted.

Each aggregate value carries, per upstream partition, the highest position it has applied. Records
for one key arrive from one upstream partition in order, so a record at or below that mark is a
redelivery (a crash between the table write and the offset commit) and must not count again.

A sender that resends what the broker refused can put a record behind a later one of its key and
source. Each record names ``prev``, the position of the record of its key and source the sender
sent just before it in the same send (none for the first): a record whose ``prev`` is above the
mark shows that the positions from the mark up to ``prev`` were skipped over, not applied. The
value keeps those as ``owed`` ranges per source (``admit``); a record at or below the mark is
applied only from an owed range, which it leaves. A replay, or a second copy of a late record, is
not owed and is skipped. ``owed`` is empty (and not stored) unless a send was reordered.

The same marks order two values of one key: at recovery a changelog record that is older than the
value its key already has does not replace it (``order``); between equal marks, the value that
owes less is the newer (``order_owed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


def is_replay(applied: Mapping[str, int], source: str, position: int) -> bool:
    mark = applied.get(source)
    return mark is not None and position <= mark


def mark(applied: Mapping[str, int], source: str, position: int) -> dict[str, int]:
    return {**applied, source: position}


#: Per source, ``[lo, hi]`` ranges of positions at or below the mark that were not applied.
Owed = dict[str, list[list[int]]]
#: Owed ranges kept per source; past it the oldest is dropped (its records then count as replays).
MAX_OWED = 8
_NOTHING_OWED: Owed = {}


def admit(
    applied: dict[str, int], owed: Owed, source: str, position: int, prev: int | None
) -> tuple[dict[str, int], Owed] | None:
    """The marks and owed ranges once the record at ``position`` is applied; ``None`` for a
    record already applied (a replay, or another copy of one).

    ``prev``: the position of the record of the same key and source sent just before it in the
    same send, if any (see the module docstring).
    """
    held = applied.get(source)
    if held is None or position > held:
        marks = {**applied, source: position}
        if prev is not None and (held is None or prev > held) and prev < position:
            return marks, _owe(owed, source, 0 if held is None else held + 1, prev)
        return marks, owed
    ranges = owed.get(source) if owed else None
    if ranges:
        for n, (lo, hi) in enumerate(ranges):
            if lo <= position <= hi:
                return applied, _settle(owed, source, ranges, n, position, prev)
    return None


def _owe(owed: Owed, source: str, lo: int, hi: int) -> Owed:
    ranges = [*owed.get(source, ()), [lo, hi]]
    return {**owed, source: ranges[-MAX_OWED:]}


def _settle(
    owed: Owed, source: str, ranges: list[list[int]], n: int, position: int, prev: int | None
) -> Owed:
    """``owed`` without ``position``; below it, only what its ``prev`` still shows skipped."""
    lo, hi = ranges[n]
    parts = []
    if prev is not None and prev >= lo:
        parts.append([lo, min(prev, position - 1)])
    if position < hi:
        parts.append([position + 1, hi])
    left = [*ranges[:n], *parts, *ranges[n + 1 :]]
    if left:
        return {**owed, source: left}
    return {s: r for s, r in owed.items() if s != source} or _NOTHING_OWED


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


def owed_count(owed: Mapping[str, list[list[int]]]) -> int:
    return sum(hi - lo + 1 for ranges in owed.values() for lo, hi in ranges)


def order_owed(
    current: Mapping[str, list[list[int]]], incoming: Mapping[str, list[list[int]]]
) -> Order:
    """Between two values of equal marks: owed ranges only grow with a mark, and shrink as late
    records are applied, so the one that owes less is the newer."""
    held, new = owed_count(current), owed_count(incoming)
    if new < held:
        return Order.NEWER
    return Order.OLDER if new > held else Order.EQUAL
