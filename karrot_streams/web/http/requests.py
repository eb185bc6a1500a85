"""The publish body (the seed's EventRequest) and query parameters, parsed and validated. Pure.

Every failure is a 400 whose message names the field, with ``details.field`` holding its path
(``payload.price``); the payload rules are the pipeline's own (events/validation.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from karrot_streams.events.failures import InvalidEvent
from karrot_streams.events.model import Event
from karrot_streams.events.types import PAYLOAD_FIELDS, PAYLOAD_RECORD_OF, EventType
from karrot_streams.events.validation import (
    check_id,
    parse_event_type,
    require_text,
    validate_payload,
)
from karrot_streams.web.http.errors import ApiError, BadRequest, PayloadTooLarge, ValidationFailed

LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1
OPTIONAL_TEXT = ("correlationId", "userId", "source")
#: Messages the seed gives for a missing top-level field (PublishEventCommand's annotations).
REQUIRED_MESSAGES = {
    "eventType": "Event type is required",
    "aggregateId": "Aggregate ID is required",
    "payload": "Payload is required",
}


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BadRequest("Request body is required: a JSON object")
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}"[:300]) from None
    if not isinstance(value, dict):
        raise BadRequest(f"Request body must be a JSON object, not {_json_kind(value)}")
    _check_strings(value)
    return value


def parse_publish(body: bytes, *, event_id: str, now: datetime) -> Event:
    """The Event a publish request asks for, with a new ``eventId`` and ``occurredAt`` = now."""
    return parse_event_request(parse_json_object(body), event_id=event_id, now=now)


def parse_event_request(request: object, *, event_id: str, now: datetime) -> Event:
    """One EventRequest already read from JSON (a publish body, or an item of a batch)."""
    if not isinstance(request, dict):
        raise BadRequest(f"An event must be a JSON object, not {_json_kind(request)}")
    for name, message in REQUIRED_MESSAGES.items():
        if request.get(name) is None:
            raise ValidationFailed(f"{message} ({name})", details={"field": name})
    event_type = _event_type(request["eventType"])
    with _field_errors(""):
        aggregate_id = check_id(request["aggregateId"], "aggregateId")
        optional = {
            name: require_text(request.get(name), name, optional=True) for name in OPTIONAL_TEXT
        }
    payload = request["payload"]
    if not isinstance(payload, dict):
        raise ValidationFailed(
            f"payload must be a JSON object, not {_json_kind(payload)}",
            details={"field": "payload"},
        )
    record = PAYLOAD_RECORD_OF[event_type]
    with _field_errors("payload."):
        clean = validate_payload(record, payload)
        _check_longs(record, clean)
    return Event(
        event_id=event_id,
        event_type=event_type,
        aggregate_id=aggregate_id,
        occurred_at=_millis(now),
        payload_record=record,
        payload=clean,
        correlation_id=optional["correlationId"],
        user_id=optional["userId"],
        source=optional["source"],
    )


def parse_batch(
    body: bytes, *, maximum: int, now: datetime, new_id: Callable[[], str]
) -> list[Event | ApiError]:
    """Each item of ``{"events": [...]}`` as its Event, or the error that refuses it."""
    request = parse_json_object(body)
    events = request.get("events")
    if set(request) != {"events"} or not isinstance(events, list):
        raise BadRequest(
            'Request body must be {"events": [<event>, ...]}', details={"field": "events"}
        )
    if not events:
        raise BadRequest("events must not be empty", details={"field": "events"})
    if len(events) > maximum:
        raise PayloadTooLarge(
            f"A batch holds at most {maximum} events, got {len(events)}",
            details={"maxEvents": maximum, "events": len(events)},
        )
    parsed: list[Event | ApiError] = []
    for item in events:
        try:
            parsed.append(parse_event_request(item, event_id=new_id(), now=now))
        except ApiError as exc:
            parsed.append(exc)
    return parsed


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 0 <= limit <= maximum:
        raise BadRequest(
            f"limit must be a whole number from 0 to {maximum}, got {raw[:40]!r}",
            details={"field": "limit"},
        )
    return limit


def _event_type(value: object) -> EventType:
    if not isinstance(value, str):
        raise ValidationFailed(
            f"eventType must be a string, not {_json_kind(value)}", details={"field": "eventType"}
        )
    with _field_errors(""):
        return parse_event_type(value)


@contextmanager
def _field_errors(prefix: str) -> Iterator[None]:
    """Turn the validator's InvalidEvent into a 400 naming the field by its path in the body."""
    try:
        yield
    except InvalidEvent as exc:
        field = f"{prefix}{exc.field or ''}".rstrip(".")
        message = str(exc)
        if exc.field and exc.field.lower() not in message.lower():
            message = f"{message} ({field})"
        raise ValidationFailed(message, details={"field": field}) from None


def _check_longs(record: str, payload: Mapping[str, Any]) -> None:
    for name, kind in PAYLOAD_FIELDS[record].items():
        if kind == "int" and not LONG_MIN <= payload[name] <= LONG_MAX:
            raise InvalidEvent(f"{name} is out of range for a 64-bit whole number", field=name)


def _check_strings(root: Any) -> None:
    """Refuse text that Avro or PostgreSQL cannot hold: lone surrogates and NUL characters."""
    pending: list[tuple[str, Any]] = [("", root)]
    while pending:  # iterative: the nesting depth is the client's choice
        path, value = pending.pop()
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                pending.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    name = path or "body"
    if "\x00" in text:
        raise ValidationFailed(f"{name} must not contain NUL characters", details={"field": path})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(
            f"{name} is not valid Unicode text (lone surrogate)", details={"field": path}
        ) from None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _millis(moment: datetime) -> datetime:
    """UTC, truncated to the millisecond Avro's timestamp-millis keeps."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
