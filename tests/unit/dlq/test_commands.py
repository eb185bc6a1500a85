"""The command line's tables, summaries and filters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from karrot_streams.dlq import commands
from karrot_streams.dlq.commands import add_parser, format_table, selection_of, summary
from karrot_streams.dlq.dead_letters import DeadLetter
from karrot_streams.dlq.reader import Scan
from karrot_streams.dlq.records import RedriveRecords, Target
from karrot_streams.dlq.redrive import DeadLetterOutcome, RedriveReport
from karrot_streams.dlq.selection import InvalidSelection
from karrot_streams.settings import Settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["dlq", *argv])


def test_arguments() -> None:
    args = parse(
        "redrive",
        "dlq.chat-events",
        "--partition",
        "1",
        "--offset",
        "9",
        "--exception-class",
        "karrot_streams.events.failures.InvalidEvent",
        "--since",
        "2026-11-25T09:00:00Z",
        "--dry-run",
    )
    selection = selection_of(args)
    assert (args.dlq_command, args.topic, args.dry_run) == ("redrive", "dlq.chat-events", True)
    assert selection.single == (1, 9)
    assert selection.since == datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert selection.exception_class == "karrot_streams.events.failures.InvalidEvent"
    listing = parse("list", "dlq.user-events", "--limit", "5")
    assert listing.limit == 5
    assert selection_of(listing).single is None


def test_only_dead_letter_topics_are_accepted() -> None:
    with pytest.raises(SystemExit):
        parse("list", "chat-events")


def test_half_a_position_is_refused() -> None:
    with pytest.raises(InvalidSelection):
        selection_of(parse("redrive", "dlq.chat-events", "--partition", "1"))


def test_format_table() -> None:
    assert (
        format_table(["A", "LONGER"], [["xyz", "1"], ["", "22"]]) == "A    LONGER\nxyz  1\n     22"
    )


def test_summaries() -> None:
    letter = DeadLetter("dlq.chat-events", 0, 1, 0, None, None)
    outcomes = (
        DeadLetterOutcome(letter, "REDRIVEN", Target("chat-events", 0, 5)),
        DeadLetterOutcome(letter, "ALREADY_REDRIVEN"),
    )
    assert summary(RedriveReport("dlq.chat-events", False, outcomes)) == (
        "2 selected in dlq.chat-events, 1 redriven, 1 already redriven"
    )
    dry = (DeadLetterOutcome(letter, "WOULD_REDRIVE"),)
    assert summary(RedriveReport("dlq.chat-events", True, dry)) == (
        "dry run: 1 selected in dlq.chat-events, 1 would be redriven, 0 already redriven"
    )


# ---- CLI manners: --json, confirming a whole-topic redrive, exit statuses -------------------

LETTERS = [
    DeadLetter(
        "dlq.chat-events",
        1,
        7,
        1_764_061_200_000,
        b"room-7",
        b"\x00\x00\x00\x00\x07avro",
        (
            ("original_topic", b"chat-events"),
            ("exception_class", b"karrot_streams.events.failures.InvalidEvent"),
            ("exception_message", b"Message too long"),
            ("failed_at", b"2026-11-25T09:00:00.000Z"),
            ("retry_count", b"1"),
        ),
    ),
    DeadLetter("dlq.chat-events", 0, 3, 1_764_061_100_000, None, None, ()),
]


class Refused(Exception):
    """Raised by the fakes where the real command would go on to Kafka or the database."""


@dataclass
class FakeRecords:
    async def lookup(self, topic: str, positions: object) -> dict[Any, Any]:
        return {}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands without Kafka or PostgreSQL: fixed letters, no records; producing refused."""
    produced: list[str] = []

    async def no_migrations(dsn: str) -> None:
        return None

    async def letters(bootstrap: str, topic: str, **kwargs: Any) -> list[DeadLetter]:
        return list(LETTERS)

    @asynccontextmanager
    async def records(dsn: str) -> AsyncIterator[FakeRecords]:
        yield FakeRecords()

    def producer(**kwargs: Any) -> None:
        produced.append("producer")
        raise Refused

    monkeypatch.setattr(commands, "migrate", no_migrations)

    async def listing(kafka: object, topic: str, *, limit: int, **kwargs: Any) -> Scan:
        newest = sorted(LETTERS, key=lambda x: x.timestamp, reverse=True)
        return Scan(letters=newest[:limit], matched=len(LETTERS), complete=True)

    monkeypatch.setattr(commands, "read_dead_letters", letters)
    monkeypatch.setattr(commands, "list_dead_letters", listing)
    monkeypatch.setattr(RedriveRecords, "connect", records)
    monkeypatch.setattr(commands, "AIOKafkaProducer", producer)
    return produced


