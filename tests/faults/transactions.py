"""Open transactions on a broker, through the admin protocol (what ``kafka-transactions.sh
find-hanging`` asks).

The stack fetches Kafka's jars, not its distribution: there is no ``bin/`` and no kafka-tools jar,
and neither aiokafka's nor librdkafka's admin client has these calls. So the two requests are
written here on aiokafka's protocol types, from Kafka's message definitions:
DescribeProducers v0 (API 61; every producer with state on a partition, and the first offset of
its open transaction, -1 when none) and ListTransactions v0 (API 66; the coordinator's view).

A transaction is hanging when it stays open on a partition after its coordinator should have
ended it: the check waits for the producers' transaction timeout (plus a margin), then asserts
that no partition still holds an open transaction. That is stricter than ``find-hanging`` (which
waits for ``--max-transaction-timeout``, 15 minutes by default, before it calls one hanging).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)


class DescribeProducersResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 61
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("error_code", Int16),
                        ("error_message", CompactString("utf-8")),
                        (
                            "active_producers",
                            CompactArray(
                                ("producer_id", Int64),
                                ("producer_epoch", Int32),
                                ("last_sequence", Int32),
                                ("last_timestamp", Int64),
                                ("coordinator_epoch", Int32),
                                ("current_txn_start_offset", Int64),
                                ("tags", TaggedFields),
                            ),
                        ),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeProducersRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 61
    API_VERSION = 0
    RESPONSE_TYPE = DescribeProducersResponse_v0
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


DescribeProducersStruct: TypeAlias = DescribeProducersRequest_v0


class DescribeProducersRequest(Request[DescribeProducersStruct]):  # type: ignore[misc]
    API_KEY = 61

    def __init__(self, topics: dict[str, list[int]]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[DescribeProducersStruct]) -> DescribeProducersStruct:
        return request_struct_class([(t, ps, {}) for t, ps in self._topics.items()], {})


class ListTransactionsResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 66
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("unknown_state_filters", CompactArray(CompactString("utf-8"))),
        (
            "transaction_states",
            CompactArray(
                ("transactional_id", CompactString("utf-8")),
                ("producer_id", Int64),
                ("transaction_state", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ListTransactionsRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 66
    API_VERSION = 0
    RESPONSE_TYPE = ListTransactionsResponse_v0
    SCHEMA = Schema(
        ("state_filters", CompactArray(CompactString("utf-8"))),
        ("producer_id_filters", CompactArray(Int64)),
        ("tags", TaggedFields),
    )


ListTransactionsStruct: TypeAlias = ListTransactionsRequest_v0


class ListTransactionsRequest(Request[ListTransactionsStruct]):  # type: ignore[misc]
    API_KEY = 66

    def build(self, request_struct_class: type[ListTransactionsStruct]) -> ListTransactionsStruct:
        return request_struct_class([], [], {})


@dataclass(frozen=True)
class OpenTransaction:
    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    start_offset: int
    #: Seconds since the producer last wrote to the partition.
    idle_s: float
    #: The coordinator's state of the producer's transactional id, if any coordinator knows it.
    coordinator_state: str | None = None
    transactional_id: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.topic}[{self.partition}] producer {self.producer_id}/{self.producer_epoch} "
            f"open since offset {self.start_offset}, idle {self.idle_s:.0f}s, coordinator: "
            f"{self.transactional_id or '?'} {self.coordinator_state or 'unknown'}"
        )


async def open_transactions(bootstrap: str) -> list[OpenTransaction]:
    """Every transaction open on any partition of the cluster now (internal topics included)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        by_leader: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for topic in cluster.topics(exclude_internal_topics=False):
            for partition in cluster.partitions_for_topic(topic) or ():
                leader = cluster.leader_for_partition(TopicPartition(topic, partition))
                if leader is not None and leader >= 0:
                    by_leader[leader][topic].append(partition)
        now_ms = time.time() * 1000
        found: list[OpenTransaction] = []
        for leader, topics in by_leader.items():
            answer: Any = await client.send(leader, DescribeProducersRequest(dict(topics)))
            for name, partitions, _ in answer.topics:
                for index, error, message, producers, _ in partitions:
                    if error:
                        raise RuntimeError(f"DescribeProducers {name}[{index}]: {error} {message}")
                    found += [
                        OpenTransaction(name, index, pid, epoch, start, (now_ms - last_ts) / 1000)
                        for pid, epoch, _, last_ts, _, start, _ in producers
                        if start >= 0
                    ]
        if not found:
            return []
        states: dict[int, tuple[str, str]] = {}
        for broker in cluster.brokers():
            answer = await client.send(broker.nodeId, ListTransactionsRequest())
            for tid, pid, state, _ in answer.transaction_states:
                states[pid] = (tid, state)
        return [
            OpenTransaction(
                t.topic,
                t.partition,
                t.producer_id,
                t.producer_epoch,
                t.start_offset,
                t.idle_s,
                states.get(t.producer_id, (None, None))[1],
                states.get(t.producer_id, (None, None))[0],
            )
            for t in found
        ]
    finally:
        await client.close()


async def hanging_transactions(
    bootstrap: str, *, transaction_timeout_s: float, margin_s: float = 30.0
) -> list[OpenTransaction]:
    """Transactions still open once ``transaction_timeout_s + margin_s`` have passed with no
    writer (every worker stopped): none, unless one hangs. Returns at once when none is open."""
    deadline = time.monotonic() + transaction_timeout_s + margin_s
    while True:
        still = await open_transactions(bootstrap)
        if not still or time.monotonic() > deadline:
            return still
        await asyncio.sleep(2.0)
