"""The four input agents: raw bytes in, one BatchHandler step per batch, manual acks after it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import faust

from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.pipeline.handler import BatchHandler, HeaderList
from karrot_streams.pipeline.messages import Incoming, normalized_headers
from karrot_streams.resources import Resources
from karrot_streams.runtime.batches import (
    ack_all,
    consumed_offsets,
    generation_of,
    take_batches,
)
from karrot_streams.runtime.producer import BatchProducer
from karrot_streams.runtime.transactions import WorkerTransactions, transactions_of

log = logging.getLogger(__name__)

#: Batches of one agent in flight: the next ones are classified and stored while the one
#: before waits for PostgreSQL or Kafka's acknowledgements.
PIPELINE_DEPTH = 3


class EmitChain:
    """Runs each batch's emit after the one before, and acks the batch when its emit is done.

    Emits stay in offset order (the aggregates' replay guard needs a partition's facts in
    order); only the preparation of the next batch overlaps them. An emit that raises is a bug:
    ``on_error`` stops the worker, and no later batch is acked.

    Under exactly-once an emit and its acks are one step of the worker's transaction: the
    commit that takes the batch's offsets also takes everything the batch produced.
    """

    def __init__(
        self,
        on_error: Callable[[BaseException], Awaitable[None]],
        transactions: WorkerTransactions | None = None,
    ) -> None:
        self._on_error = on_error
        self._transactions = transactions or WorkerTransactions(exactly_once=False)
        self._tail: asyncio.Task[None] | None = None
        self._in_flight: deque[asyncio.Task[None]] = deque()

    def then(
        self, emit: Awaitable[None], events: list[Any], *, ready: Awaitable[Any] | None = None
    ) -> None:
        """``emit`` after the emits before it; ``ready`` (what ``emit`` waits for first, the
        batch's database write) is awaited outside the transaction's step, so a commit never
        waits for PostgreSQL."""
        previous = self._tail

        async def run() -> None:
            if previous is not None:
                await previous
            try:
                if ready is not None:
                    await ready

                async def emit_and_ack() -> None:
                    await emit
                    ack_all(events)

                await self._transactions.run_step(
                    emit_and_ack,
                    generation=generation_of(events),
                    consumed=consumed_offsets(events),
                )
            except Exception as exc:
                if isinstance(emit, Coroutine):
                    emit.close()  # never started when ``ready`` failed
                await self._on_error(exc)
                raise

        task = self._tail = asyncio.ensure_future(run())
        self._in_flight.append(task)

    async def wait_below(self, depth: int) -> None:
        while self._in_flight and (self._in_flight[0].done() or len(self._in_flight) >= depth):
            await self._in_flight.popleft()


async def _emit_when_prepared(handler: BatchHandler, prepared: asyncio.Future[Any]) -> None:
    await handler.emit(await prepared)


def incoming_of(event: Any) -> Incoming:
    message = event.message
    return Incoming(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=normalized_headers(message.headers),
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )


def raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def register(app: faust.App, resources: Resources) -> list[Any]:
    settings = resources.settings

    async def send_one(
        topic: str, key: bytes | None, value: bytes | None, headers: HeaderList | None
    ) -> Any:
        return await app.producer.send(topic, key, value, None, None, headers)

    producer = BatchProducer(app, send_one)

    handler: BatchHandler | None = None

    async def get_handler() -> BatchHandler:
        nonlocal handler
        await resources.ready()
        if handler is None:
            handler = BatchHandler(
                registry=resources.registry,
                store=resources.store,
                send=producer.send_all,
                topics=resources.topics,
                enriched_writers=resources.writers,
                fee_rate=settings.fee_rate,
                retry_attempts=settings.retry_attempts,
                backoff=resources.backoff,
                health=resources.health,
                metrics=resources.metrics,
                max_message_length=settings.max_message_length,
            )
        return handler

    async def crash(exc: BaseException) -> None:
        # A bug, not a bad message: stop the worker with the batch un-acked, so a restart
        # reads it again instead of Faust acking it and moving on.
        log.error("Pipeline step failed; stopping the worker", exc_info=exc)
        await app.crash(exc)

    async def consume(stream: Any) -> None:
        handler = await get_handler()
        emits = EmitChain(crash, transactions_of(app))
        async for events in take_batches(stream, settings.batch_max, settings.batch_within_s):
            await emits.wait_below(PIPELINE_DEPTH)
            # Prepared at once, beside the batches before it (their rows may still be on their
            # way to PostgreSQL); emitted after them. A preparation that raises stops the
            # worker through the chain, before its batch or any later one is acked.
            prepared = asyncio.ensure_future(
                handler.prepare([incoming_of(event) for event in events])
            )
            emits.then(_emit_when_prepared(handler, prepared), events, ready=prepared)

    agents = []
    names = resources.topics.names
    for name in INPUT_TOPICS:
        # The agent keeps its logical name: Faust derives nothing on the broker from it.
        source = raw_topic(app, names.physical(name), settings.topic_partitions)
        agents.append(app.agent(source, name=f"pipeline.{name}")(consume))
    return agents


def output_topics(app: faust.App, resources: Resources) -> list[Any]:
    """Declared so Faust creates them with our partition count before the first send."""
    partitions = resources.settings.topic_partitions
    topics = resources.topics
    names = [topics.names.enriched(t) for t in INPUT_TOPICS]
    names += [topics.names.dead_letter(t) for t in INPUT_TOPICS]
    names += list(topics.all())
    return [raw_topic(app, name, partitions) for name in names]
