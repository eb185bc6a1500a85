"""TxnOffsetCommit v3 as the broker reads it: the fields KIP-447 fences with, in wire order."""

from __future__ import annotations

from io import BytesIO

import pytest
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from karrot_streams.runtime import kip447

#: Kafka's TxnOffsetCommitRequest.json at v3, written out independently of the module's schema.
V3 = Schema(
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
            ("name", CompactString("utf-8")),
            (
                "partitions",
                CompactArray(
                    ("partition_index", Int32),
                    ("committed_offset", Int64),
                    ("committed_leader_epoch", Int32),
                    ("committed_metadata", CompactString("utf-8")),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        ),
    ),
    ("tags", TaggedFields),
)


def request(instance: str | None = None) -> kip447.TxnOffsetCommitRequest:
    return kip447.TxnOffsetCommitRequest(
        transactional_id="karrot-tx-app-1",
        producer_id=4242,
        producer_epoch=3,
        group=kip447.GroupMetadata("app", 7, "member-a", instance),
        offsets={("user-events", 1): 100, ("user-events", 0): 50, ("item-events", 2): 9},
    )


def test_v3_is_the_only_version_and_is_flexible() -> None:
    struct = request().prepare({kip447.API_KEY: (0, 6)})
    assert struct.API_VERSION == 3
    assert struct.FLEXIBLE_VERSION


def test_the_request_carries_the_generation_and_member() -> None:
    struct = request("pod-0").prepare({kip447.API_KEY: (0, 5)})
    decoded = V3.decode(BytesIO(struct.encode()))
    assert decoded[:7] == ("karrot-tx-app-1", "app", 4242, 3, 7, "member-a", "pod-0")
    topics = {name: [p[:4] for p in partitions] for name, partitions, _ in decoded[7]}
    # Each offset's metadata is the committer's transactional id: what a new owner fences.
    committer = "karrot-tx-app-1"
    assert topics == {
        "item-events": [(2, 9, -1, committer)],
        "user-events": [(0, 50, -1, committer), (1, 100, -1, committer)],
    }


def test_without_static_membership_the_instance_id_is_null() -> None:
    decoded = V3.decode(BytesIO(request().prepare({kip447.API_KEY: (3, 3)}).encode()))
    assert decoded[6] is None


def test_a_broker_without_v3_is_refused_not_sent_v0() -> None:
    with pytest.raises(NotImplementedError):
        request().prepare({kip447.API_KEY: (0, 2)})


def test_response_errors_are_read_per_partition() -> None:
    body = kip447.TxnOffsetCommitResponse_v3.SCHEMA.encode(
        (0, [("user-events", [(0, 0, {}), (1, 22, {})], {})], {})
    )
    response = kip447.TxnOffsetCommitResponse_v3.decode(BytesIO(body))
    errors = list(kip447.partition_errors(response))
    assert errors == [("user-events", 0, 0), ("user-events", 1, 22)]
    assert kip447.FENCING_ERRORS[22] == "ILLEGAL_GENERATION"
