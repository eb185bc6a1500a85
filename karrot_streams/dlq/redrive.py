"""Redrive: send selected dead letters back to their original topic, each at most once.

Steps: look up which letters are already redriven; claim the rest (``records.py``); produce the
claimed ones, in (partition, offset) order, through the injected ``send``; record where each
went once Kafka has acknowledged it. A letter that cannot be produced has its claim released, so
the next request redrives it; the request then fails with :class:`RedriveIncomplete`.

A redriven message that fails again is dead-lettered again by the pipeline, at a new offset, and
stays there until someone redrives that new letter: nothing here runs on its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from karrot_streams.dlq.dead_letters import DeadLetter, HeaderList, Position, redrive_headers
from karrot_streams.dlq.records import CLAIM_LEASE_S, RedriveRecord, Target
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.topics import TopicNames
from karrot_streams.pipeline.dead_letters import FAILED_AT

log = logging.getLogger(__name__)

RedriveStatus = Literal["REDRIVEN", "ALREADY_REDRIVEN", "WOULD_REDRIVE"]
#: Enqueue a record (topic, key, value, headers); the awaitable returned resolves to its
#: RecordMetadata once the broker has acknowledged it.
Send = Callable[[str, bytes | None, bytes | None, HeaderList], Awaitable[Awaitable[Any]]]


class Records(Protocol):
    async def lookup(
        self, dlq_topic: str, positions: Collection[Position]
    ) -> dict[Position, RedriveRecord]: ...

    async def claim(
        self, dlq_topic: str, wanted: Mapping[Position, str], request_id: str, lease_s: float
    ) -> set[Position]: ...

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
        topics: TopicNames | None = None,
        request_id: str | None = None,
        lease_s: float = CLAIM_LEASE_S,
        kafka_timeout_s: float = 30.0,
        record_attempts: int = 3,
        record_backoff_s: float = 0.5,
    ) -> None:
        self._records = records
        self._send = send
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

        chosen = [x for x in pending if x.position in claimed]
        targets, failures = await self._produce(dlq_topic, chosen)
        await self._record(dlq_topic, targets)
        for letter in chosen:
            if letter.position in targets:
                target = targets[letter.position]
                outcomes[letter.position] = DeadLetterOutcome(letter, "REDRIVEN", target)
        report = _report(dlq_topic, False, unique, outcomes)
        if failures:
            raise RedriveIncomplete(report, failures)
        return report

    async def _produce(
        self, dlq_topic: str, letters: Sequence[DeadLetter]
    ) -> tuple[dict[Position, Target], dict[Position, str]]:
        """Produce in order, then wait for every acknowledgement (at most the Kafka timeout)."""
        failures: dict[Position, str] = {}
        refused: list[Position] = []
        acks: dict[asyncio.Future[Any], DeadLetter] = {}
        for letter in letters:
            original = letter.original_topic
            assert original is not None  # noqa: S101  only letters with a target are claimed
            target = self._topics.physical(original)
            try:
                ack = await self._send(target, letter.key, letter.value, redrive_headers(letter))
            except Exception as exc:  # noqa: BLE001  any producer error: the letter stays put
                failures[letter.position] = _describe(exc)
                refused.append(letter.position)
                continue
            acks[asyncio.ensure_future(ack)] = letter
        targets: dict[Position, Target] = {}
        if acks:
            done, not_done = await asyncio.wait(acks, timeout=self._kafka_timeout_s)
            for future in done:
                letter = acks[future]
                if future.cancelled() or future.exception() is not None:
                    error = future.exception() if not future.cancelled() else None
                    failures[letter.position] = _describe(error)
                    refused.append(letter.position)
                    continue
                metadata = future.result()
                targets[letter.position] = Target(
                    str(metadata.topic), int(metadata.partition), int(metadata.offset)
                )
            for future in not_done:
                # It may still reach Kafka: the claim stays, and lapses after the lease.
                failures[acks[future].position] = (
                    f"no acknowledgement within {self._kafka_timeout_s:g}s"
                )
        if refused:
            await self._records.release(dlq_topic, refused, self.request_id)
        return targets, failures

    async def _record(self, dlq_topic: str, targets: Mapping[Position, Target]) -> None:
        """Mark the produced letters redriven; waits out a short database outage."""
        for attempt in range(self._record_attempts):
            try:
                await self._records.mark_redriven(dlq_topic, targets)
            except TransientFailure:
                if attempt + 1 == self._record_attempts:
                    log.exception(
                        "%d dead letters of %s were redriven but not recorded (request %s)",
                        len(targets),
                        dlq_topic,
                        self.request_id,
                    )
                    raise
                await asyncio.sleep(self._record_backoff_s * 2**attempt)
                continue
            return


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
