"""Read topics as a downstream consumer does: librdkafka (confluent-kafka), ``read_committed``.

Independent of the worker's client (aiokafka): what an aborted transaction wrote is never seen,
so the copies counted here are the ones a real consumer of ``enriched.*`` and ``dlq.*`` gets.
Each partition is read from its beginning to its last stable offset (librdkafka reports the
partition's end there under ``read_committed``): records of a transaction still open are not
counted yet.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from tests.support.kafka import Consumed


def _read(bootstrap: str, topics: Sequence[str], timeout_s: float) -> list[Consumed]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Never joins nor commits (assign only); librdkafka wants a group id all the same.
            "group.id": f"karrot-faults-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        tps = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in topics
            if topic in metadata.topics
            for partition in sorted(metadata.topics[topic].partitions)
        ]
        if not tps:
            return []
        consumer.assign(tps)
        remaining = {(tp.topic, tp.partition) for tp in tps}
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read_committed: no end reached on {sorted(remaining)}")
            for message in consumer.consume(10_000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard((message.topic(), message.partition()))
                        continue
                    raise KafkaException(error)
                out.append(
                    Consumed(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                        message.key(),
                        message.value(),
                        tuple((k, v or b"") for k, v in message.headers() or ()),
                    )
                )
        return out
    finally:
        consumer.close()


async def read_committed(
    bootstrap: str, topics: Sequence[str], *, timeout_s: float = 120.0
) -> list[Consumed]:
    """Every committed record of ``topics``, up to each partition's last stable offset."""
    return await asyncio.to_thread(_read, bootstrap, list(topics), timeout_s)
