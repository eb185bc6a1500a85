"""TxnOffsetCommit v3 (KIP-447): a transaction's input offsets, fenced by the consumer group.

aiokafka 0.14.0 sends TxnOffsetCommit v0 only: no generation id and no member id, so the group
coordinator commits the offsets of any producer that holds the transactional id, including a
worker that was paused past its session timeout while another took its partitions (a zombie).
With v3 the coordinator checks the committing member's generation: a zombie's commit is refused
(``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``, ``FENCED_INSTANCE_ID``), its transaction aborts,
and what it wrote (outputs and table changelog records) stays invisible to ``read_committed``
readers. That is what lets one transactional producer per worker be safe (Kafka Streams' EOS v2).

The structures follow Kafka's ``TxnOffsetCommitRequest.json``/``TxnOffsetCommitResponse.json``
(v3 is the first flexible version: compact strings and arrays, tagged fields). Only the
protocol lives here; the hook into aiokafka's sender is in :mod:`karrot_streams.runtime.internals`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

API_KEY = 28
#: Error codes that say the committing member is not (or no longer) the group's member that
#: owns the partitions: the transaction must abort and the worker give its partitions up.
FENCING_ERRORS: Mapping[int, str] = {
    22: "ILLEGAL_GENERATION",
    25: "UNKNOWN_MEMBER_ID",
    27: "REBALANCE_IN_PROGRESS",
    82: "FENCED_INSTANCE_ID",
}


class TxnOffsetCommitResponse_v3(Response):  # type: ignore[misc]
    API_KEY = API_KEY
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "errors",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partition_errors",
                    CompactArray(
                        ("partition", Int32),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = API_KEY
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


@dataclass(frozen=True, slots=True)
class GroupMetadata:
    """The consumer's membership, as KIP-447 sends it with the transaction's offsets."""

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None


class TxnOffsetCommitRequest(Request[TxnOffsetCommitRequest_v3]):  # type: ignore[misc]
    """Only v3: without the group's generation the coordinator cannot fence a zombie, so a
    broker that lacks v3 is refused rather than sent v0 (IncompatibleBrokerVersion)."""

    API_KEY = API_KEY

    def __init__(
        self,
        *,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        group: GroupMetadata,
        offsets: Mapping[tuple[str, int], int],
    ) -> None:
        self._transactional_id = transactional_id
        self._producer_id = producer_id
        self._producer_epoch = producer_epoch
        self._group = group
        self._offsets = offsets

    def build(self, request_struct_class: type[TxnOffsetCommitRequest_v3]) -> Any:
        by_topic: dict[str, list[tuple[int, int, int, str, dict[int, bytes]]]] = defaultdict(list)
        for (topic, partition), offset in sorted(self._offsets.items()):
            # The committer's transactional id as the offset's metadata: a partition's next
            # owner that finds a transaction of it still open can fence it by that id
            # (internals.fetch_stable_offsets).
            by_topic[topic].append((partition, offset, -1, self._transactional_id, {}))
        group = self._group
        return request_struct_class(
            self._transactional_id,
            group.group_id,
            self._producer_id,
            self._producer_epoch,
            group.generation_id,
            group.member_id,
            group.group_instance_id,
            [(topic, partitions, {}) for topic, partitions in by_topic.items()],
            {},
        )


def partition_errors(response: Any) -> Iterable[tuple[str, int, int]]:
    """(topic, partition, error code) of each partition in a TxnOffsetCommit response."""
    for topic_entry in response.errors:
        topic, partitions = topic_entry[0], topic_entry[1]
        for partition_entry in partitions:
            yield topic, partition_entry[0], partition_entry[1]


# -- OffsetFetch v7: committed offsets once they are stable ---------------------------------------

OFFSET_FETCH_KEY = 9
#: The group has offsets in a transaction not yet ended for the partition (KIP-447): retry.
UNSTABLE_OFFSET_COMMIT = 88


class OffsetFetchResponse_v7(Response):  # type: ignore[misc]
    API_KEY = OFFSET_FETCH_KEY
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v7(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = OFFSET_FETCH_KEY
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                ("partitions", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class StableOffsetFetchRequest(Request[OffsetFetchRequest_v7]):  # type: ignore[misc]
    """The group's committed offsets, refused (UNSTABLE_OFFSET_COMMIT) while a transaction
    that commits offsets of those partitions is open.

    aiokafka sends OffsetFetch v0-v3, which answer the last committed offset even while a
    worker's transaction holds newer ones: a new owner then reads from before the records that
    transaction is about to commit, and produces them again (duplicates for a read_committed
    reader). Only v7 and later can ask for stable offsets.
    """

    API_KEY = OFFSET_FETCH_KEY

    def __init__(
        self, group_id: str, partitions: Iterable[tuple[str, int]], *, require_stable: bool = True
    ) -> None:
        self._group_id = group_id
        self._require_stable = require_stable
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, partition in partitions:
            by_topic[topic].append(partition)
        self._topics = sorted(by_topic.items())

    def build(self, request_struct_class: type[OffsetFetchRequest_v7]) -> Any:
        return request_struct_class(
            self._group_id,
            [(topic, partitions, {}) for topic, partitions in self._topics],
            self._require_stable,
            {},
        )


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    topic: str
    partition: int
    offset: int
    metadata: str | None
    error_code: int


def fetched_offsets(response: Any) -> Iterable[FetchedOffset]:
    for topic_entry in response.topics:
        topic = topic_entry[0]
        for entry in topic_entry[1]:
            yield FetchedOffset(topic, entry[0], entry[1], entry[3], entry[4])
