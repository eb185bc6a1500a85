"""A new owner's wait for offsets held in an open transaction (OffsetFetch v7
``require_stable``, KIP-447), with a coordinator that answers from a script."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from karrot_streams.runtime import internals, kip447


async def test_the_wait_for_stable_offsets_is_counted_per_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka asks for the committed offsets of different sets of partitions in turn; a wait
    counted per set added up behind one frozen worker (four sets: 40 s, a soak run)."""
    clock = [0.0]
    monkeypatch.setattr(
        "karrot_streams.runtime.internals.time", SimpleNamespace(monotonic=lambda: clock[0])
    )
    asked: list[tuple[list[tuple[str, int]], bool]] = []

    class Coordinator:
        group_id = "g"

        async def _do_fetch_commit_offsets(self, partitions: Any) -> Any:
            raise AssertionError("replaced")

        async def _send_req(self, request: Any) -> Any:
            asked.append(
                ([(t, p) for t, ps in request._topics for p in ps], request._require_stable)
            )
            code = kip447.UNSTABLE_OFFSET_COMMIT if request._require_stable else 0
            return SimpleNamespace(
                error_code=0,
                topics=[
                    (t, [(p, 7, -1, "", code, {}) for p in ps], {}) for t, ps in request._topics
                ],
            )

    consumer = SimpleNamespace(_coordinator=Coordinator())
    internals.fetch_stable_offsets(consumer, wait_s=10)
    fetch = consumer._coordinator._do_fetch_commit_offsets
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    with pytest.raises(internals.UnstableOffsetCommit):
        await fetch([a])
    clock[0] = 6.0
    with pytest.raises(internals.UnstableOffsetCommit):
        await fetch([b])
    clock[0] = 10.5
    # a has waited 10.5 s (b 4.5): the last committed offsets are read, for both.
    fetched = await fetch([a, b])
    assert {tp: o.offset for tp, o in fetched.items()} == {a: 7, b: 7}
    assert [stable for _, stable in asked] == [True, True, False]
    # Answered: the next unstable answer starts a new wait.
    with pytest.raises(internals.UnstableOffsetCommit):
        await fetch([a])
    assert asked[-1][1] is True
