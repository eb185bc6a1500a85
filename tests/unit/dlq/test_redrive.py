"""The redrive operation against an in-memory record table and a fake producer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from karrot_streams.dlq.dead_letters import DeadLetter, HeaderList, Position
from karrot_streams.dlq.records import RedriveRecord, Target
from karrot_streams.dlq.redrive import Produced, RedriveIncomplete, Redriver, Verdict
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.topics import TopicNames

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@dataclass
class FakeRecords:
    """dlq_redrive in memory, with the table's claim rules."""

    rows: dict[tuple[str, Position], RedriveRecord] = field(default_factory=dict)
    now: datetime = T0
    mark_failures: int = 0

    async def lookup(
        self, dlq_topic: str, positions: Collection[Position]
    ) -> dict[Position, RedriveRecord]:
        return {p: r for (t, p), r in self.rows.items() if t == dlq_topic and p in positions}

    async def claim(
        self, dlq_topic: str, wanted: Mapping[Position, str], request_id: str, lease_s: float
    ) -> dict[Position, Target | None]:
        claimed: dict[Position, Target | None] = {}
        for position in wanted:
            row = self.rows.get((dlq_topic, position))
            stale = (
                row is not None
                and not row.redriven
                and row.claimed_at < self.now - timedelta(seconds=lease_s)
            )
            if row is None or stale:
                pending = row.pending if row is not None else None
                self.rows[(dlq_topic, position)] = RedriveRecord(
                    position, request_id, self.now, None, None, pending
                )
                claimed[position] = pending
        return claimed

    async def set_pending(
        self, dlq_topic: str, targets: Mapping[Position, Target], request_id: str
    ) -> None:
        for position, target in targets.items():
            row = self.rows[(dlq_topic, position)]
            if row.request_id == request_id and not row.redriven:
                self.rows[(dlq_topic, position)] = replace(row, pending=target)

    async def mark_redriven(self, dlq_topic: str, targets: Mapping[Position, Target]) -> None:
        if self.mark_failures:
            self.mark_failures -= 1
            raise TransientFailure("PostgreSQL unavailable")
        for position, target in targets.items():
            row = self.rows[(dlq_topic, position)]
            if not row.redriven:
                self.rows[(dlq_topic, position)] = RedriveRecord(
                    position, row.request_id, row.claimed_at, target, self.now
                )

    async def release(
        self, dlq_topic: str, positions: Collection[Position], request_id: str
    ) -> None:
        for position in positions:
            row = self.rows.get((dlq_topic, position))
            if row is not None and row.request_id == request_id and not row.redriven:
                if row.pending is None:
                    del self.rows[(dlq_topic, position)]
                else:  # kept, its lease ended: the next request checks Kafka
                    self.rows[(dlq_topic, position)] = replace(
                        row, claimed_at=datetime.min.replace(tzinfo=UTC)
                    )


@dataclass
class Metadata:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeKafka:
    sent: list[tuple[str, bytes | None, bytes | None, HeaderList]] = field(default_factory=list)
    refuse: set[bytes] = field(default_factory=set)
    nack: set[bytes] = field(default_factory=set)
    hang: set[bytes] = field(default_factory=set)

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: HeaderList
    ) -> Any:
        if value in self.refuse:
            raise ConnectionError("broker gone")
        future: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        if value in self.nack:
            future.set_exception(RuntimeError("NotLeaderForPartition"))
        elif value not in self.hang:
            self.sent.append((topic, key, value, headers))
            future.set_result(Metadata(topic, 3, 1000 + len(self.sent)))
        return future


def letter(offset: int, partition: int = 0) -> DeadLetter:
    return DeadLetter(
        topic="dlq.chat-events",
        partition=partition,
        offset=offset,
        timestamp=0,
        key=f"room-{offset}".encode(),
        value=f"value-{partition}-{offset}".encode(),
        headers=(
            ("trace", b"t"),
            ("original_topic", b"chat-events"),
            ("exception_class", b"karrot_streams.events.failures.InvalidEvent"),
            ("failed_at", b"2026-11-25T09:00:00.000Z"),
            ("retry_count", b"1"),
        ),
    )


