"""The worker's transaction: steps and commits take turns; a failure ends the run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka.producer.transaction_manager import TransactionState

from karrot_streams.runtime import internals
from karrot_streams.runtime.kip447 import GroupMetadata
from karrot_streams.runtime.transactions import TransactionFailed, WorkerTransactions

GROUP = GroupMetadata("app", 3, "member-1")


class FakeTxnManager:
    def __init__(self) -> None:
        self.state = TransactionState.READY
        self._transaction_waiter: asyncio.Future[None] | None = None


class FakeProducer:
    """What WorkerTransactions asks of aiokafka's transactional producer, with a journal."""

    def __init__(self, *, commit_error: BaseException | None = None) -> None:
        self._txn_manager = FakeTxnManager()
        self.journal: list[Any] = []
        self.commit_error = commit_error

    async def begin_transaction(self) -> None:
        self._txn_manager.state = TransactionState.IN_TRANSACTION
        self.journal.append("begin")

    async def commit_transaction(self) -> None:
        await asyncio.sleep(0)
        if self.commit_error is not None:
            self._txn_manager.state = TransactionState.ABORTABLE_ERROR
            raise self.commit_error
        self._txn_manager.state = TransactionState.READY
        self.journal.append("commit")

    async def abort_transaction(self) -> None:
        self._txn_manager.state = TransactionState.READY
        self.journal.append("abort")


@pytest.fixture(autouse=True)
def offsets_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    async def send_offsets(producer: Any, offsets: Mapping[Any, int], group: Any) -> None:
        producer.journal.append(("offsets", dict(offsets), group.generation_id))

    monkeypatch.setattr(internals, "send_offsets_to_transaction", send_offsets)


def transactions(producer: FakeProducer, failures: list[BaseException]) -> WorkerTransactions:
    async def on_failure(exc: TransactionFailed) -> None:
        failures.append(exc)

    txns = WorkerTransactions(exactly_once=True, transactional_id="karrot-tx-t", timeout_s=5)
    txns.bind(lambda: producer, on_failure)
    return txns


async def test_a_commit_waits_for_the_step_inside_and_lets_none_in() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    step_may_end = asyncio.Event()

    async def step(name: str, wait: asyncio.Event | None = None) -> None:
        async with txns.step():
            producer.journal.append(f"{name} in")
            if wait is not None:
                await wait.wait()
            producer.journal.append(f"{name} out")

    async def commit() -> None:
        async with txns.exclusive():
            await txns.commit({("in", 0): 10}, GROUP)

    first = asyncio.ensure_future(step("a", step_may_end))
    await asyncio.sleep(0.01)
    committing = asyncio.ensure_future(commit())
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(step("b"))
    await asyncio.sleep(0.01)
    assert producer.journal == ["begin", "a in"]  # the commit waits; b waits for the commit
    step_may_end.set()
    await asyncio.gather(first, committing, second)
    assert producer.journal == [
        "begin",
        "a in",
        "a out",
        ("offsets", {("in", 0): 10}, 3),
        "commit",
        "begin",
        "b in",
        "b out",
    ]
    assert txns.open and not failures


async def test_a_send_inside_a_step_does_not_wait_for_the_commit_at_the_gate() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    inner_may_start = asyncio.Event()

    async def step_with_nested_send() -> None:
        async with txns.step():
            await inner_may_start.wait()
            async with txns.step() as opened:  # Faust's send, made inside the step
                assert opened is not None

    async def commit() -> None:
        async with txns.exclusive():
            await txns.commit({}, None)

    outer = asyncio.ensure_future(step_with_nested_send())
    await asyncio.sleep(0.01)
    committing = asyncio.ensure_future(commit())
    await asyncio.sleep(0.01)
    inner_may_start.set()
    await asyncio.wait_for(asyncio.gather(outer, committing), 2)
    assert producer.journal == ["begin", "commit"]


async def test_produce_answers_once_the_transaction_committed() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)

    async def send() -> asyncio.Future[str]:
        acked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        acked.set_result("offset 41")
        return acked

    answer = await txns.produce(send)
    await asyncio.sleep(0.01)
    assert not asyncio.ensure_future(answer).done()  # acknowledged, not yet committed
    async with txns.exclusive():
        await txns.commit({}, None)
    assert await answer == "offset 41"


