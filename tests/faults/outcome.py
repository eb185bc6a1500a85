"""What a fault scenario left behind, measured against the truth of what was produced.

Valid events: each once in ``enriched.<topic>`` (copies beyond the input's own copies are
duplicates), a ``PROCESSED`` row each. Poison: each once in ``dlq.<topic>`` with its bytes, key
and the contract's headers. The outputs are read back by an independent client (librdkafka,
``read_committed``: tests/support/committed.py), so an aborted transaction's records never count;
enriched events are told apart by their event id, dead letters by their bytes; missing and
duplicates are counted for each of the two. Aggregates: equal to the truth through the HTTP API.
Commits: the group's committed offsets reach the end of the input.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import decode
from karrot_streams.avro.framing import unframe
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.traffic import Record
from tests.support import api, kafka, store
from tests.support.committed import read_committed
from tests.support.truth import Truth

CONTRACT_HEADERS = (
    "original_topic",
    "original_partition",
    "original_offset",
    "exception_class",
    "exception_message",
    "failed_at",
    "retry_count",
)


@dataclass
class Outcome:
    """One row of the fault summary."""

    scenario: str
    #: The worker's KARROT_PROCESSING_GUARANTEE in this run.
    guarantee: str = "at_least_once"
    events_in: int = 0
    valid_in: int = 0
    poison_in: int = 0
    events_out: int = 0
    lost: int = 0
    duplicated: int = 0
    dead_lettered: int = 0
    #: Per output: events never seen there, and copies beyond one per input copy.
    enriched_missing: int = 0
    enriched_duplicates: int = 0
    dlq_missing: int = 0
    dlq_duplicates: int = 0
    recovery_s: float | None = None
    duration_s: float = 0.0
    duplicate_bound: int = 0
    #: An open defect that leaves duplicates in this scenario: reported, not failed.
    faults: int = 0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tagged(key: bytes | None, tag: str) -> bool:
    return key is not None and key.startswith(tag.encode())


async def _input_copies(bootstrap: str, tag: str) -> Counter[bytes | None]:
    copies: Counter[bytes | None] = Counter()
    for topic in INPUT_TOPICS:
        for message in await kafka.read_all(bootstrap, topic):
            if _tagged(message.key, tag):
                copies[message.value] += 1
    return copies


async def _forwarded(bootstrap: str, tag: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    writers = {
        f"enriched.{topic}": schemas.load(f"enriched.{topic}-value") for topic in INPUT_TOPICS
    }
    for message in await read_committed(bootstrap, list(writers)):
        if not _tagged(message.key, tag) or message.value is None:
            continue
        _, body = unframe(message.value)
        seen[str(decode(writers[message.topic].parsed, body)["eventId"])] += 1
    return seen


def _header_problems(topic: str, headers: dict[str, bytes]) -> list[str]:
    problems = [
        f"{topic}: header {name} missing" for name in CONTRACT_HEADERS if name not in headers
    ]
    if problems:
        return problems
    if topic != f"dlq.{headers['original_topic'].decode()}":
        problems.append(f"{topic}: original_topic {headers['original_topic']!r}")
    if int(headers["original_partition"]) < 0 or int(headers["original_offset"]) < 0:
        problems.append(f"{topic}: bad original position")
    if not headers["exception_class"].startswith(b"karrot_streams.events.failures."):
        problems.append(f"{topic}: exception_class {headers['exception_class']!r}")
    if not headers["exception_message"]:
        problems.append(f"{topic}: empty exception_message")
    if int(headers["retry_count"]) < 1:
        problems.append(f"{topic}: retry_count {headers['retry_count']!r}")
    failed_at = datetime.fromisoformat(headers["failed_at"].decode())
    if failed_at.tzinfo is None or abs((datetime.now(UTC) - failed_at).total_seconds()) > 3600:
        problems.append(f"{topic}: failed_at {headers['failed_at']!r}")
    return problems


async def _dead_lettered(
    bootstrap: str, tag: str
) -> tuple[Counter[tuple[str, bytes | None, bytes | None]], list[str]]:
    dead: Counter[tuple[str, bytes | None, bytes | None]] = Counter()
    problems: list[str] = []
    for message in await read_committed(bootstrap, [f"dlq.{topic}" for topic in INPUT_TOPICS]):
        if not _tagged(message.key, tag):
            continue
        headers = dict(message.headers)
        problems += _header_problems(message.topic, headers)
        dead[(message.topic.removeprefix("dlq."), message.key, message.value)] += 1
    return dead, problems


def _judge_duplicates(outcome: Outcome) -> None:
    """Duplicates over the bound fail the outcome."""
    if outcome.duplicated <= outcome.duplicate_bound:
        return
    found = (
        f"{outcome.duplicated} duplicates (enriched {outcome.enriched_duplicates}, dlq "
        f"{outcome.dlq_duplicates}), more than the bound {outcome.duplicate_bound}"
    )
    outcome.problems.append(found)


async def check(
    outcome: Outcome,
    *,
    bootstrap: str,
    dsn: str,
    tag: str,
    batch: list[Record],
    truth: Truth,
    api_urls: list[str],
    timeout_s: float = 180.0,
) -> Outcome:
    """Wait (up to ``timeout_s``) for the pipeline to finish with ``batch``; fill ``outcome``."""
    deadline = time.monotonic() + timeout_s
    outcome.events_in = len(batch)
    outcome.valid_in = len(truth.valid_ids)
    outcome.poison_in = sum(1 for r in batch if r.poison)

    expected = dict.fromkeys(truth.valid_ids, "PROCESSED") | dict.fromkeys(
        truth.failed_ids, "FAILED"
    )
    found = await store.wait_for_statuses(dsn, expected, timeout_s=timeout_s)
    rows_missing = [i for i, s in expected.items() if found.get(i, ("",))[0] != s]

    # Keyed as _dead_lettered keys what it reads back, so the two compare entry by entry.
    poison: Counter[tuple[str, bytes | None, bytes | None]] = Counter(
        (r.topic, r.key, r.raw) for r in batch if r.poison
    )
    raw_of = {r.event.event_id: r.raw for r in batch if r.event is not None and not r.poison}
    while True:
        seen = await _forwarded(bootstrap, tag)
        dead, header_problems = await _dead_lettered(bootstrap, tag)
        complete = set(seen) >= truth.valid_ids and all(dead[k] >= n for k, n in poison.items())
        if complete or time.monotonic() > deadline:
            break
        await asyncio.sleep(2.0)
    valid_raw = set(raw_of.values())
    copies = Counter(
        {raw: n for raw, n in (await _input_copies(bootstrap, tag)).items() if raw in valid_raw}
    )

    not_forwarded = truth.valid_ids - set(seen)
    not_dead = sum(max(0, n - dead[k]) for k, n in poison.items())
    outcome.events_out = sum(seen.values())
    outcome.dead_lettered = sum(dead.values())
    outcome.enriched_missing = len(not_forwarded)
    outcome.dlq_missing = not_dead
    outcome.lost = outcome.enriched_missing + outcome.dlq_missing
    input_dups = sum(n - 1 for n in copies.values() if n > 1)
    outcome.enriched_duplicates = sum(
        max(0, n - copies.get(raw_of.get(event_id), 1)) for event_id, n in seen.items()
    )
    outcome.dlq_duplicates = sum(max(0, n - poison[k]) for k, n in dead.items() if k in poison)
    outcome.duplicated = outcome.enriched_duplicates + outcome.dlq_duplicates
    unexpected = set(seen) - truth.valid_ids
    if input_dups:
        outcome.notes.append(f"{input_dups} records twice in the input (upstream resend)")
    if rows_missing:
        outcome.problems.append(f"{len(rows_missing)} event_store rows missing or wrong")
    if not_forwarded:
        outcome.problems.append(f"{len(not_forwarded)} valid events never forwarded")
    if not_dead:
        outcome.problems.append(f"{not_dead} poison messages never dead-lettered")
    if unexpected:
        outcome.problems.append(f"{len(unexpected)} unknown event ids forwarded")
    stray = sum(n for k, n in dead.items() if k not in poison)
    if stray:
        outcome.problems.append(f"{stray} dead letters that are not poison (good events!)")
    outcome.problems += sorted(set(header_problems))[:10]
    _judge_duplicates(outcome)
    for url in api_urls:
        remaining = max(30.0, deadline - time.monotonic())
        diffs = await api.wait_until_equal(url, truth, timeout_s=remaining)
        if diffs:
            outcome.problems.append(f"aggregates at {url} differ: " + "; ".join(diffs[:3]))
    return outcome