def redriver(records: FakeRecords, kafka: FakeKafka, request_id: str = "r1") -> Redriver:
    return Redriver(
        records=records,
        send=kafka.send,
        request_id=request_id,
        kafka_timeout_s=0.2,
        record_backoff_s=0.01,
    )


LETTERS = [letter(7), letter(3), letter(5, partition=1)]


async def test_dry_run_changes_nothing() -> None:
    records, kafka = FakeRecords(), FakeKafka()
    report = await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=True)
    assert report.to_json() == {
        "dryRun": True,
        "selected": 3,
        "redriven": 0,
        "alreadyRedriven": 0,
        "messages": [
            {
                "partition": p,
                "offset": o,
                "exceptionClass": "karrot_streams.events.failures.InvalidEvent",
                "failedAt": "2026-11-25T09:00:00.000Z",
                "status": "WOULD_REDRIVE",
                "target": None,
            }
            for p, o in [(0, 3), (0, 7), (1, 5)]
        ],
    }
    assert kafka.sent == []
    assert records.rows == {}


async def test_redrive_sends_each_once_in_order_and_records_it() -> None:
    records, kafka = FakeRecords(), FakeKafka()
    report = await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert (report.selected, report.redriven, report.already_redriven) == (3, 3, 0)
    assert [value for _, _, value, _ in kafka.sent] == [b"value-0-3", b"value-0-7", b"value-1-5"]
    topic, key, _, headers = kafka.sent[0]
    assert (topic, key) == ("chat-events", b"room-3")
    assert headers == [
        ("trace", b"t"),
        ("retry_count", b"1"),
        ("redrive_count", b"1"),
        ("redriven_from", b"dlq.chat-events:0:3"),
    ]
    assert [m["target"] for m in report.to_json()["messages"]] == [
        {"topic": "chat-events", "partition": 3, "offset": 1001},
        {"topic": "chat-events", "partition": 3, "offset": 1002},
        {"topic": "chat-events", "partition": 3, "offset": 1003},
    ]
    assert all(row.redriven for row in records.rows.values())

    again = await redriver(records, kafka, "r2").redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert (again.selected, again.redriven, again.already_redriven) == (3, 0, 3)
    assert len(kafka.sent) == 3
    assert [m.target for m in again.outcomes] == [m.target for m in report.outcomes]
    dry = await redriver(records, kafka, "r3").redrive("dlq.chat-events", LETTERS, dry_run=True)
    assert {m.status for m in dry.outcomes} == {"ALREADY_REDRIVEN"}


async def test_a_letter_claimed_by_a_running_request_is_left_to_it() -> None:
    records, kafka = FakeRecords(), FakeKafka()
    await records.claim("dlq.chat-events", {(0, 3): "chat-events"}, "other", 120.0)
    records.now = T0 + timedelta(seconds=60)
    report = await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert [(m.letter.offset, m.status, m.target) for m in report.outcomes] == [
        (3, "ALREADY_REDRIVEN", None),
        (7, "REDRIVEN", Target("chat-events", 3, 1001)),
        (5, "REDRIVEN", Target("chat-events", 3, 1002)),
    ]
    assert records.rows[("dlq.chat-events", (0, 3))].request_id == "other"


async def test_a_claim_never_produced_is_taken_over_after_the_lease() -> None:
    records, kafka = FakeRecords(), FakeKafka()
    await records.claim("dlq.chat-events", {(0, 3): "chat-events"}, "crashed", 120.0)
    records.now = T0 + timedelta(seconds=121)
    report = await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert report.redriven == 3
    assert records.rows[("dlq.chat-events", (0, 3))].request_id == "r1"