async def test_a_failed_commit_aborts_stops_the_worker_and_refuses_later_steps() -> None:
    producer = FakeProducer(commit_error=RuntimeError("ILLEGAL_GENERATION"))
    failures: list[BaseException] = []
    txns = transactions(producer, failures)

    async def send() -> asyncio.Future[None]:
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked

    answer = await txns.produce(send)
    with pytest.raises(TransactionFailed):
        async with txns.exclusive():
            await txns.commit({("in", 1): 5}, GROUP)
    assert producer.journal[-1] == "abort"
    assert len(failures) == 1
    with pytest.raises(TransactionFailed):
        await answer  # a published event whose transaction aborted is not answered 201
    with pytest.raises(TransactionFailed):
        async with txns.step():
            pass
    assert txns.failed is not None


async def test_a_producer_in_error_is_reported_before_a_send() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    async with txns.step():
        txns.check_producer()
        producer._txn_manager.state = TransactionState.ABORTABLE_ERROR
        with pytest.raises(TransactionFailed):
            txns.check_producer()


async def test_at_least_once_has_no_gate_and_no_transaction() -> None:
    txns = WorkerTransactions(exactly_once=False)
    async with txns.step() as opened:
        assert opened is None
    async with txns.exclusive():
        assert not await txns.commit({}, None)

    async def send() -> asyncio.Future[int]:
        acked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        acked.set_result(7)
        return acked

    assert await (await txns.produce(send)) == 7
    assert txns.failed is None
    assert not txns.open


async def test_a_step_that_raised_spoils_the_transaction() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    with pytest.raises(RuntimeError):
        async with txns.step():
            raise RuntimeError("a bug after half the records were sent")
    with pytest.raises(TransactionFailed, match="A step failed"):
        async with txns.exclusive():
            await txns.commit({("in", 0): 3}, GROUP)
    assert "commit" not in producer.journal and producer.journal[-1] == "abort"
    assert len(failures) == 1


async def test_a_send_that_raised_does_not_spoil_it() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)

    async def refused() -> asyncio.Future[None]:
        raise ConnectionError("not enqueued")

    with pytest.raises(ConnectionError):
        await txns.produce(refused)
    async with txns.exclusive():
        await txns.commit({("in", 0): 3}, GROUP)
    assert producer.journal[-1] == "commit" and not failures


async def test_a_cancelled_caller_does_not_cut_a_step_short() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    acked = asyncio.Event()
    may_finish = asyncio.Event()

    async def body() -> None:
        await may_finish.wait()
        acked.set()

    caller = asyncio.ensure_future(txns.run_step(body))
    await asyncio.sleep(0.01)
    caller.cancel()  # Faust stopping the agent
    await asyncio.sleep(0.01)
    may_finish.set()
    await asyncio.wait_for(acked.wait(), 1)
    async with txns.exclusive():
        await txns.commit({("in", 0): 3}, GROUP)
    assert producer.journal[-1] == "commit" and not failures


async def test_after_commit_actions_run_at_the_commit_and_are_dropped_on_abort() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    persisted: list[int] = []
    async with txns.step():
        txns.after_commit(("changelog", "t", 0), lambda: persisted.append(5))
        txns.after_commit(("changelog", "t", 0), lambda: persisted.append(9))  # the later wins
    assert persisted == []
    async with txns.exclusive():
        await txns.commit({("in", 0): 3}, GROUP)
    assert persisted == [9]

    spoiled = transactions(FakeProducer(commit_error=RuntimeError("fenced")), failures)
    async with spoiled.step():
        spoiled.after_commit(("changelog", "t", 0), lambda: persisted.append(12))
    with pytest.raises(TransactionFailed):
        async with spoiled.exclusive():
            await spoiled.commit({("in", 0): 4}, GROUP)
    assert persisted == [9]


