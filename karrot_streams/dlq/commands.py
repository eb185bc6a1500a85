"""``karrot-streams dlq list|redrive``: the dead-letter tools on the command line.

Each writes a table, one letter a row, then a summary line, through the ``write`` it is given
(``print`` on the command line); ``list --json`` writes one JSON document instead. A redrive of
a whole topic (no filter at all) asks first, unless ``--yes``.

Exit status: see ``EXIT_*`` (and the README's "Dead letters: list and redrive").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from karrot_streams.connections import kafka_connection
from karrot_streams.dlq.dead_letters import DeadLetter, Position
from karrot_streams.dlq.reader import (
    ListRange,
    check_pending,
    list_dead_letters,
    read_dead_letters,
)
from karrot_streams.dlq.records import RedriveRecord, RedriveRecords
from karrot_streams.dlq.redrive import RedriveIncomplete, Redriver, RedriveReport
from karrot_streams.dlq.selection import (
    DEAD_LETTER_TOPICS,
    InvalidSelection,
    Selection,
    parse_instant,
    select,
)
from karrot_streams.dlq.transactional import TransactionalSend
from karrot_streams.settings import Settings
from karrot_streams.store.migrations import migrate

Write = Callable[[str], None]
#: Asks a yes/no question; True for yes.
Confirm = Callable[[str], Awaitable[bool]]
KEY_WIDTH = 24
MESSAGE_WIDTH = 60

EXIT_OK = 0
#: The work could not be done: no letter at the position, or Kafka did not take every letter.
EXIT_FAILED = 1
#: The command line is wrong (argparse's own status too): a bad filter or date.
EXIT_USAGE = 2
#: A whole-topic redrive was not confirmed (answered no, or no terminal to ask and no --yes).
EXIT_NOT_CONFIRMED = 3


def add_parser(commands: Any) -> None:
    """``dlq list`` and ``dlq redrive`` under ``commands`` (argparse sub-parsers)."""
    dlq = commands.add_parser("dlq", help="list and redrive dead letters")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="dead letters of a dlq.* topic, newest first")
    redrive = actions.add_parser("redrive", help="send dead letters back to their topic, once")
    for parser in (listing, redrive):
        parser.add_argument(
            "topic",
            choices=DEAD_LETTER_TOPICS,
            metavar="dlq-topic",
            help=", ".join(DEAD_LETTER_TOPICS),
        )
        parser.add_argument("--exception-class", help="exact exception_class header value")
        parser.add_argument("--since", help="failed_at on or after this ISO-8601 moment")
        parser.add_argument("--until", help="failed_at before this ISO-8601 moment")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    redrive.add_argument("--partition", type=int)
    redrive.add_argument("--offset", type=int)
    redrive.add_argument("--dry-run", action="store_true", help="only list what would be redriven")
    redrive.add_argument(
        "--yes", action="store_true", help="redrive a whole topic without asking first"
    )


def selection_of(args: argparse.Namespace) -> Selection:
    """The filters of the command line; InvalidSelection names the one to fix."""
    return Selection(
        partition=getattr(args, "partition", None),
        offset=getattr(args, "offset", None),
        since=parse_instant(args.since, "--since") if args.since else None,
        until=parse_instant(args.until, "--until") if args.until else None,
        exception_class=args.exception_class,
    )


def whole_topic(selection: Selection) -> bool:
    """No filter at all: every letter of the topic."""
    return selection == Selection()


async def ask(question: str) -> bool:
    """Ask on the terminal (in a thread: reading stdin blocks); no terminal means no."""
    if not sys.stdin.isatty():
        return False
    try:
        answer = await asyncio.to_thread(input, question)
    except EOFError:  # end of input (Ctrl-D) before an answer
        return False
    return answer.strip().lower() in {"y", "yes"}


async def run(
    settings: Settings, args: argparse.Namespace, write: Write, confirm: Confirm = ask
) -> int:
    """Run ``dlq <command>``; the process exit status (``EXIT_*``)."""
    try:
        selection = selection_of(args)
    except InvalidSelection as exc:
        write(f"error: {exc}")
        return EXIT_USAGE
    await migrate(settings.database_dsn)
    if args.dlq_command == "list":
        return await _list(
            settings, args.topic, selection, args.limit, write, as_json=getattr(args, "json", False)
        )
    return await _redrive(
        settings,
        args.topic,
        selection,
        write,
        dry_run=args.dry_run,
        confirm=None if getattr(args, "yes", False) else confirm,
    )


async def _list(
    settings: Settings,
    topic: str,
    selection: Selection,
    limit: int,
    write: Write,
    *,
    as_json: bool = False,
) -> int:
    # ``topic`` is the logical name the command was given; Kafka holds the physical one.
    physical = settings.topic_names.physical(topic)
    scan = await list_dead_letters(
        kafka_connection(settings),
        physical,
        limit=max(0, limit),
        max_bytes=settings.dlq_read_max_bytes,
        where=ListRange(since=selection.since),
        keep=selection.matches,
    )
    shown = scan.letters
    async with RedriveRecords.connect(settings.database_dsn) as records:
        known = await records.lookup(physical, [x.position for x in shown])
    if as_json:
        write(
            json.dumps(
                list_json(topic, shown, scan.matched, known, complete=scan.complete),
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    rows = []
    for letter in shown:
        record = known.get(letter.position)
        rows.append(
            [
                str(letter.partition),
                str(letter.offset),
                letter.header("failed_at") or "",
                str(letter.retry_count),
                "yes" if record is not None and record.redriven else "no",
                letter.exception_class or "",
                _cut(_text(letter.key), KEY_WIDTH),
                _cut(letter.exception_message or "", MESSAGE_WIDTH),
            ]
        )
    header = ["PARTITION", "OFFSET", "FAILED_AT", "RETRIES", "REDRIVEN", "EXCEPTION", "KEY"]
    write(format_table([*header, "MESSAGE"], rows))
    redriven = sum(1 for row in rows if row[4] == "yes")
    # An incomplete scan stopped early (the newest were found, or the byte budget ran out).
    total = str(scan.matched) if scan.complete else f"at least {scan.matched}"
    write(
        f"{len(shown)} of {total} matching dead letters in {topic} shown"
        f" ({redriven} of those redriven)"
    )
    return EXIT_OK


def list_json(
    topic: str,
    shown: Sequence[DeadLetter],
    total: int,
    known: Mapping[Position, RedriveRecord],
    *,
    complete: bool = True,
) -> dict[str, Any]:
    """``dlq list --json``: the letters shown, newest first, with every header and the bytes."""
    messages = []
    for letter in shown:
        record = known.get(letter.position)
        messages.append(
            {
                "partition": letter.partition,
                "offset": letter.offset,
                "timestamp": letter.timestamp,
                "failedAt": letter.header("failed_at"),
                "exceptionClass": letter.exception_class,
                "exceptionMessage": letter.exception_message,
                "retryCount": letter.retry_count,
                "redriven": record is not None and record.redriven,
                "key": None if letter.key is None else _text(letter.key),
                "headers": {name: _text(value) for name, value in letter.headers},
                "valueBase64": None
                if letter.value is None
                else base64.b64encode(letter.value).decode("ascii"),
            }
        )
    # ``total`` counts the matching letters in what was read; ``complete`` says whether that
    # was the whole topic (a listing stops once it has the newest, or at its byte budget).
    return {
        "topic": topic,
        "total": total,
        "complete": complete,
        "shown": len(messages),
        "messages": messages,
    }


async def _redrive(
    settings: Settings,
    topic: str,
    selection: Selection,
    write: Write,
    *,
    dry_run: bool,
    confirm: Confirm | None = None,
) -> int:
    physical = settings.topic_names.physical(topic)
    letters = await read_dead_letters(
        kafka_connection(settings), physical, position=selection.single, since=selection.since
    )
    if selection.single is not None and not letters:
        write(
            f"error: no dead letter at {topic} partition {selection.partition}"
            f" offset {selection.offset}"
        )
        return EXIT_FAILED
    if confirm is not None and not dry_run and whole_topic(selection) and letters:
        # No filter is the one spelling that reaches every letter: a forgotten flag must not.
        question = (
            f"Redrive all {len(letters)} dead letters of {topic} to their original topics? [y/N] "
        )
        if not await confirm(question):
            write(
                "not redriven: a whole topic needs confirming (or --yes); --dry-run lists"
                " what would be redriven"
            )
            return EXIT_NOT_CONFIRMED
    kafka = kafka_connection(settings)
    # Transactional: the pending targets reach the database before the records can commit.
    producer = AIOKafkaProducer(
        **kafka.client_kwargs(),
        acks="all",
        enable_idempotence=True,
        transactional_id=f"karrot-streams-redrive-{uuid.uuid4().hex}",
    )
    await producer.start()
    try:
        transactional = TransactionalSend(producer)
        async with RedriveRecords.connect(settings.database_dsn) as records:
            redriver = Redriver(
                records=records,
                send=transactional.send,
                hold=transactional.hold,
                check=functools.partial(check_pending, kafka),
                topics=settings.topic_names,
            )
            try:
                report = await redriver.redrive(
                    physical, select(letters, selection), dry_run=dry_run
                )
            except RedriveIncomplete as exc:
                write(report_table(exc.report))
                write(summary(exc.report))
                write(f"error: {len(exc.failures)} not redriven; run the same command again:")
                for (partition, offset), reason in sorted(exc.failures.items()):
                    write(f"  {partition}:{offset} {reason}")
                return EXIT_FAILED
    finally:
        await producer.stop()
    write(report_table(report))
    write(summary(report))
    return EXIT_OK


def report_table(report: RedriveReport) -> str:
    rows = [
        [
            str(outcome.letter.partition),
            str(outcome.letter.offset),
            outcome.letter.header("failed_at") or "",
            outcome.letter.exception_class or "",
            outcome.status,
            (
                f"{outcome.target.topic}:{outcome.target.partition}:{outcome.target.offset}"
                if outcome.target
                else ""
            ),
        ]
        for outcome in report.outcomes
    ]
    return format_table(["PARTITION", "OFFSET", "FAILED_AT", "EXCEPTION", "STATUS", "TARGET"], rows)


def summary(report: RedriveReport) -> str:
    if report.dry_run:
        would = report.count("WOULD_REDRIVE")
        return (
            f"dry run: {report.selected} selected in {report.dlq_topic}, {would} would be"
            f" redriven, {report.already_redriven} already redriven"
        )
    return (
        f"{report.selected} selected in {report.dlq_topic}, {report.redriven} redriven,"
        f" {report.already_redriven} already redriven"
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
