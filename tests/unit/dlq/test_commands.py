"""The command line's tables, summaries and filters."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from karrot_streams.dlq.commands import add_parser, format_table, selection_of, summary
from karrot_streams.dlq.letters import DeadLetter
from karrot_streams.dlq.records import Target
from karrot_streams.dlq.redrive import LetterOutcome, RedriveReport
from karrot_streams.dlq.selection import InvalidSelection


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
        LetterOutcome(letter, "REDRIVEN", Target("chat-events", 0, 5)),
        LetterOutcome(letter, "ALREADY_REDRIVEN"),
    )
    assert summary(RedriveReport("dlq.chat-events", False, outcomes)) == (
        "2 selected in dlq.chat-events, 1 redriven, 1 already redriven"
    )
    dry = (LetterOutcome(letter, "WOULD_REDRIVE"),)
    assert summary(RedriveReport("dlq.chat-events", True, dry)) == (
        "dry run: 1 selected in dlq.chat-events, 1 would be redriven, 0 already redriven"
    )