async def test_stream_steps_commit_only_in_the_generation_they_were_fetched_in() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    async with txns.step(generation=3):
        pass
    async with txns.exclusive():
        assert await txns.commit({"tp": 10}, GROUP)  # GROUP is at generation 3
    # A zombie: a step of generation 3 runs on after the member lost its membership and
    # joined again (generation 5): its records may have been processed by their new owner.
    async with txns.step(generation=3):
        pass
    async with txns.exclusive():
        with pytest.raises(TransactionFailed, match=r"generation \[3\].*now at 5"):
            await txns.commit({"tp": 20}, GroupMetadata("app", 5, "member-2"))
    assert producer.journal == ["begin", ("offsets", {"tp": 10}, 3), "commit", "begin", "abort"]
    assert len(failures) == 1


async def test_a_commit_without_offsets_checks_the_generation_too() -> None:
    """The revoke of a member that lost its membership has no assignment left to commit: the
    open transaction must not commit its stream steps' records without their offsets."""
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    async with txns.step(generation=2):
        pass
    async with txns.exclusive():
        with pytest.raises(TransactionFailed):
            await txns.commit({}, GroupMetadata("app", -1, ""))
    assert producer.journal == ["begin", "abort"]
    # A published event's step (no generation) commits in any generation.
    producer2, failures2 = FakeProducer(), list[BaseException]()
    txns2 = transactions(producer2, failures2)
    async with txns2.step():
        pass
    async with txns2.exclusive():
        await txns2.commit({}, GroupMetadata("app", -1, ""))
    assert producer2.journal == ["begin", "commit"] and not failures2


async def test_what_waits_for_the_commit_is_done_or_undone_with_the_transaction() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    done: list[str] = []
    async with txns.step():
        txns.after_commit("a", lambda: done.append("a committed"), lambda: done.append("a undone"))
    async with txns.exclusive():
        await txns.commit({}, None)
    assert done == ["a committed"]
    async with txns.step():
        txns.after_commit("b", lambda: done.append("b committed"), lambda: done.append("b undone"))
    await txns.fail(TransactionFailed("fenced"))
    assert done == ["a committed", "b undone"]


async def test_an_action_after_the_commit_that_fails_stops_the_worker_after_the_others_ran() -> (
    None
):
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    done: list[str] = []

    def broken() -> None:
        raise OSError("disk full")

    async with txns.step() as opened:
        txns.after_commit("a", broken)
        txns.after_commit("b", lambda: done.append("b committed"))
    with pytest.raises(TransactionFailed):
        async with txns.exclusive():
            await txns.commit({}, None)
    assert done == ["b committed"]
    assert opened is not None and opened.result() is None  # the records did commit
    assert len(failures) == 1


async def test_a_commit_that_leaves_out_a_steps_acked_offsets_aborts_in_a_rebalance() -> None:
    """A soak run's survivor committed, during a rebalance, a transaction holding the outputs
    of records whose offsets were not in it: their next owner produced them again (415
    duplicates). Such a transaction is aborted instead; in a rebalance the worker goes on, its
    partitions read again from the committed offsets."""
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    rebalancing = [True]
    txns.bind(lambda: producer, txns._on_failure, rebalancing=lambda: rebalancing[0])  # type: ignore[arg-type]
    dropped: list[str] = []
    async with txns.step(generation=3, consumed={("items", 0): 6436, ("items", 1): 90}):
        txns.after_commit(
            "store", lambda: dropped.append("written"), lambda: dropped.append("dropped")
        )
    # Partition 0's acks did not make it into the commit; partition 1's did.
    assert await txns.commit({("items", 1): 91}, GROUP) is False
    assert producer.journal == ["begin", "abort"]
    assert dropped == ["dropped"]
    assert failures == [] and txns.failed is None and txns.aborts == 1
    # The worker goes on: the next step opens a new transaction, which commits.
    async with txns.step(generation=3, consumed={("items", 1): 95}):
        pass
    assert await txns.commit({("items", 1): 96}, GROUP) is True
    assert producer.journal[-3:] == ["begin", ("offsets", {("items", 1): 96}, 3), "commit"]


async def test_outside_a_rebalance_the_worker_stops_rather_than_commit_without_offsets() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    async with txns.step(generation=3, consumed={("items", 0): 10}):
        pass
    # Faust had no offset to commit (the fallback commit of records without offsets).
    with pytest.raises(TransactionFailed, match="would not take"):
        await txns.commit({}, GROUP)
    assert producer.journal == ["begin", "abort"]
    assert len(failures) == 1