class Answer:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.questions: list[str] = []

    async def __call__(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer


async def run_cli(*argv: str, confirm: Answer | None = None) -> tuple[int, list[str]]:
    out: list[str] = []
    status = await commands.run(Settings(), parse(*argv), out.append, confirm or Answer(False))
    return status, out


async def test_list_json_is_one_document(offline: list[str]) -> None:
    status, out = await run_cli("list", "dlq.chat-events", "--json", "--limit", "5")
    assert status == commands.EXIT_OK
    (text,) = out
    document = json.loads(text)
    assert (document["topic"], document["total"], document["shown"]) == ("dlq.chat-events", 2, 2)
    first = document["messages"][0]
    assert (first["partition"], first["offset"]) == (1, 7)
    assert first["exceptionClass"] == "karrot_streams.events.failures.InvalidEvent"
    assert first["failedAt"] == "2026-11-25T09:00:00.000Z"
    assert first["retryCount"] == 1
    assert first["redriven"] is False
    assert first["key"] == "room-7"
    assert first["headers"]["original_topic"] == "chat-events"
    assert first["valueBase64"] == "AAAAAAdhdnJv"
    second = document["messages"][1]
    assert (second["key"], second["valueBase64"], second["failedAt"]) == (None, None, None)


async def test_list_without_json_is_the_table(offline: list[str]) -> None:
    status, out = await run_cli("list", "dlq.chat-events")
    assert status == commands.EXIT_OK
    assert out[0].startswith("PARTITION")
    assert out[-1] == "2 of 2 matching dead letters in dlq.chat-events shown (0 of those redriven)"


async def test_a_whole_topic_redrive_declined_produces_nothing(offline: list[str]) -> None:
    answer = Answer(False)
    status, out = await run_cli("redrive", "dlq.chat-events", confirm=answer)
    assert status == commands.EXIT_NOT_CONFIRMED == 3
    assert answer.questions == [
        "Redrive all 2 dead letters of dlq.chat-events to their original topics? [y/N] "
    ]
    assert offline == []
    assert "--yes" in out[-1]


async def test_a_whole_topic_redrive_goes_on_when_confirmed(offline: list[str]) -> None:
    with pytest.raises(Refused):
        await run_cli("redrive", "dlq.chat-events", confirm=Answer(True))
    assert offline == ["producer"]


async def test_yes_skips_the_question(offline: list[str]) -> None:
    answer = Answer(False)
    with pytest.raises(Refused):
        await run_cli("redrive", "dlq.chat-events", "--yes", confirm=answer)
    assert answer.questions == []


@pytest.mark.parametrize(
    "argv",
    [
        ("--dry-run",),
        ("--exception-class", "karrot_streams.events.failures.InvalidEvent"),
        ("--since", "2026-11-25T00:00:00Z"),
        ("--partition", "1", "--offset", "7"),
    ],
)
async def test_a_filtered_or_dry_redrive_is_not_asked_about(
    offline: list[str], argv: tuple[str, ...]
) -> None:
    answer = Answer(False)
    with pytest.raises(Refused):
        await run_cli("redrive", "dlq.chat-events", *argv, confirm=answer)
    assert answer.questions == []


async def test_without_a_terminal_the_question_is_answered_no(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert await commands.ask("Redrive? ") is False


async def test_a_bad_filter_is_a_usage_error() -> None:
    status, out = await run_cli("redrive", "dlq.chat-events", "--partition", "1")
    assert status == commands.EXIT_USAGE == 2
    assert out[0].startswith("error: partition and offset go together")


def test_whole_topic() -> None:
    assert commands.whole_topic(selection_of(parse("redrive", "dlq.chat-events")))
    assert not commands.whole_topic(
        selection_of(parse("redrive", "dlq.chat-events", "--until", "2026-11-25T00:00:00Z"))
    )
