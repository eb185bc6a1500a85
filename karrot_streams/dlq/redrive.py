"""Redrive: send selected dead letters back to their original topic, each once.

Steps: look up which letters are already redriven; claim the rest (``records.py``); produce the
claimed ones, in (partition, offset) order, through the injected ``send``; once Kafka has
acknowledged them, note where each went as a *pending* target (one statement), and once their
transaction is known to have committed, confirm them (one statement). A letter that cannot be
produced has its claim released, so the next request redrives it; the request then fails with
:class:`RedriveIncomplete`.

Exactly once for a ``read_committed`` reader, however the request is interrupted: a request
that takes over a lapsed claim with a pending target first reads that offset (``check``): the
record is there with this letter's ``redriven_from``, so it committed (confirmed, reported
``ALREADY_REDRIVEN``); the last stable offset is past it and it is not there, so it aborted
(produced again); the last stable offset is not past it, so its transaction is still open (left
for a later request). ``hold`` (a transactional producer's "nothing commits before this block
ends") makes the pending target reach the database before the record can commit.

A redriven message that fails again is dead-lettered again by the pipeline, at a new offset, and
stays there until someone redrives that new letter: nothing here runs on its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Generator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from karrot_streams.dlq.dead_letters import (
    DeadLetter,
    HeaderList,
    Position,
    redrive_headers,
)
from karrot_streams.dlq.records import CLAIM_LEASE_S, RedriveRecord, Target
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.topics import TopicNames
from karrot_streams.pipeline.dead_letters import FAILED_AT

log = logging.getLogger(__name__)

RedriveStatus = Literal["REDRIVEN", "ALREADY_REDRIVEN", "WOULD_REDRIVE"]
#: Enqueue a record (topic, key, value, headers); the awaitable returned resolves to its
#: RecordMetadata once the record is committed (acknowledged, for a producer without
#: transactions). It may be a :class:`Produced`, which also tells the acknowledgement before.
Send = Callable[[str, bytes | None, bytes | None, HeaderList], Awaitable[Awaitable[Any]]]
#: What a ``read_committed`` reader finds at a pending target (``reader.check_pending``).
Verdict = Literal["COMMITTED", "ABSENT", "OPEN"]
#: Position -> (target topic, partition, offset, the letter's ``redriven_from``): the verdicts;
#: the record carries this letter's ``redriven_from`` header when it is its own.
Check = Callable[
    [Mapping[Position, tuple[str, int, int, str]]], Awaitable[Mapping[Position, Verdict]]
]
#: A block inside which nothing sent can commit (a transaction's or the worker's step).
Hold = Callable[[], AbstractAsyncContextManager[Any]]


class Produced:
    """A transactional send's result: awaiting it waits for the commit (RecordMetadata, or the
    transaction's error); ``acknowledged`` resolves to the RecordMetadata at the broker's
    acknowledgement, before the commit."""

    def __init__(self, acknowledged: Awaitable[Any], committed: Awaitable[Any]) -> None:
        self.acknowledged = asyncio.ensure_future(acknowledged)
        self.committed = asyncio.ensure_future(committed)
        for future in (self.acknowledged, self.committed):
            future.add_done_callback(_retrieve)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.committed.__await__()


class Records(Protocol):
    async def lookup(
        self, dlq_topic: str, positions: Collection[Position]
    ) -> dict[Position, RedriveRecord]: ...

    async def claim(
        self, dlq_topic: str, wanted: Mapping[Position, str], request_id: str, lease_s: float
    ) -> dict[Position, Target | None]: ...

    async def set_pending(
        self, dlq_topic: str, targets: Mapping[Position, Target], request_id: str
    ) -> None: ...

    async def mark_redriven(self, dlq_topic: str, targets: Mapping[Position, Target]) -> None: ...

    async def release(
        self, dlq_topic: str, positions: Collection[Position], request_id: str
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetterOutcome:
    letter: DeadLetter
    status: RedriveStatus
    target: Target | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.letter.partition,
            "offset": self.letter.offset,
            "exceptionClass": self.letter.exception_class,
            "failedAt": self.letter.header(FAILED_AT),
            "status": self.status,
            "target": self.target.to_json() if self.target else None,
        }


@dataclass(frozen=True, slots=True)
class RedriveReport:
    dlq_topic: str
    dry_run: bool
    outcomes: tuple[DeadLetterOutcome, ...]

    @property
    def selected(self) -> int:
        return len(self.outcomes)

    def count(self, status: RedriveStatus) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def redriven(self) -> int:
        return self.count("REDRIVEN")

    @property
    def already_redriven(self) -> int:
        return self.count("ALREADY_REDRIVEN")

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "selected": self.selected,
            "redriven": self.redriven,
            "alreadyRedriven": self.already_redriven,
            "messages": [outcome.to_json() for outcome in self.outcomes],
        }


class RedriveIncomplete(Exception):
    """Some letters could not be produced; ``report`` holds those that were, or were already."""

    def __init__(self, report: RedriveReport, failures: Mapping[Position, str]) -> None:
        super().__init__(f"{len(failures)} dead letters could not be redriven")
        self.report = report
        self.failures = dict(failures)


class Redriver:
    def __init__(
        self,
        *,
        records: Records,
        send: Send,
        check: Check | None = None,
        hold: Hold | None = None,
        topics: TopicNames | None = None,
        request_id: str | None = None,
        lease_s: float = CLAIM_LEASE_S,
        kafka_timeout_s: float = 30.0,
        record_attempts: int = 3,
        record_backoff_s: float = 0.5,
    ) -> None:
        self._records = records
        self._send = send
        #: Without it, a letter left with a pending target is not redriven (it may be committed).
        self._check = check
        self._hold = hold or _no_hold
        #: ``original_topic`` holds the logical name: the letter goes back to its physical topic.
        self._topics = topics or TopicNames()
        self.request_id = request_id or uuid.uuid4().hex
        self._lease_s = lease_s
        self._kafka_timeout_s = kafka_timeout_s
        self._record_attempts = record_attempts
        self._record_backoff_s = record_backoff_s

    async def redrive(
        self, dlq_topic: str, letters: Sequence[DeadLetter], *, dry_run: bool
    ) -> RedriveReport:
        """Redrive ``letters`` (read from ``dlq_topic``); ``dry_run`` only says what it would do.

        ``dlq_topic`` is the physical name: the records of one prefix's letters must never
        claim another's at the same offsets.
        """
        unique = sorted({letter.position: letter for letter in letters}.values(), key=_position)
        known = await self._records.lookup(dlq_topic, [x.position for x in unique])
        outcomes: dict[Position, DeadLetterOutcome] = {}
        pending: list[DeadLetter] = []
        for letter in unique:
            record = known.get(letter.position)
            if record is not None and record.redriven:
                outcomes[letter.position] = DeadLetterOutcome(
                    letter, "ALREADY_REDRIVEN", record.target
                )
            else:
                pending.append(letter)
        if dry_run:
            outcomes.update((x.position, DeadLetterOutcome(x, "WOULD_REDRIVE")) for x in pending)
            return _report(dlq_topic, True, unique, outcomes)

        wanted = {
            x.position: self._topics.physical(x.original_topic)
            for x in pending
            if x.original_topic is not None
        }
        claimed = await self._records.claim(dlq_topic, wanted, self.request_id, self._lease_s)
        # Not claimed: another request holds it (or has just redriven it).
        lost = [x for x in pending if x.position not in claimed]
        if lost:
            again = await self._records.lookup(dlq_topic, [x.position for x in lost])
            for letter in lost:
                record = again.get(letter.position)
                target = record.target if record is not None else None
                outcomes[letter.position] = DeadLetterOutcome(letter, "ALREADY_REDRIVEN", target)

        mine = [x for x in pending if x.position in claimed]
        left = {x.position: t for x in mine if (t := claimed[x.position]) is not None}
        committed, failures = await self._settle(dlq_topic, mine, left)
        chosen = [x for x in mine if x.position not in committed and x.position not in failures]
        targets, produce_failures = await self._produce(dlq_topic, chosen)
        failures.update(produce_failures)
        await self._record(dlq_topic, {**committed, **targets})
        for letter in mine:
            if letter.position in committed:
                target = committed[letter.position]
                outcomes[letter.position] = DeadLetterOutcome(letter, "ALREADY_REDRIVEN", target)
            elif letter.position in targets:
                target = targets[letter.position]
                outcomes[letter.position] = DeadLetterOutcome(letter, "REDRIVEN", target)
        report = _report(dlq_topic, False, unique, outcomes)
        if failures:
            raise RedriveIncomplete(report, failures)
        return report

    async def _settle(
        self, dlq_topic: str, letters: Sequence[DeadLetter], left: Mapping[Position, Target]
    ) -> tuple[dict[Position, Target], dict[Position, str]]:
        """Of the letters a request before left with a pending target: those committed (to
        confirm) and those to leave for later; the rest (aborted) are produced again."""
        if not left:
            return {}, {}
        failures: dict[Position, str] = {}
        addresses = {x.position: x.address for x in letters}
        asked = {p: (t.topic, t.partition, t.offset, addresses[p]) for p, t in left.items()}
        verdicts: Mapping[Position, Verdict] = {}
        if self._check is None:
            reason = "produced before, not yet known to be committed (no Kafka check here)"
            failures.update((position, reason) for position in left)
        else:
            try:
                verdicts = await self._check(asked)
            except Exception as exc:  # noqa: BLE001  Kafka unreadable: decide on a later request
                failures.update((position, _describe(exc)) for position in left)
        committed: dict[Position, Target] = {}
        for position, target in left.items():
            verdict = verdicts.get(position)
            if verdict == "COMMITTED":
                committed[position] = target
            elif verdict == "OPEN":
                failures[position] = (
                    f"produced to {target.topic}[{target.partition}]@{target.offset} in a"
                    " transaction still open: retry once it has ended"
                )
        if failures:
            # Kept with its pending target, its lease ended: the next request checks again.
            await self._records.release(dlq_topic, list(failures), self.request_id)
        return committed, failures

    async def _produce(
        self, dlq_topic: str, letters: Sequence[DeadLetter]
    ) -> tuple[dict[Position, Target], dict[Position, str]]:
        """Produce in order; note each acknowledged target (pending) before anything can
        commit; then wait for the commits (each wait at most the Kafka timeout)."""
        failures: dict[Position, str] = {}
        refused: list[Position] = []
        commits: dict[Position, asyncio.Future[Any]] = {}
        acked: dict[Position, Target] = {}
        if not letters:
            return {}, {}
        async with self._hold():
            acks = await self._enqueue(letters, commits, failures, refused)
            for letter, outcome in (await self._wait(acks)).items():
                if isinstance(outcome, Target):
                    acked[letter.position] = outcome
                elif outcome is None:
                    # It may still reach Kafka: the claim stays, and lapses after the lease.
                    failures[letter.position] = self._no_answer("acknowledgement")
                else:
                    failures[letter.position] = outcome
                    refused.append(letter.position)
            try:
                await self._retrying(self._records.set_pending, dlq_topic, acked, self.request_id)
            except TransientFailure:
                log.exception(
                    "%d dead letters of %s were produced but their targets not noted (request"
                    " %s): unless their transaction aborts, a request after the lease may"
                    " redrive them again",
                    len(acked),
                    dlq_topic,
                    self.request_id,
                )
                raise
        targets: dict[Position, Target] = {}
        waits = {
            commits[position]: letter
            for letter in letters
            if (position := letter.position) in acked
        }
        for letter, outcome in (await self._wait(waits)).items():
            if isinstance(outcome, Target):
                targets[letter.position] = acked[letter.position]
            elif outcome is None:
                failures[letter.position] = self._no_answer("commit")
            else:
                failures[letter.position] = outcome
                refused.append(letter.position)
        if refused:
            await self._records.release(dlq_topic, refused, self.request_id)
        return targets, failures

    async def _enqueue(
        self,
        letters: Sequence[DeadLetter],
        commits: dict[Position, asyncio.Future[Any]],
        failures: dict[Position, str],
        refused: list[Position],
    ) -> dict[asyncio.Future[Any], DeadLetter]:
        """Send each letter; its acknowledgement's future (each commit's into ``commits``)."""
        acks: dict[asyncio.Future[Any], DeadLetter] = {}
        for letter in letters:
            original = letter.original_topic
            assert original is not None  # noqa: S101  only letters with a target are claimed
            target = self._topics.physical(original)
            headers = redrive_headers(letter)
            try:
                sent = await self._send(target, letter.key, letter.value, headers)
            except Exception as exc:  # noqa: BLE001  any producer error: the letter stays put
                failures[letter.position] = _describe(exc)
                refused.append(letter.position)
                continue
            if isinstance(sent, Produced):
                acks[sent.acknowledged] = letter
                commits[letter.position] = sent.committed
            else:  # acknowledged is committed
                future = asyncio.ensure_future(sent)
                acks[future] = letter
                commits[letter.position] = future
        return acks

    async def _wait(
        self, futures: Mapping[asyncio.Future[Any], DeadLetter]
    ) -> dict[DeadLetter, Target | str | None]:
        """Each letter's Target, error text, or None (no answer within the Kafka timeout)."""
        found: dict[DeadLetter, Target | str | None] = {x: None for x in futures.values()}
        if not futures:
            return found
        done, _ = await asyncio.wait(futures, timeout=self._kafka_timeout_s)
        for future in done:
            letter = futures[future]
            if future.cancelled() or future.exception() is not None:
                error = future.exception() if not future.cancelled() else None
                found[letter] = _describe(error)
                continue
            metadata = future.result()
            found[letter] = Target(
                str(metadata.topic), int(metadata.partition), int(metadata.offset)
            )
        return found

    def _no_answer(self, what: str) -> str:
        return f"no {what} within {self._kafka_timeout_s:g}s"

    async def _record(self, dlq_topic: str, targets: Mapping[Position, Target]) -> None:
        """Confirm the committed letters redriven; waits out a short database outage."""
        try:
            await self._retrying(self._records.mark_redriven, dlq_topic, targets)
        except TransientFailure:
            log.exception(
                "%d dead letters of %s were redriven but not confirmed (request %s): the next"
                " request confirms them from Kafka",
                len(targets),
                dlq_topic,
                self.request_id,
            )
            raise

    async def _retrying(self, write: Callable[..., Awaitable[None]], *args: Any) -> None:
        """One write to the records, retried over a short database outage."""
        for attempt in range(self._record_attempts):
            try:
                await write(*args)
            except TransientFailure:
                if attempt + 1 == self._record_attempts:
                    raise
                await asyncio.sleep(self._record_backoff_s * 2**attempt)
                continue
            return


@asynccontextmanager
async def _no_hold() -> AsyncIterator[None]:
    yield


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's error seen: a letter that failed early is never waited for."""
    if not future.cancelled():
        future.exception()


def _position(letter: DeadLetter) -> Position:
    return letter.position


def _report(
    dlq_topic: str,
    dry_run: bool,
    letters: Sequence[DeadLetter],
    outcomes: Mapping[Position, DeadLetterOutcome],
) -> RedriveReport:
    ordered = tuple(outcomes[x.position] for x in letters if x.position in outcomes)
    return RedriveReport(dlq_topic, dry_run, ordered)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "cancelled"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
