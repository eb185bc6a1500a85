"""Bounded exponential backoff with jitter, and the one loop that waits out an outage with it.

Every wait for a dependency that is down (registry, database, broker) goes through
``until_up``: the stream pauses, with backoff and without limit, instead of failing good work.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Told of each failed attempt (the error, and how many failed before it) before the wait.
OnDown = Callable[[BaseException, int], None]
#: Told once the operation succeeds after ``attempts`` failed ones (never when none failed).
OnUp = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.base_s * (2 ** min(attempt, 30)))
        # Jitter spreads the retries of several workers hitting the same outage.
        return float(ceiling) * (0.5 + random.random() / 2)  # noqa: S311  not for security


def _stay_quiet(_: int) -> None:
    return None


async def until_up(
    operation: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    transient: type[BaseException] | tuple[type[BaseException], ...],
    on_down: OnDown,
    on_up: OnUp = _stay_quiet,
) -> T:
    """``operation``'s result, retried after each ``transient`` error for as long as it takes.

    Any other error propagates at once: only an outage is waited out.
    """
    attempt = 0
    while True:
        try:
            result = await operation()
        except transient as exc:
            on_down(exc, attempt)
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
            continue
        if attempt:
            on_up(attempt)
        return result


class Undelivered(Exception):
    """Some records of a send did not get through; it reads as the first one's error."""

    def __init__(self, first: BaseException) -> None:
        super().__init__(str(first))
        self.first = first


async def until_delivered(
    send: Callable[[list[R]], Awaitable[Sequence[tuple[R, BaseException]]]],
    records: list[R],
    backoff: Backoff,
    *,
    on_down: OnDown,
    on_up: OnUp = _stay_quiet,
) -> None:
    """Send ``records``, then again those that failed, until every one is delivered.

    ``send`` answers the records that failed with their errors. Resending may duplicate what
    did get through, and puts a refused record behind later ones that were taken: the consumers
    downstream skip replays and take late records (tables/replay_guard.py).
    """
    pending = records

    async def send_pending() -> None:
        nonlocal pending
        if not pending:
            return
        failed = await send(pending)
        pending = [record for record, _ in failed]
        if failed:
            raise Undelivered(failed[0][1])

    await until_up(send_pending, backoff, transient=Undelivered, on_down=on_down, on_up=on_up)