async def test_offsets_past_every_acked_record_commit() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    async with txns.step(generation=3, consumed={("items", 0): 10}):
        pass
    async with txns.step(generation=3, consumed={("items", 0): 20, ("users", 2): 4}):
        pass
    offsets = {("items", 0): 21, ("users", 2): 5}
    assert await txns.commit(offsets, GROUP) is True
    assert producer.journal == ["begin", ("offsets", offsets, 3), "commit"]
    # A step that raised consumed nothing it acked.
    with pytest.raises(RuntimeError):
        async with txns.step(generation=3, consumed={("items", 0): 30}, spoils=False):
            raise RuntimeError("send refused")
    assert txns._uncovered({}) == {}


async def test_in_a_rebalance_a_stale_generation_aborts_and_the_worker_goes_on() -> None:
    """A worker starved past its session (a CI run at load 21: 'Thread keepalive is not
    responding') joins again as a new member: its open transaction of the old generation is
    aborted in the rebalance, as Kafka Streams closes a migrated task, instead of the worker
    stopping; the records are read again from the committed offsets."""
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    txns.bind(lambda: producer, txns._on_failure, rebalancing=lambda: True)  # type: ignore[arg-type]
    async with txns.step(generation=3, consumed={"tp": 19}):
        pass
    async with txns.exclusive():
        assert await txns.commit({"tp": 20}, GroupMetadata("app", 5, "member-2")) is False
    assert producer.journal == ["begin", "abort"]
    assert failures == [] and txns.failed is None
    # A refusal that is not abortable still stops it, rebalance or not.
    assert await txns.give_up(TransactionFailed("fenced")) is False
    assert len(failures) == 1


async def test_giving_up_with_no_transaction_open_aborts_nothing_in_the_producer() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)
    txns.bind(lambda: producer, txns._on_failure, rebalancing=lambda: True)  # type: ignore[arg-type]
    assert await txns.give_up(TransactionFailed("membership lost", abortable=True)) is True
    assert producer.journal == [] and failures == []


async def test_offsets_the_group_refuses_abort_and_the_worker_goes_on_outside_a_rebalance() -> None:
    """A worker starved past its session learns it from the group's refusal of its offsets,
    before its consumer sees the rebalance: no commit of that member can succeed any more, so
    the transaction aborts and the worker goes on to join again (Kafka Streams' TaskMigrated)
    rather than stopping, as the two-workers fault scenario once saw in CI."""
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)  # not rebalancing
    dropped: list[str] = []
    refused = internals.GroupRefusedOffsets("ILLEGAL_GENERATION")

    async def refuse(producer: Any, offsets: Mapping[Any, int], group: Any) -> None:
        raise refused

    async with txns.step(generation=3, consumed={"tp": 19}):
        txns.after_commit("store", lambda: None, on_abort=lambda: dropped.append("store"))
    async with txns.exclusive():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(internals, "send_offsets_to_transaction", refuse)
            assert await txns.commit({"tp": 20}, GROUP) is False
    assert producer.journal == ["begin", "abort"]
    assert dropped == ["store"]
    assert failures == [] and txns.failed is None and txns.aborts == 1
    # The next transaction commits as any other.
    async with txns.step(generation=4, consumed={"tp": 25}):
        pass
    async with txns.exclusive():
        assert await txns.commit({"tp": 26}, GroupMetadata("app", 4, "member-1")) is True
    assert producer.journal[-2:] == [("offsets", {"tp": 26}, 4), "commit"]


async def test_a_commit_failure_that_is_not_the_groups_refusal_still_stops_the_worker() -> None:
    producer, failures = FakeProducer(), list[BaseException]()
    txns = transactions(producer, failures)

    async def fenced(producer: Any, offsets: Mapping[Any, int], group: Any) -> None:
        raise RuntimeError("ProducerFenced")

    async with txns.step(generation=3, consumed={"tp": 19}):
        pass
    async with txns.exclusive():
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(internals, "send_offsets_to_transaction", fenced)
            with pytest.raises(TransactionFailed):
                await txns.commit({"tp": 20}, GROUP)
    assert len(failures) == 1 and txns.failed is not None
