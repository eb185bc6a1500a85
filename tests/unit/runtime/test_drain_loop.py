"""The batch drain loop through a rebalance, on a real ``BatchDeliveryConsumer`` with its fetches
and seeks scripted (no broker).

Both cases were seen on the real stack with two workers, one restarted:

* the queues are emptied (``flow_control.clear()``) while the fetch position is already past what
  they held. Read on from there, those records are never processed: a hole that is never acked
  (commits stop: "committed offsets did not reach the input's end"), or a jump that Faust takes
  for a compacted gap and commits unread. After a clear the loop must seek back to the committed
  offsets before it delivers anything;
* a seek loses its partition to the rebalance (aiokafka's ``IllegalStateError``): Faust's own
  ``getmany`` logs that and goes on; the loop crashed the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from aiokafka.errors import IllegalStateError
from faust.types import TP

from karrot_streams.runtime import internals
from karrot_streams.runtime.consumer import BatchDeliveryConsumer, BatchTransport

TP0 = TP("item-events", 0)
TP1 = TP("item-events", 1)
CHANGELOG = TP("karrot-streams-items-changelog", 0)


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def fetch(**runs: tuple[TP, range]) -> dict[TP, list[Record]]:
    return {tp: [Record(o) for o in offsets] for tp, offsets in runs.values()}


class Script:
    """Fetch results in order (a callable is something happening between two fetches); what
    the loop delivered, per partition and offsets, and when it sought."""

    def __init__(self, consumer: BatchDeliveryConsumer, steps: list[Any]) -> None:
        self.consumer = consumer
        self.steps = steps
        self.log: list[str] = []
        self.seek_errors: list[BaseException] = []

    async def next_records(
        self,
        timeout: float,  # noqa: ASYNC109  Faust's signature
    ) -> tuple[dict[TP, list[Any]] | None, set[TP]]:
        if not self.steps:
            self.consumer._stopped.set()
            return None, set()
        step = self.steps.pop(0)
        if callable(step):
            step()
            return None, set()
        return step, set(self.consumer._get_active_partitions()) | set(step)

    async def perform_seek(self) -> None:
        """As Faust's: the streams' read offsets back to their commits (here, 0)."""
        self.log.append("seek")
        if self.seek_errors:
            raise self.seek_errors.pop(0)
        internals.read_offset(self.consumer).update({TP0: 0, TP1: 0, CHANGELOG: None})

    async def deliver(self, tp: TP, messages: list[Any]) -> None:
        self.log.append(f"{tp.topic}[{tp.partition}] {messages[0].offset}-{messages[-1].offset}")


@pytest.fixture
async def consumer() -> AsyncIterator[BatchDeliveryConsumer]:
    app = faust.App("test-drain-loop", broker="kafka://localhost:1")
    transport = BatchTransport(app.conf.broker_consumer, app)

    async def unused(*args: Any) -> None:
        raise AssertionError("not called in these tests")

    made = transport.create_consumer(
        callback=unused, on_partitions_revoked=unused, on_partitions_assigned=unused
    )
    assert isinstance(made, BatchDeliveryConsumer)
    made._set_active_tps({TP0, TP1, CHANGELOG})
    app.flow_control.resume()  # as the worker's first assignment does
    # item-events is an agent's source (Faust commits it once acked); the changelog is not.
    internals.acked_topics(app).add(TP0.topic)
    yield made


async def scripted(consumer: BatchDeliveryConsumer, steps: list[Any]) -> Script:
    script = Script(consumer, steps)
    consumer._wait_next_records = script.next_records
    consumer.perform_seek = script.perform_seek
    consumer._deliver = script.deliver  # type: ignore[method-assign]
    consumer._to_message = lambda tp, record: record
    consumer.highwater = lambda tp: 0
    consumer.assignment = lambda: {TP0, TP1, CHANGELOG}
    # The seek that follows the worker's first resume, before the script starts.
    await consumer._read_again()
    script.log.clear()
    return script


class Fetcher:
    def __init__(self) -> None:
        self._stopped = asyncio.Event()


async def drain(consumer: BatchDeliveryConsumer) -> None:
    await asyncio.wait_for(consumer._drain_messages(Fetcher()), 5)


async def test_after_the_queues_are_cleared_the_next_fetch_waits_for_a_seek(
    consumer: BatchDeliveryConsumer,
) -> None:
    # 0-9 are delivered; the recovery resumes the flow (which clears the queues, 0-9 with them);
    # 10-19 were fetched from a position past what the queues lost, so the partition is read
    # again from its commit: nothing of it is delivered until the seek.
    script = await scripted(
        consumer,
        [
            fetch(a=(TP0, range(0, 10))),
            consumer.app.flow_control.resume,
            fetch(a=(TP0, range(10, 20))),
            fetch(a=(TP0, range(0, 20))),
        ],
    )
    await drain(consumer)
    assert script.log == ["item-events[0] 0-9", "seek", "item-events[0] 0-19"]


async def test_changelog_records_of_that_fetch_are_still_delivered(
    consumer: BatchDeliveryConsumer,
) -> None:
    # The seek places only the streams; a changelog's records dropped here would never come
    # back, and the table's recovery would wait for them forever.
    script = await scripted(
        consumer,
        [
            consumer.app.flow_control.resume,
            fetch(a=(TP0, range(10, 20)), b=(CHANGELOG, range(500, 510))),
            fetch(a=(TP0, range(0, 20)), b=(CHANGELOG, range(510, 511))),
        ],
    )
    await drain(consumer)
    assert script.log == [
        "seek",
        "karrot-streams-items-changelog[0] 500-509",
        "item-events[0] 0-19",
        "karrot-streams-items-changelog[0] 510-510",
    ]


async def test_a_clear_on_revoke_drops_pending_and_puts_held_partitions_back(
    consumer: BatchDeliveryConsumer,
) -> None:
    # TP1's queue was full: its records wait in pending and the partition is out of the fetch.
    consumer._pending[TP1] = deque([("queue", "event")])
    consumer.on_buffer_full(TP1)
    consumer._held.add(TP1)
    assert TP1 not in consumer._get_active_partitions()
    script = await scripted(consumer, [fetch(a=(TP1, range(5, 8))), fetch(a=(TP1, range(3, 8)))])
    consumer.app.flow_control.clear()  # as Faust's revoke does
    assert consumer._pending == {}, "events of a cleared queue are read again, not let in later"
    await drain(consumer)
    assert TP1 in consumer._get_active_partitions(), "the held partition never came back"
    assert script.log == ["seek", "item-events[1] 3-7"]


async def test_a_seek_that_loses_its_partition_is_logged_and_the_loop_goes_on(
    consumer: BatchDeliveryConsumer, caplog: pytest.LogCaptureFixture
) -> None:
    script = await scripted(
        consumer,
        [
            consumer.app.flow_control.clear,
            fetch(a=(TP0, range(5, 8))),
            consumer.app.flow_control.clear,
            fetch(a=(TP0, range(3, 8))),
            fetch(a=(TP0, range(8, 9))),
        ],
    )
    script.seek_errors.append(IllegalStateError("No current assignment for partition"))
    with caplog.at_level(logging.WARNING):
        await drain(consumer)
    assert script.log == ["seek", "seek", "item-events[0] 8-8"]
    assert any("No current assignment" in r.getMessage() for r in caplog.records)


async def test_a_stopped_flow_seeks_instead_of_delivering(consumer: BatchDeliveryConsumer) -> None:
    def stop_flow() -> None:
        consumer.flow_active = False

    script = await scripted(consumer, [stop_flow, fetch(a=(TP0, range(0, 3)))])
    await drain(consumer)
    assert script.log == ["seek"]