async def test_refused_letters_are_released_for_the_next_request() -> None:
    records = FakeRecords()
    kafka = FakeKafka(refuse={b"value-0-7"}, nack={b"value-1-5"})
    with pytest.raises(RedriveIncomplete) as caught:
        await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert caught.value.report.redriven == 1
    assert caught.value.failures == {
        (0, 7): "ConnectionError: broker gone",
        (1, 5): "RuntimeError: NotLeaderForPartition",
    }
    assert set(records.rows) == {("dlq.chat-events", (0, 3))}

    kafka.refuse.clear()
    kafka.nack.clear()
    report = await redriver(records, kafka, "r2").redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert (report.redriven, report.already_redriven) == (2, 1)
    assert len(kafka.sent) == 3


async def test_an_unacknowledged_letter_keeps_its_claim() -> None:
    """It may still reach Kafka: retrying at once could send it twice."""
    records, kafka = FakeRecords(), FakeKafka(hang={b"value-0-7"})
    with pytest.raises(RedriveIncomplete) as caught:
        await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert caught.value.failures == {(0, 7): "no acknowledgement within 0.2s"}
    row = records.rows[("dlq.chat-events", (0, 7))]
    assert not row.redriven
    assert row.request_id == "r1"


async def test_recording_waits_out_a_short_database_outage() -> None:
    records, kafka = FakeRecords(mark_failures=2), FakeKafka()
    report = await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert report.redriven == 3
    assert all(row.redriven for row in records.rows.values())


async def test_recording_gives_up_after_its_attempts() -> None:
    records, kafka = FakeRecords(mark_failures=3), FakeKafka()
    with pytest.raises(TransientFailure):
        await redriver(records, kafka).redrive("dlq.chat-events", LETTERS, dry_run=False)


async def test_duplicates_in_the_input_are_one_letter() -> None:
    records, kafka = FakeRecords(), FakeKafka()
    report = await redriver(records, kafka).redrive(
        "dlq.chat-events", [letter(3), letter(3)], dry_run=False
    )
    assert report.selected == 1
    assert len(kafka.sent) == 1


async def test_nothing_selected() -> None:
    report = await redriver(FakeRecords(), FakeKafka()).redrive(
        "dlq.chat-events", [], dry_run=False
    )
    assert report.to_json() == {
        "dryRun": False,
        "selected": 0,
        "redriven": 0,
        "alreadyRedriven": 0,
        "messages": [],
    }


async def test_under_a_prefix_a_letter_goes_back_to_its_physical_topic() -> None:
    records, kafka = FakeRecords(), FakeKafka()
    names = TopicNames("bench.r1.")
    prefixed = [replace(x, topic="bench.r1.dlq.chat-events") for x in LETTERS]
    redrive = Redriver(records=records, send=kafka.send, topics=names, request_id="p1")

    report = await redrive.redrive("bench.r1.dlq.chat-events", prefixed, dry_run=False)

    assert report.redriven == 3
    # The header keeps the logical name; the record goes to the prefixed input topic.
    assert {topic for topic, _, _, _ in kafka.sent} == {"bench.r1.chat-events"}
    assert ("redriven_from", b"bench.r1.dlq.chat-events:0:3") in kafka.sent[0][3]
    # Claimed under the physical dead-letter topic: the same offsets of the unprefixed
    # dlq.chat-events are another run's letters, still to redrive.
    assert {topic for topic, _ in records.rows} == {"bench.r1.dlq.chat-events"}
    unprefixed = await redriver(records, kafka, "r2").redrive(
        "dlq.chat-events", LETTERS, dry_run=True
    )
    assert unprefixed.count("WOULD_REDRIVE") == 3


class Crashed(Exception):
    """The process died here."""


@dataclass
class Logged:
    topic: str
    offset: int
    headers: HeaderList
    state: str = "open"


