"""The same pipeline on Quix Streams: the peer that karrot-streams is compared with.

Per message: Confluent framing and fastavro decode with the writer schema (from the registry),
validation (karrot_streams.events.validation), enrichment (karrot_streams.events.enrichment),
the enriched Avro record produced to its topic, and the event-store row upserted in batches
(karrot_streams.store.event_store, flushed at each Quix checkpoint). Listings are counted and
summed by category in Quix state behind a ``group_by``. No dead-letter topic: poison is dropped.

Run as ``python -m bench.quix_peer PREFIX GROUP STATE_DIR``; it consumes ``PREFIX.<topic>`` for
each input topic, writes ``PREFIX.enriched.<topic>``, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quixstreams import Application, State, message_context
from quixstreams.models.serializers import SerializationContext, Serializer
from quixstreams.sinks import BatchingSink, SinkBatch

from karrot_streams.avro.codec import decode, encode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import kafka_connection
from karrot_streams.events.enrichment import SourcePosition, enrich
from karrot_streams.events.failures import PoisonMessage
from karrot_streams.events.types import INPUT_TOPICS, EventType, enriched_topic
from karrot_streams.events.validation import event_from_avro
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings
from karrot_streams.store.event_store import EventStore, Status, StoreRow

COMMIT_INTERVAL_S = 1.0  # Faust's broker_commit_interval in karrot-streams


@dataclass(frozen=True, slots=True)
class Processed:
    enriched: bytes
    row: StoreRow
    category: str | None
    price: int


class EnrichedBytes(Serializer):  # type: ignore[misc]  # quixstreams: not analysed
    """The enriched topic's value: the Avro bytes already encoded with the enriched writer."""

    def __call__(self, value: Processed, ctx: SerializationContext) -> bytes:
        return value.enriched


class EventStoreSink(BatchingSink):  # type: ignore[misc]  # quixstreams: not analysed
    """Upserts each checkpoint's rows, one statement per topic partition."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self._store = EventStore(dsn)

    def write(self, batch: SinkBatch) -> None:
        rows = [item.value.row for item in batch]
        self._loop.run_until_complete(self._store.upsert(rows))


class Pipeline:
    def __init__(
        self,
        topic: str,
        readers: dict[int, WriterSchema],
        writer: WriterSchema,
        fee_rate: Decimal,
    ) -> None:
        self._topic = topic
        self._readers = readers
        self._writer = writer
        self._fee_rate = fee_rate

    def __call__(self, value: bytes) -> Processed | None:
        context = message_context()
        try:
            schema_id, body = unframe(value)
            reader = self._readers.get(schema_id)
            if reader is None:
                return None
            record = decode(reader.parsed, body)
            event = event_from_avro(self._topic, reader.record_name, record)
        except PoisonMessage:
            return None
        position = SourcePosition(self._topic, context.partition, context.offset)
        enriched = enrich(event, position, datetime.now(UTC), self._fee_rate)
        row = StoreRow.of(
            event_id=event.event_id,
            aggregate_id=event.aggregate_id,
            event_type=event.event_type.value,
            data=event.to_json(),
            event_time=event.occurred_at,
            status=Status.PROCESSED,
        )
        listing = event.event_type is EventType.ITEM_CREATED
        return Processed(
            enriched=encode(self._writer.schema_id, self._writer.parsed, enriched),
            row=row,
            category=enriched["derived"]["categoryNormalized"] if listing else None,
            price=int(event.payload["price"]) if listing else 0,
        )


def count_listing(value: dict[str, Any], state: State[str, Any]) -> dict[str, Any]:
    stats = state.get("stats") or {"itemCount": 0, "totalPrice": 0}
    stats = {
        "itemCount": stats["itemCount"] + 1,
        "totalPrice": stats["totalPrice"] + value["price"],
    }
    state.set("stats", stats)
    return stats


async def _writers(settings: Settings) -> dict[str, WriterSchema]:
    resources = Resources.create(settings)
    try:
        await resources.ready()
        return dict(resources.writers)
    finally:
        await resources.close()


def build(prefix: str, group: str, state_dir: str) -> Application:
    settings = Settings()
    writers = asyncio.run(_writers(settings))
    readers = {writers[t].schema_id: writers[t] for t in INPUT_TOPICS}
    # librdkafka's form of the project's one Kafka connection (TLS/SASL as the settings say).
    connection = kafka_connection(settings).librdkafka_config()
    broker = connection.pop("bootstrap.servers")
    app = Application(
        broker_address=broker,
        consumer_extra_config=connection,
        producer_extra_config=connection,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_S,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    sink = EventStoreSink(settings.database_dsn)
    for topic in INPUT_TOPICS:
        source = app.topic(
            f"{prefix}.{topic}", key_deserializer="bytes", value_deserializer="bytes"
        )
        output = app.topic(
            f"{prefix}.{enriched_topic(topic)}",
            key_serializer="bytes",
            value_serializer=EnrichedBytes(),
        )
        pipeline = Pipeline(topic, readers, writers[enriched_topic(topic)], settings.fee_rate)
        sdf = app.dataframe(source).apply(pipeline).filter(lambda p: p is not None)
        if topic == "item-events":
            listings = sdf.filter(lambda p: p.category is not None).apply(
                lambda p: {"category": p.category, "price": p.price}
            )
            listings = listings.group_by(lambda v: v["category"], name="category")
            listings.apply(count_listing, stateful=True)
        sdf.to_topic(output)
        sdf.sink(sink)
    return app


def main() -> None:
    prefix, group, state_dir = sys.argv[1:4]
    build(prefix, group, state_dir).run()


if __name__ == "__main__":
    main()
