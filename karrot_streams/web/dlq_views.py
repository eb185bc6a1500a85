"""``GET /api/v1/dlq/{topic}/messages`` (list) and ``POST /api/v1/dlq/{topic}/redrive`` (admin)."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web
from aiokafka.errors import KafkaError

from karrot_streams.connections import kafka_connection
from karrot_streams.dlq.dead_letters import DeadLetter, HeaderList
from karrot_streams.dlq.overview import dead_letter_json
from karrot_streams.dlq.reader import (
    Scan,
    check_pending,
    list_dead_letters,
    read_dead_letter,
    read_dead_letters,
    record_size,
)
from karrot_streams.dlq.records import RedriveRecords
from karrot_streams.dlq.redrive import (
    DeadLetterOutcome,
    Produced,
    RedriveIncomplete,
    Redriver,
    RedriveReport,
)
from karrot_streams.dlq.selection import DEAD_LETTER_TOPICS, select
from karrot_streams.dlq.values import EnvelopeReader, value_base64
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.topics import TopicNames
from karrot_streams.settings import Settings
from karrot_streams.tables.consistency import Token
from karrot_streams.web.dlq_requests import (
    dead_letter_topic_named,
    parse_list_query,
    parse_list_range,
    parse_redrive,
)
from karrot_streams.web.http import models
from karrot_streams.web.http.auth import TokenCheck, bearer_token
from karrot_streams.web.http.body import read_body
from karrot_streams.web.http.errors import Forbidden, NotFound, ServiceUnavailable
from karrot_streams.web.http.operations import Answer, Operation, declare
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

log = logging.getLogger(__name__)

TOPIC = {"description": "A dead-letter topic", "schema": {"enum": list(DEAD_LETTER_TOPICS)}}

T = TypeVar("T")
#: Redrives under way, held so a shielded one outlives a request that went away.
_RUNNING: set[asyncio.Future[RedriveReport]] = set()


class DeadLetterMessagesView(ApiView):
    """The letters of one ``dlq.*`` topic matching the filters, newest first, up to ``limit``.

    Never the whole topic: read backwards from the end (or ``toOffset``) of each partition, from
    ``since``'s offset or ``fromOffset`` on, at most ``KARROT_DLQ_READ_MAX_BYTES`` per request;
    ``complete`` says whether ``total`` counts the whole range, and ``scanned`` where to go on
    from. ``partition`` and ``offset`` together read that one letter only (the console's inspect).
    """

    operations = declare(
        get=Operation(
            "A dead-letter topic's letters matching the filters, newest first",
            {200: Answer("The letters", models.DeadLetterMessages)},
            errors=(400, 401, 404, 503),
            query=models.DeadLetterQuery,
            path={"topic": TOPIC},
        )
    )

    async def get(self, request: web.Request, topic: str) -> web.StreamResponse:
        dlq_topic = dead_letter_topic_named(topic)
        selection, limit = parse_list_query(request.query)
        where = parse_list_range(request.query)
        resources = await self.ready()
        settings = resources.settings
        # The path names the logical topic; Kafka and the redrive records hold the physical one.
        physical = resources.topics.names.physical(dlq_topic)
        if selection.single is not None:
            one = await _kafka(
                read_dead_letter(kafka_connection(settings), physical, selection.single)
            )
            shown = [one] if one is not None and selection.matches(one) else []
            scan = Scan(letters=shown, matched=len(shown), records=int(one is not None))
            scan.bytes = sum(record_size(x) for x in shown)
        else:
            scan = await _kafka(
                list_dead_letters(
                    kafka_connection(settings),
                    physical,
                    limit=limit,
                    max_bytes=settings.dlq_read_max_bytes,
                    where=where,
                    keep=selection.matches,
                )
            )
            shown = scan.letters
        async with _database(), RedriveRecords.connect(settings.database_dsn) as records:
            known = await records.lookup(physical, [x.position for x in shown])
        envelopes = EnvelopeReader(resources.registry)
        messages = []
        for letter in shown:
            record = known.get(letter.position)
            value = await envelopes.json(letter.value)
            messages.append(
                message_json(
                    letter, value, redriven=record is not None and record.redriven, topic=dlq_topic
                )
            )
        return json_response(
            {
                "topic": dlq_topic,
                "total": scan.matched,
                "complete": scan.complete,
                "scanned": scanned_json(scan),
                "messages": messages,
            }
        )


def scanned_json(scan: Scan) -> dict[str, Any]:
    return {
        "records": scan.records,
        "bytes": scan.bytes,
        "partitions": [
            {"partition": tp.partition, "fromOffset": begin, "toOffset": end}
            for tp, (begin, end) in sorted(scan.ranges.items(), key=lambda x: x[0].partition)
        ],
    }


class RedriveView(ApiView):
    """Redrive the selected letters of one ``dlq.*`` topic to their original topic, once each."""

    operations = declare(
        post=Operation(
            "Redrive the selected letters to their original topic, each at most once (admin)",
            {200: Answer("What was (or would be) redriven", models.RedriveReport)},
            errors=(400, 401, 403, 404, 413, 503),
            body=models.RedriveRequest,
            path={"topic": TOPIC},
        )
    )

    async def post(self, request: web.Request, topic: str) -> web.StreamResponse:
        settings = self.resources.settings
        require_admin(request, settings)
        dlq_topic = dead_letter_topic_named(topic)
        command = parse_redrive(await read_body(request, settings.max_body_bytes))
        selection = command.selection
        resources = await self.ready()
        names = resources.topics.names
        physical = names.physical(dlq_topic)
        letters = await _kafka(
            read_dead_letters(
                kafka_connection(settings),
                physical,
                position=selection.single,
                since=selection.since,
            )
        )
        if selection.single is not None and not letters:
            partition, offset = selection.single
            raise NotFound(
                f"No dead letter at {dlq_topic} partition {partition} offset {offset}",
                details={"topic": dlq_topic, "partition": partition, "offset": offset},
            )
        producer = self.karrot.producer

        transactions = self.karrot.transactions

        async def send(
            target: str, key: bytes | None, value: bytes | None, headers: HeaderList
        ) -> Any:
            # Confirmed redriven only once committed: an aborted transaction leaves the
            # letter to be redriven again. The acknowledgement comes first: the Redriver
            # notes it as pending while it holds the worker's step (nothing commits then).
            acks: list[Awaitable[Any]] = []

            async def enqueue() -> Awaitable[Any]:
                ack: Awaitable[Any] = await producer.send(target, key, value, None, None, headers)
                acks.append(ack)
                return ack

            committed = await transactions.produce(enqueue)
            return Produced(acks[0], committed)

        request_id = uuid.uuid4().hex

        async def redrive() -> RedriveReport:
            async with RedriveRecords.connect(settings.database_dsn) as records:
                redriver = Redriver(
                    records=records,
                    send=send,
                    hold=transactions.step,
                    check=functools.partial(check_pending, kafka_connection(settings)),
                    topics=names,
                    request_id=request_id,
                )
                return await redriver.redrive(
                    physical, select(letters, selection), dry_run=command.dry_run
                )

        async with _database():
            try:
                # Shielded: a client that goes away must not stop it between produce and record.
                task = asyncio.ensure_future(redrive())
                _RUNNING.add(task)
                task.add_done_callback(_RUNNING.discard)
                report = await asyncio.shield(task)
            except RedriveIncomplete as exc:
                log.warning("Redrive %s of %s incomplete: %s", request_id, dlq_topic, exc)
                raise ServiceUnavailable(
                    "Kafka did not take every dead letter; those not redriven are left"
                    " as they were: retry the same request",
                    details={
                        "redriven": exc.report.redriven,
                        "alreadyRedriven": exc.report.already_redriven,
                        "failed": len(exc.failures),
                        "reason": next(iter(exc.failures.values())),
                    },
                ) from exc
        body = report.to_json()
        envelopes = EnvelopeReader(resources.registry)
        for outcome, message in zip(report.outcomes, body["messages"], strict=True):
            message["consistencyToken"] = await redriven_token(outcome, envelopes, names)
        return json_response(body)


async def redriven_token(
    outcome: DeadLetterOutcome, envelopes: EnvelopeReader, names: TopicNames
) -> str | None:
    """The consistency token of where a letter was redriven to, for a table query to wait for
    it (the console's, after a redrive); None when it was not, or its value is not an event."""
    if outcome.target is None or outcome.status == "WOULD_REDRIVE":
        return None
    envelope = await envelopes.json(outcome.letter.value)
    event_id = envelope.get("eventId") if isinstance(envelope, dict) else None
    if not isinstance(event_id, str):
        return None
    target = outcome.target
    try:
        token = Token(names.logical(target.topic), target.partition, target.offset, event_id)
        return str(Token.parse(str(token)))
    except ValueError:
        return None  # not an input topic, or an id that is not a UUID: no table counts it


def require_admin(request: web.Request, settings: Settings) -> None:
    """403 unless the bearer token is one of ``settings.admin_tokens``."""
    admins = TokenCheck(token.get_secret_value() for token in settings.admin_tokens)
    if not admins.accepts(bearer_token(request.headers.get("Authorization"))):
        raise Forbidden(
            "This call changes data: it needs an admin token (KARROT_ADMIN_TOKENS)",
            details={"required": "admin"},
        )


def message_json(letter: DeadLetter, value: Any, *, redriven: bool, topic: str) -> dict[str, Any]:
    """One letter as the API shows it, under ``topic``, its topic's logical name."""
    return {
        **dead_letter_json(letter),
        "topic": topic,
        "value": value,
        "valueBase64": value_base64(letter.value),
        "redriven": redriven,
    }


async def _kafka(reading: Awaitable[T]) -> T:
    try:
        return await reading
    except (KafkaError, TimeoutError, OSError) as exc:
        log.warning("Reading a dead-letter topic failed: %s", exc)
        raise ServiceUnavailable(
            "Kafka could not be read", details={"reason": f"{type(exc).__name__}: {exc}"[:300]}
        ) from exc


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    """Turn the database being unreachable into a 503."""
    try:
        yield
    except TransientFailure as exc:
        raise ServiceUnavailable(
            "The database is unavailable", details={"reason": str(exc)[:300]}
        ) from exc
