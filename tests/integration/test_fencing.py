"""KIP-447 against the real broker: offsets committed in a transaction as a member of an old
generation are refused, the transaction aborts, and a read_committed reader never sees it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from karrot_streams.connections import as_connection
from karrot_streams.runtime import internals
from karrot_streams.runtime.transactions import TransactionFailed, WorkerTransactions
from karrot_streams.settings import Settings
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    name = f"fencing-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**as_connection(settings.kafka_bootstrap).client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def member(settings: Settings, group: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        **as_connection(settings.kafka_bootstrap).client_kwargs(),
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=2000)  # joins the group
    return consumer


async def committed_offset(settings: Settings, group: str, topic: str) -> int | None:
    probe = AIOKafkaConsumer(
        **as_connection(settings.kafka_bootstrap).client_kwargs(), group_id=group
    )
    await probe.start()
    try:
        offset: int | None = await probe.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await probe.stop()


async def test_a_member_of_an_old_generation_cannot_commit_its_transaction(
    settings: Settings, topic: str
) -> None:
    group = f"fencing-group-{uuid.uuid4().hex[:8]}"
    zombie = await member(settings, group, topic)
    producer = AIOKafkaProducer(
        **as_connection(settings.kafka_bootstrap).client_kwargs(),
        transactional_id=f"karrot-tx-fencing-{uuid.uuid4().hex[:8]}",
    )
    await producer.start()
    failures: list[TransactionFailed] = []

    async def on_failure(exc: TransactionFailed) -> None:
        failures.append(exc)

    transactions = WorkerTransactions(exactly_once=True, transactional_id="t", timeout_s=20)
    transactions.bind(lambda: producer, on_failure)
    newcomer: AIOKafkaConsumer | None = None
    try:
        # The member of the current generation commits.
        async with transactions.step():
            await (await producer.send(topic, b"committed"))
        async with transactions.exclusive():
            metadata = internals.group_metadata(zombie)
            assert metadata.generation_id > 0 and metadata.member_id
            await transactions.commit({(topic, 0): 1}, metadata)

        # Another member joins: the group moves to a new generation. The old metadata is
        # what a worker paused through the rebalance still holds.
        stale = internals.group_metadata(zombie)
        newcomer = await member(settings, group, topic)
        for _ in range(40):
            await zombie.getmany(timeout_ms=250)
            if internals.group_metadata(zombie).generation_id > stale.generation_id:
                break
        assert internals.group_metadata(zombie).generation_id > stale.generation_id

        async with transactions.step():
            await (await producer.send(topic, b"from the zombie"))
        async with transactions.exclusive():
            # Refused by the group: aborted, and the worker goes on (it joins again).
            assert await transactions.commit({(topic, 0): 2}, stale) is False
        assert failures == [] and transactions.aborts == 1

        # As a member of the new generation it commits again, with the same producer.
        async with transactions.step():
            await (await producer.send(topic, b"after joining again"))
        async with transactions.exclusive():
            assert await transactions.commit({(topic, 0): 4}, internals.group_metadata(zombie))
        assert failures == []
    finally:
        await producer.stop()
        if newcomer is not None:
            await newcomer.stop()
        await zombie.stop()

    values = [record.value for record in await read_all(settings.kafka_bootstrap, topic)]
    assert values == [b"committed", b"after joining again"]
    assert await committed_offset(settings, group, topic) == 4
    await asyncio.sleep(0)


async def test_a_new_owner_waits_for_the_offsets_of_an_open_transaction(
    settings: Settings, topic: str
) -> None:
    """OffsetFetch with ``require_stable``: the offsets a transaction is about to commit are
    not answered as the old ones while it is open (the new owner would produce again what the
    transaction commits)."""
    group = f"stable-group-{uuid.uuid4().hex[:8]}"
    owner = await member(settings, group, topic)
    internals.fetch_stable_offsets(owner)
    producer = AIOKafkaProducer(
        **as_connection(settings.kafka_bootstrap).client_kwargs(),
        transactional_id=f"karrot-tx-stable-{uuid.uuid4().hex[:8]}",
    )
    await producer.start()
    partition = TopicPartition(topic, 0)
    try:
        await producer.begin_transaction()
        await internals.send_offsets_to_transaction(
            producer, {(topic, 0): 7}, internals.group_metadata(owner)
        )
        fetching = asyncio.ensure_future(owner._coordinator.fetch_committed_offsets([partition]))
        await asyncio.sleep(2.0)
        assert not fetching.done(), "answered while the transaction with offsets is open"
        await producer.commit_transaction()
        fetched = await asyncio.wait_for(fetching, 10)
        assert fetched[partition].offset == 7
    finally:
        await producer.stop()
        await owner.stop()


async def test_a_frozen_owner_of_an_open_transaction_is_fenced_by_the_new_owner(
    settings: Settings, topic: str
) -> None:
    """A worker frozen between its offsets and its EndTxn holds the partition's offsets in an
    open transaction; waking, it would end it, after the new owner gave up waiting and read the
    older offsets (its records twice). The new owner fences it by the transactional id its
    earlier commits carry: the transaction aborts, and its EndTxn is refused."""
    group = f"frozen-group-{uuid.uuid4().hex[:8]}"
    owner = await member(settings, group, topic)
    frozen_id = f"karrot-tx-frozen-{uuid.uuid4().hex[:8]}"
    frozen = AIOKafkaProducer(
        **as_connection(settings.kafka_bootstrap).client_kwargs(), transactional_id=frozen_id
    )
    await frozen.start()
    fenced: list[str] = []

    async def fence(transactional_id: str) -> None:
        fenced.append(transactional_id)
        producer = AIOKafkaProducer(
            **as_connection(settings.kafka_bootstrap).client_kwargs(),
            transactional_id=transactional_id,
        )
        await producer.start()
        await producer.stop()

    partition = TopicPartition(topic, 0)
    try:
        group_now = internals.group_metadata(owner)
        await frozen.begin_transaction()
        await (await frozen.send(topic, b"committed"))
        await internals.send_offsets_to_transaction(frozen, {(topic, 0): 1}, group_now)
        await frozen.commit_transaction()
        # The next transaction holds offsets and is never ended: the producer is frozen.
        await frozen.begin_transaction()
        await (await frozen.send(topic, b"from the frozen worker"))
        await internals.send_offsets_to_transaction(frozen, {(topic, 0): 2}, group_now)

        internals.fetch_stable_offsets(owner, wait_s=1.0, fence=fence, own_id="karrot-tx-me")
        fetched = await asyncio.wait_for(
            owner._coordinator.fetch_committed_offsets([partition]), 20
        )
        assert fenced == [frozen_id]
        # The frozen transaction aborted: the offsets before it, stable.
        assert fetched[partition].offset == 1
        with pytest.raises(Exception, match=r"(?i)fenced|epoch"):
            await frozen.commit_transaction()
    finally:
        await frozen.stop()
        await owner.stop()
    values = [record.value for record in await read_all(settings.kafka_bootstrap, topic)]
    assert values == [b"committed"]
    assert await committed_offset(settings, group, topic) == 1