@dataclass
class FakeTransactions:
    """A transactional producer: what is sent in a ``hold`` block commits (or aborts) at its end,
    when ``end`` says; ``...-then-die`` raises there, before the Redriver can confirm."""

    records: FakeRecords
    end: str = "commit"
    log: list[Logged] = field(default_factory=list)
    #: The pending targets in the records when the transaction ended.
    noted_at_end: dict[Position, Target | None] = field(default_factory=dict)
    _commit: asyncio.Future[None] | None = None

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: HeaderList
    ) -> Produced:
        assert self._commit is not None
        commit = self._commit
        self.log.append(Logged(topic, len(self.log), headers))
        ack: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        ack.set_result(Metadata(topic, 0, len(self.log) - 1))

        async def committed() -> Metadata:
            await commit
            return ack.result()

        return Produced(ack, committed())

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        commit: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit = commit
        first = len(self.log)
        yield
        self.noted_at_end = {p: r.pending for (_, p), r in self.records.rows.items()}
        if self.end.startswith("open"):
            raise Crashed
        state = "committed" if self.end.startswith("commit") else "aborted"
        for entry in self.log[first:]:
            entry.state = state
        if state == "committed":
            commit.set_result(None)
        else:
            commit.set_exception(RuntimeError("transaction aborted"))
        if self.end.endswith("then-die"):
            raise Crashed

    async def check(
        self, wanted: Mapping[Position, tuple[str, int, int, str]]
    ) -> dict[Position, Verdict]:
        found: dict[Position, Verdict] = {}
        for position, (_, _, offset, address) in wanted.items():
            entry = self.log[offset]
            mine = ("redriven_from", address.encode()) in entry.headers
            if entry.state == "open":
                found[position] = "OPEN"
            else:
                found[position] = "COMMITTED" if entry.state == "committed" and mine else "ABSENT"
        return found

    def copies(self) -> dict[bytes, int]:
        """How many committed records carry each ``redriven_from``: what a reader gets."""
        counted: dict[bytes, int] = {}
        for entry in self.log:
            if entry.state == "committed":
                address = dict(entry.headers)["redriven_from"]
                counted[address] = counted.get(address, 0) + 1
        return counted


def transactional(
    records: FakeRecords, kafka: FakeTransactions, request_id: str, *, check: bool = True
) -> Redriver:
    return Redriver(
        records=records,
        send=kafka.send,
        hold=kafka.hold,
        check=kafka.check if check else None,
        request_id=request_id,
        kafka_timeout_s=0.2,
        record_backoff_s=0.01,
    )


ONCE = {b"dlq.chat-events:0:3": 1, b"dlq.chat-events:0:7": 1, b"dlq.chat-events:1:5": 1}


async def test_targets_are_noted_before_the_commit_and_confirmed_after() -> None:
    records = FakeRecords()
    kafka = FakeTransactions(records)
    report = await transactional(records, kafka, "r1").redrive(
        "dlq.chat-events", LETTERS, dry_run=False
    )
    assert report.redriven == 3
    assert kafka.noted_at_end == {
        (0, 3): Target("chat-events", 0, 0),
        (0, 7): Target("chat-events", 0, 1),
        (1, 5): Target("chat-events", 0, 2),
    }
    assert all(row.redriven and row.pending is None for row in records.rows.values())
    assert kafka.copies() == ONCE


async def test_a_request_that_died_after_the_commit_is_confirmed_not_redriven() -> None:
    records = FakeRecords()
    kafka = FakeTransactions(records, end="commit-then-die")
    with pytest.raises(Crashed):
        await transactional(records, kafka, "r1").redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert not any(row.redriven for row in records.rows.values())

    # Within the lease the claims are left alone (their owner may be alive).
    kafka.end = "commit"
    early = await transactional(records, kafka, "r2").redrive(
        "dlq.chat-events", LETTERS, dry_run=False
    )
    assert (early.redriven, early.already_redriven) == (0, 3)

    records.now = T0 + timedelta(seconds=121)
    report = await transactional(records, kafka, "r3").redrive(
        "dlq.chat-events", LETTERS, dry_run=False
    )
    assert [(m.status, m.target) for m in report.outcomes] == [
        ("ALREADY_REDRIVEN", Target("chat-events", 0, 0)),
        ("ALREADY_REDRIVEN", Target("chat-events", 0, 1)),
        ("ALREADY_REDRIVEN", Target("chat-events", 0, 2)),
    ]
    assert all(row.redriven for row in records.rows.values())
    assert kafka.copies() == ONCE


