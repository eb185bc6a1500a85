"""Records produced a batch at a time through aiokafka's batch builder.

Faust's ``send`` wraps each record in futures and callbacks; aiokafka's ``create_batch`` and
``send_batch`` take a run of records for one partition in one step. Partitions are chosen by the
same partitioner aiokafka's ``send`` uses, so keyed records land exactly where they did. Batches
go through the producer's accumulator, so Faust's flush before each offset commit covers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from karrot_streams.runtime import internals
from karrot_streams.runtime.transactions import transactions_of

Headers = list[tuple[str, bytes]]
#: (topic, key, value, headers), as the pipeline builds them.
Record = tuple[str, bytes | None, bytes | None, Headers | None]
Failed = list[tuple[Record, BaseException]]
#: (topic, partition, key, value): a record sent to the partition it names.
Placed = tuple[str, int, bytes, bytes | None]
#: Faust's per-record send: the awaitable it returns resolves once the broker has the record.
SendOne = Callable[[str, bytes | None, bytes | None, Headers | None], Awaitable[Awaitable[Any]]]

#: Records this large go through the per-record send, which checks the producer's size limit.
LARGE_RECORD_BYTES = 256 * 1024
#: Keys seen again (categories, sellers, regions) skip the pure-Python murmur2.
PARTITION_CACHE_MAX = 20_000


def _append(batch: Any, record: Record) -> bool:
    _, key, value, headers = record
    return batch.append(key=key, value=value, timestamp=None, headers=headers or []) is not None


class BatchProducer:
    """Sends records in per-partition batches and waits until the broker has all of them."""

    def __init__(self, app: Any, send_one: SendOne) -> None:
        self._app = app
        self._send_one = send_one
        self._partitions: dict[str, tuple[list[int], list[int]]] = {}
        self._cache: dict[tuple[str, bytes], int] = {}

    async def send_all(self, records: Sequence[Record]) -> Failed:
        """Send every record; the ones the broker did not take, with why.

        A partition's records keep their order: a record too large for a batch is sent on its
        own between the batches before and after it.
        """
        if self._app.in_transaction:
            return await self._send_each(records)  # transactions go through Faust's producer
        # A transaction that can no longer commit: resending would be refused forever.
        transactions_of(self._app).check_producer()
        producer = internals.aiokafka_producer(self._app)
        groups: dict[tuple[str, int], list[Record]] = {}
        unkeyed: list[Record] = []
        failed: Failed = []
        for record in records:
            topic, key, _, _ = record
            if key is None:
                unkeyed.append(record)  # any partition: Faust's send picks one
                continue
            try:
                partition = await self._partition(producer, topic, key)
            except Exception as exc:  # noqa: BLE001  metadata unavailable: a broker outage
                failed.append((record, exc))
                continue
            groups.setdefault((topic, partition), []).append(record)
        pending: list[tuple[list[Record], Awaitable[Any]]] = []
        for (topic, partition), group in groups.items():
            failed += await self._send_group(producer, topic, partition, group, pending)
        failed += await self._send_each(unkeyed, pending)
        return failed

    async def send_placed(
        self, records: Sequence[Placed], acked: dict[tuple[str, int], int]
    ) -> list[tuple[Placed, BaseException]]:
        """Send records to the partitions they name (a table's changelog: its event's
        partition); the ones the broker did not take, with why. ``acked`` gets the last offset
        the broker gave each partition.

        In batches only: the large-record path is Faust's send, which places by key.
        """
        transactions_of(self._app).check_producer()
        producer = internals.aiokafka_producer(self._app)
        groups: dict[tuple[str, int], list[Record]] = {}
        placed_of: dict[int, Placed] = {}
        for placed in records:
            topic, partition, key, value = placed
            record: Record = (topic, key, value, None)
            placed_of[id(record)] = placed
            groups.setdefault((topic, partition), []).append(record)
        pending: list[tuple[list[Record], Awaitable[Any]]] = []
        failed: Failed = []
        for (topic, partition), group in groups.items():
            failed += await self._send_group(
                producer, topic, partition, group, pending, batches_only=True
            )
        failed += await self._send_each((), pending, acked)
        return [(placed_of[id(record)], exc) for record, exc in failed]

    async def _send_group(
        self,
        producer: Any,
        topic: str,
        partition: int,
        group: list[Record],
        pending: list[tuple[list[Record], Awaitable[Any]]],
        *,
        batches_only: bool = False,
    ) -> Failed:
        # Once a record of the partition is refused, the ones after it are not sent but
        # reported with it: resent in order, behind nothing later of theirs (the aggregates'
        # replay guard takes a fact at or below its source's mark for a redelivery).
        failed: Failed = []
        batch: Any = None
        chunk: list[Record] = []

        async def flush() -> None:
            nonlocal batch, chunk
            if chunk:
                batch.close()
                if failed:
                    failed.extend((record, failed[0][1]) for record in chunk)
                else:
                    try:
                        pending.append(
                            (chunk, await producer.send_batch(batch, topic, partition=partition))
                        )
                    except Exception as exc:  # noqa: BLE001  any producer error: send again
                        failed.extend((record, exc) for record in chunk)
            batch, chunk = None, []

        for record in group:
            value = record[2]
            if not batches_only and value is not None and len(value) > LARGE_RECORD_BYTES:
                await flush()
                if failed:
                    failed.append((record, failed[0][1]))
                    continue
                try:
                    pending.append(([record], await self._send_one(*record)))
                except Exception as exc:  # noqa: BLE001  any producer error means: send again
                    failed.append((record, exc))
                continue
            if batch is None:
                batch = producer.create_batch()
            if not _append(batch, record):
                await flush()
                batch = producer.create_batch()
                if not _append(batch, record):
                    raise RuntimeError(f"A {len(value or b'')}-byte record fits no batch")
            chunk.append(record)
        await flush()
        return failed

    async def _partition(self, producer: Any, topic: str, key: bytes) -> int:
        cached = self._cache.get((topic, key))
        if cached is not None:
            return cached
        partitions = self._partitions.get(topic)
        if partitions is None:
            await internals.wait_for_topic_metadata(producer, topic)
            partitions = self._partitions[topic] = internals.topic_partitions(producer, topic)
        every, available = partitions
        partition: int = internals.partitioner(producer)(key, every, available)
        if len(self._cache) >= PARTITION_CACHE_MAX:
            self._cache.clear()
        self._cache[(topic, key)] = partition
        return partition

    async def _send_each(
        self,
        records: Sequence[Record],
        pending: list[tuple[list[Record], Awaitable[Any]]] | None = None,
        acked: dict[tuple[str, int], int] | None = None,
    ) -> Failed:
        pending = list(pending or [])
        failed: Failed = []
        for record in records:
            try:
                pending.append(([record], await self._send_one(*record)))
            except Exception as exc:  # noqa: BLE001  any producer error means: send again
                failed.append((record, exc))
        results = await asyncio.gather(*(ack for _, ack in pending), return_exceptions=True)
        for (chunk, _), result in zip(pending, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failed.extend((record, result) for record in chunk)
            elif acked is not None and result is not None:
                # A batch's metadata carries its first offset; the chunk is in offset order.
                place = (result.topic, result.partition)
                last = result.offset + len(chunk) - 1
                acked[place] = max(last, acked.get(place, last))
        return failed
