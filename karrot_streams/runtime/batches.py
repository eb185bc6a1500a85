"""An agent's stream taken a batch at a time, and acked a batch at a time.

``Stream.noack_take`` runs a processor, sensors and a ``sleep(0)`` per event and fills its buffer
from a second task. Here the agent's own task takes what its channel's queue holds, up to
``max_`` events, waiting at most ``within_s`` for more once it has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from faust.types import EventT

from karrot_streams.runtime import internals


async def take_batches(stream: Any, max_: int, within_s: float) -> AsyncIterator[list[Any]]:
    """Yield lists of events from ``stream``'s channel; each list is acked by the caller."""
    app = stream.app
    name = stream.channel.get_topic_name()
    # Faust's sensor hook per tracked message is skipped: the consumer records each fetched
    # partition's end offset once per fetch instead.
    unacked = app.consumer.unacked
    # As Stream.noack_take does: the iterator clone is what the conductor delivers to.
    channel = stream.channel.__aiter__()
    queue = channel.queue
    loop = asyncio.get_running_loop()
    while True:
        try:
            items = [await queue.get()]
        except StopAsyncIteration:
            return  # the stream is stopping: Faust throws this into its channel

        deadline = loop.time() + within_s
        while len(items) < max_:
            while len(items) < max_ and not queue.empty():
                items.append(queue.get_nowait())
            if len(items) >= max_:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(queue.get(), remaining))
            except (TimeoutError, StopAsyncIteration):
                break
        events = current_events(app, items)
        if not events:
            continue
        offsets: dict[Any, int] = {}
        for event in events:
            message = event.message
            if not message.tracked:
                message.tracked = True
                unacked.add(message)
            offsets[message.tp] = message.offset
        monitor = app.monitor
        internals.mark_stream_inbound(monitor, offsets)
        on_batch_in = getattr(monitor, "on_batch_in", None)
        if on_batch_in is not None:
            on_batch_in(name, offsets, len(events))
        yield events


def current_events(app: Any, items: Sequence[Any]) -> list[Any]:
    """The events of this generation; older ones are read again after the rebalance."""
    generation_id = app.consumer_generation_id
    if not app.flow_control.is_active():
        return []
    return [
        item
        for item in items
        if isinstance(item, EventT) and item.message.generation_id == generation_id
    ]


def ack_all(events: Sequence[Any]) -> None:
    """Mark a processed batch committable (Faust commits on its interval, after a flush)."""
    for event in events:
        event.ack()


def generation_of(events: Sequence[Any]) -> int | None:
    """The consumer group generation a batch was fetched in: one per batch, as
    :func:`take_batches` keeps only the current generation's events."""
    message = getattr(events[0], "message", None) if events else None  # fakes may have none
    return getattr(message, "generation_id", None)


def consumed_offsets(events: Sequence[Any]) -> dict[Any, int]:
    """Per source partition, the last offset of a batch (what its acks make committable)."""
    last: dict[Any, int] = {}
    for event in events:
        message: Any = getattr(event, "message", None)
        tp = getattr(message, "tp", None)  # fakes may have neither
        if tp is not None:
            last[tp] = max(message.offset, last.get(tp, -1))
    return last