async def test_a_request_that_died_after_an_abort_is_redriven_again() -> None:
    records = FakeRecords()
    kafka = FakeTransactions(records, end="abort-then-die")
    with pytest.raises(Crashed):
        await transactional(records, kafka, "r1").redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert kafka.copies() == {}

    kafka.end = "commit"
    records.now = T0 + timedelta(seconds=121)
    report = await transactional(records, kafka, "r2").redrive(
        "dlq.chat-events", LETTERS, dry_run=False
    )
    assert report.redriven == 3
    assert [m.target for m in report.outcomes] == [
        Target("chat-events", 0, 3),
        Target("chat-events", 0, 4),
        Target("chat-events", 0, 5),
    ]
    assert kafka.copies() == ONCE


async def test_a_transaction_still_open_leaves_the_letter_for_later() -> None:
    records = FakeRecords()
    kafka = FakeTransactions(records, end="open-then-die")
    with pytest.raises(Crashed):
        await transactional(records, kafka, "r1").redrive(
            "dlq.chat-events", [letter(3)], dry_run=False
        )

    records.now = T0 + timedelta(seconds=121)
    kafka.end = "commit"
    with pytest.raises(RedriveIncomplete) as caught:
        await transactional(records, kafka, "r2").redrive(
            "dlq.chat-events", [letter(3)], dry_run=False
        )
    assert caught.value.failures == {
        (0, 3): "produced to chat-events[0]@0 in a transaction still open: retry once it has ended"
    }
    assert caught.value.report.redriven == 0
    row = records.rows[("dlq.chat-events", (0, 3))]
    assert row.pending == Target("chat-events", 0, 0)
    assert not row.redriven

    # The broker aborts it (timeout, or the producer's next run): the very next request,
    # without waiting for a lease, redrives it.
    kafka.log[0].state = "aborted"
    report = await transactional(records, kafka, "r3").redrive(
        "dlq.chat-events", [letter(3)], dry_run=False
    )
    assert report.redriven == 1
    assert kafka.copies() == {b"dlq.chat-events:0:3": 1}


async def test_an_aborted_commit_is_checked_by_the_next_request_at_once() -> None:
    records = FakeRecords()
    kafka = FakeTransactions(records, end="abort")
    with pytest.raises(RedriveIncomplete) as caught:
        await transactional(records, kafka, "r1").redrive("dlq.chat-events", LETTERS, dry_run=False)
    assert set(caught.value.failures.values()) == {"RuntimeError: transaction aborted"}
    assert all(row.pending is not None for row in records.rows.values())

    kafka.end = "commit"
    report = await transactional(records, kafka, "r2").redrive(
        "dlq.chat-events", LETTERS, dry_run=False
    )
    assert report.redriven == 3
    assert kafka.copies() == ONCE


async def test_a_pending_target_is_not_redriven_blindly() -> None:
    records = FakeRecords()
    kafka = FakeTransactions(records, end="commit-then-die")
    with pytest.raises(Crashed):
        await transactional(records, kafka, "r1").redrive(
            "dlq.chat-events", [letter(3)], dry_run=False
        )
    records.now = T0 + timedelta(seconds=121)
    kafka.end = "commit"

    with pytest.raises(RedriveIncomplete) as unchecked:
        await transactional(records, kafka, "r2", check=False).redrive(
            "dlq.chat-events", [letter(3)], dry_run=False
        )
    assert "not yet known to be committed" in unchecked.value.failures[(0, 3)]

    async def unreadable(wanted: object) -> dict[Position, Verdict]:
        raise ConnectionError("broker gone")

    broken = transactional(records, kafka, "r3")
    broken._check = unreadable
    with pytest.raises(RedriveIncomplete) as caught:
        await broken.redrive("dlq.chat-events", [letter(3)], dry_run=False)
    assert caught.value.failures == {(0, 3): "ConnectionError: broker gone"}
    assert len(kafka.log) == 1

    report = await transactional(records, kafka, "r4").redrive(
        "dlq.chat-events", [letter(3)], dry_run=False
    )
    assert report.already_redriven == 1
    assert kafka.copies() == {b"dlq.chat-events:0:3": 1}
