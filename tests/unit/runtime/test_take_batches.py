"""take_batches: a stream's channel taken up to ``max_`` events at a time, waiting at most
``within_s`` for more once it has one; events of an older generation or a paused flow dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.events import Event
from faust.types import TP, Message

from karrot_streams.runtime.batches import ack_all, take_batches


class ChannelQueue:
    """The channel's queue; once stopped, every wait on it ends as Faust ends a stream's."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.stopped = asyncio.Event()

    def put(self, item: Any) -> None:
        self.queue.put_nowait(item)

    def stop(self) -> None:
        self.stopped.set()

    async def get(self) -> Any:
        if not self.queue.empty():
            return self.queue.get_nowait()
        getting = asyncio.ensure_future(self.queue.get())
        stopping = asyncio.ensure_future(self.stopped.wait())
        try:
            done, _ = await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            getting.cancel()
            stopping.cancel()
        if getting in done and not getting.cancelled():
            return getting.result()
        raise StopAsyncIteration

    def get_nowait(self) -> Any:
        return self.queue.get_nowait()

    def empty(self) -> bool:
        return self.queue.empty()


class FakeFlowControl:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


class FakeMonitor:
    def __init__(self) -> None:
        self.stream_inbound_time: dict[TP, float] = {}
        self.batches: list[tuple[str, dict[TP, int], int]] = []

    def on_batch_in(self, name: str, offsets: dict[TP, int], n: int) -> None:
        self.batches.append((name, dict(offsets), n))


class FakeConsumer:
    def __init__(self) -> None:
        self.unacked: set[Message] = set()


class FakeApp:
    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.consumer_generation_id = 3
        self.flow_control = FakeFlowControl()
        self.monitor = FakeMonitor()


class FakeChannel:
    def __init__(self, queue: ChannelQueue) -> None:
        self.queue = queue

    def get_topic_name(self) -> str:
        return "item-events"

    def __aiter__(self) -> FakeChannel:
        return self


class FakeStream:
    def __init__(self) -> None:
        self.app = FakeApp()
        self.queue = ChannelQueue()
        self.channel = FakeChannel(self.queue)


def event(app: Any, offset: int, *, partition: int = 0, generation: int = 3) -> Event:
    message = Message(
        "item-events",
        partition,
        offset,
        0.0,
        0,
        None,
        b"k",
        b"v",
        None,
        tp=TP("item-events", partition),
        generation_id=generation,
    )
    message.tracked = False  # as the consumer hands a fetched message over
    return Event(app, b"k", b"v", None, message)


def offsets(batch: list[Any]) -> list[int]:
    return [e.message.offset for e in batch]


async def collect(stream: FakeStream, max_: int, within_s: float) -> list[list[int]]:
    return [offsets(batch) async for batch in take_batches(stream, max_, within_s)]


async def test_what_is_queued_is_taken_up_to_max_a_batch() -> None:
    stream = FakeStream()
    for n in range(7):
        stream.queue.put(event(stream.app, n))
    stream.queue.stop()

    batches = await asyncio.wait_for(collect(stream, 3, 0.0), 2)

    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    # Tracked as Faust's own stream does, so the commit waits for their acks.
    assert len(stream.app.consumer.unacked) == 7
    assert [(name, n) for name, _, n in stream.app.monitor.batches] == [
        ("item-events", 3),
        ("item-events", 3),
        ("item-events", 1),
    ]
    assert stream.app.monitor.batches[0][1] == {TP("item-events", 0): 2}  # the last offset
    assert set(stream.app.monitor.stream_inbound_time) == {TP("item-events", 0)}


async def test_a_batch_waits_within_s_for_more_then_goes() -> None:
    stream = FakeStream()
    stream.queue.put(event(stream.app, 0))

    async def later() -> None:
        await asyncio.sleep(0.01)
        stream.queue.put(event(stream.app, 1))  # within the wait: same batch
        await asyncio.sleep(0.6)
        stream.queue.put(event(stream.app, 2))  # after it: the next batch
        stream.queue.stop()

    feeder = asyncio.ensure_future(later())
    batches = await asyncio.wait_for(collect(stream, 10, 0.25), 3)
    await feeder

    assert batches == [[0, 1], [2]]


async def test_events_of_an_older_generation_or_a_paused_flow_are_dropped() -> None:
    stream = FakeStream()
    stream.queue.put(event(stream.app, 0, generation=2))  # before the rebalance: read again
    stream.queue.put(event(stream.app, 1))
    stream.queue.put("not an event")
    stream.queue.stop()

    assert await asyncio.wait_for(collect(stream, 10, 0.0), 2) == [[1]]

    paused = FakeStream()
    paused.app.flow_control.active = False
    paused.queue.put(event(paused.app, 0))
    paused.queue.stop()
    assert await asyncio.wait_for(collect(paused, 10, 0.0), 2) == []


async def test_ack_all_acks_every_event() -> None:
    acked: list[int] = []

    class Ackable:
        def __init__(self, n: int) -> None:
            self.n = n

        def ack(self) -> bool:
            acked.append(self.n)
            return True

    ack_all([Ackable(n) for n in range(3)])
    assert acked == [0, 1, 2]
