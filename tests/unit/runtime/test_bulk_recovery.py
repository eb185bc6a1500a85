"""The recovery loop that takes runs of changelog records: the same table contents and offsets as
Faust's one-record loop, on a real ``BulkRecovery`` over a real in-memory store (no broker).

The end-to-end proof (a worker restoring its tables from a real changelog, then answering) is
``tests/integration`` and the bench's recovery run.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
import pytest
from faust.types import TP

from karrot_streams.runtime.recovery import CHANGELOG_QUEUE_MAX, BulkRecovery, BulkTableManager


class Message:
    def __init__(self, tp: TP, offset: int, key: bytes, value: bytes | None) -> None:
        self.tp = tp
        self.topic = tp.topic
        self.partition = tp.partition
        self.offset = offset
        self.key = key
        self.value = value


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message


class Table:
    """What the recovery asks of a table: its buffer sizes and a batch apply."""

    recovery_buffer_size = 3
    standby_buffer_size = 2

    def __init__(self) -> None:
        self.data: dict[bytes, bytes | None] = {}
        self.applied: list[list[int]] = []
        self.seen: list[int] = []

    async def on_changelog_event(self, event: Event) -> None:
        self.seen.append(event.message.offset)

    def apply_changelog_batch(self, batch: list[Event]) -> None:
        self.applied.append([e.message.offset for e in batch])
        for event in batch:
            self.data[event.message.key] = event.message.value


ACTIVE = TP("app-items-changelog", 0)
STANDBY = TP("app-items-changelog", 1)


def record(tp: TP, offset: int, value: bytes | None = b"v") -> Event:
    return Event(Message(tp, offset, f"k{offset}".encode(), value))


@pytest.fixture
def app() -> faust.App:
    return faust.App(
        "test-bulk-recovery", broker="kafka://localhost:1", TableManager=BulkTableManager
    )


@pytest.fixture
def recovery(app: faust.App) -> tuple[BulkRecovery, Table]:
    manager = app.tables
    assert isinstance(manager, BulkTableManager)
    recovery = manager.recovery
    assert isinstance(recovery, BulkRecovery)
    table: Any = Table()  # what the recovery asks of Faust's Collection
    recovery.active_tps.add(ACTIVE)
    recovery.standby_tps.add(STANDBY)
    recovery.tp_to_table[ACTIVE] = table
    recovery.tp_to_table[STANDBY] = table
    return recovery, table


def test_the_app_uses_the_bulk_recovery_and_a_queue_that_holds_a_fetch(app: faust.App) -> None:
    assert isinstance(app.tables, BulkTableManager)
    assert app.tables.changelog_queue.maxsize == CHANGELOG_QUEUE_MAX
    assert app.tables.changelog_queue is app.tables.changelog_queue


async def test_a_run_skips_what_was_taken_and_writes_full_buffers(
    recovery: tuple[BulkRecovery, Table],
) -> None:
    bulk, table = recovery
    bulk.active_offsets[ACTIVE] = 1  # offsets 0 and 1 were taken before
    run = [record(ACTIVE, o) for o in (0, 1, 2, 3, 3, 4, 5, 6)]
    await bulk._apply_run(run)
    assert bulk.active_offsets[ACTIVE] == 6
    # The duplicate 3 (read again after a seek) is skipped like 0 and 1.
    assert table.seen == [2, 3, 4, 5, 6]
    assert table.applied == [[2, 3, 4]]  # the active buffer holds 3
    assert [e.message.offset for e in bulk.buffers[cast(Any, table)]] == [5, 6]
    bulk.flush_buffers()
    assert table.applied[-1] == [5, 6]
    assert set(table.data) == {b"k2", b"k3", b"k4", b"k5", b"k6"}
    # Faust's remaining-time estimate: one sample per record taken, at most its 1,000.
    assert len(bulk._processing_times) == 5
    await bulk._apply_run([record(ACTIVE, o) for o in range(7, 2_000)])
    assert len(bulk._processing_times) == bulk.num_samples_required_for_estimate


async def test_standby_and_unknown_partitions(recovery: tuple[BulkRecovery, Table]) -> None:
    bulk, table = recovery
    unknown = TP("app-items-changelog", 9)
    await bulk._apply_run([record(STANDBY, 0), record(unknown, 0), record(STANDBY, 1)])
    assert bulk.standby_offsets[STANDBY] == 1
    assert unknown not in bulk.active_offsets and unknown not in bulk.standby_offsets
    assert table.applied == [[0, 1]]  # the standby buffer holds 2; the unknown one not applied
    assert STANDBY in bulk._standby_events_received_at


async def test_a_tombstone_is_applied_as_a_delete(recovery: tuple[BulkRecovery, Table]) -> None:
    bulk, table = recovery
    await bulk._apply_run([record(ACTIVE, 0), record(ACTIVE, 1, None), record(ACTIVE, 2)])
    assert table.applied == [[0, 1, 2]]
    assert table.data[b"k1"] is None


async def recover(bulk: BulkRecovery, highwater: int, records: int, wait_s: float) -> bool:
    """Queue ``records`` active records, run the loop until it signals the end of recovery or
    ``wait_s`` passes; whether it signalled."""
    bulk._set_recovery_started()
    bulk.active_highwaters[ACTIVE] = highwater
    bulk.active_offsets[ACTIVE] = -1
    queue: Any = bulk.tables.changelog_queue
    for offset in range(records):
        queue.put_nowait(record(ACTIVE, offset))
    loop = asyncio.ensure_future(BulkRecovery._slurp_changelogs.fun(bulk))
    try:
        await asyncio.wait_for(bulk.signal_recovery_end.wait(), timeout=wait_s)
    except TimeoutError:
        return False
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    return True


async def test_the_loop_takes_what_is_queued_and_ends_recovery_at_the_highwater(
    recovery: tuple[BulkRecovery, Table],
) -> None:
    bulk, table = recovery
    assert await recover(bulk, highwater=4, records=5, wait_s=5)
    assert not bulk.in_recovery
    assert bulk.tables.changelog_queue.empty()
    # Full buffers written as they filled, the rest when recovery ended: all five, in order.
    assert [o for batch in table.applied for o in batch] == [0, 1, 2, 3, 4]


async def test_the_loop_does_not_end_recovery_short_of_the_highwater(
    recovery: tuple[BulkRecovery, Table],
) -> None:
    bulk, _ = recovery
    assert not await recover(bulk, highwater=10, records=5, wait_s=0.3)
    assert bulk.in_recovery
    assert bulk.active_offsets[ACTIVE] == 4
