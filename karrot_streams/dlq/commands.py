"""``karrot-streams dlq list|redrive``: the dead-letter tools on the command line.

Each writes a table, one letter a row, then a summary line, through the ``write`` it is given
(``print`` on the command line).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from karrot_streams.connections import kafka_connection
from karrot_streams.dlq.letters import HeaderList
from karrot_streams.dlq.reader import ListRange, list_letters, read_letters
from karrot_streams.dlq.records import RedriveRecords
from karrot_streams.dlq.redrive import RedriveIncomplete, Redriver, RedriveReport
from karrot_streams.dlq.selection import (
    DEAD_LETTER_TOPICS,
    InvalidSelection,
    Selection,
    parse_instant,
    select,
)
from karrot_streams.settings import Settings
from karrot_streams.store.migrations import migrate

Write = Callable[[str], None]
KEY_WIDTH = 24
MESSAGE_WIDTH = 60


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
    redrive.add_argument("--partition", type=int)
    redrive.add_argument("--offset", type=int)
    redrive.add_argument("--dry-run", action="store_true", help="only list what would be redriven")


def selection_of(args: argparse.Namespace) -> Selection:
    """The filters of the command line; InvalidSelection names the one to fix."""
    return Selection(
        partition=getattr(args, "partition", None),
        offset=getattr(args, "offset", None),
        since=parse_instant(args.since, "--since") if args.since else None,
        until=parse_instant(args.until, "--until") if args.until else None,
        exception_class=args.exception_class,
    )


async def run(settings: Settings, args: argparse.Namespace, write: Write) -> int:
    """Run ``dlq <command>``; the process exit status."""
    try:
        selection = selection_of(args)
    except InvalidSelection as exc:
        write(f"error: {exc}")
        return 2
    await migrate(settings.database_dsn)
    if args.dlq_command == "list":
        return await _list(settings, args.topic, selection, args.limit, write)
    return await _redrive(settings, args.topic, selection, write, dry_run=args.dry_run)


async def _list(
    settings: Settings, topic: str, selection: Selection, limit: int, write: Write
) -> int:
    scan = await list_letters(
        kafka_connection(settings),
        topic,
        limit=max(0, limit),
        max_bytes=settings.dlq_read_max_bytes,
        where=ListRange(since=selection.since),
        keep=selection.matches,
    )
    shown = scan.letters
    async with RedriveRecords.connect(settings.database_dsn) as records:
        known = await records.lookup(topic, [x.position for x in shown])
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
    return 0


async def _redrive(
    settings: Settings, topic: str, selection: Selection, write: Write, *, dry_run: bool
) -> int:
    letters = await read_letters(
        kafka_connection(settings), topic, position=selection.single, since=selection.since
    )
    if selection.single is not None and not letters:
        write(
            f"error: no dead letter at {topic} partition {selection.partition}"
            f" offset {selection.offset}"
        )
        return 1
    producer = AIOKafkaProducer(
        **kafka_connection(settings).client_kwargs(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:

        async def send(
            target: str, key: bytes | None, value: bytes | None, headers: HeaderList
        ) -> Any:
            return await producer.send(target, value, key=key, headers=headers)

        async with RedriveRecords.connect(settings.database_dsn) as records:
            redriver = Redriver(records=records, send=send)
            try:
                report = await redriver.redrive(topic, select(letters, selection), dry_run=dry_run)
            except RedriveIncomplete as exc:
                write(report_table(exc.report))
                write(summary(exc.report))
                write(f"error: {len(exc.failures)} not redriven; run the same command again:")
                for (partition, offset), reason in sorted(exc.failures.items()):
                    write(f"  {partition}:{offset} {reason}")
                return 1
    finally:
        await producer.stop()
    write(report_table(report))
    write(summary(report))
    return 0


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
