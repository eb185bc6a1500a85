"""The publish body (the seed's EventRequest) and query parameters, parsed and validated. Pure.

Every failure is a 400 whose message names the field, with ``details.field`` holding its path
(``payload.price``); the payload rules are the pipeline's own (events/validation.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError

from karrot_streams.events.failures import InvalidEvent
from karrot_streams.events.model import Event
from karrot_streams.events.payloads import MAX_MESSAGE_LENGTH, Payload, invalid_event
from karrot_streams.events.types import PAYLOAD_RECORD_OF, EventType
from karrot_streams.events.validation import parse_event_type
from karrot_streams.web.http.errors import ApiError, BadRequest, PayloadTooLarge, ValidationFailed
from karrot_streams.web.http.models import PUBLISH_MODELS

Q = TypeVar("Q", bound=BaseModel)
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
    # NUL and lone surrogates: refused by the models in the fields they keep (a NUL in a field
    # that is ignored goes nowhere).
    return value


def parse_publish(
    body: bytes,
    *,
    event_id: str,
    now: datetime,
    max_message_length: int = MAX_MESSAGE_LENGTH,
) -> Event:
    """The Event a publish request asks for, with a new ``eventId`` and ``occurredAt`` = now."""
    return parse_event_request(
        parse_json_object(body),
        event_id=event_id,
        now=now,
        max_message_length=max_message_length,
    )


def parse_event_request(
    request: object,
    *,
    event_id: str,
    now: datetime,
    max_message_length: int = MAX_MESSAGE_LENGTH,
) -> Event:
    """One EventRequest already read from JSON (a publish body, or an item of a batch), checked
    by its typed model (web/http/models.py: the stream's payload models, events/payloads.py)."""
    if not isinstance(request, dict):
        raise BadRequest(f"An event must be a JSON object, not {_json_kind(request)}")
    for name, message in REQUIRED_MESSAGES.items():
        if request.get(name) is None:
            raise ValidationFailed(f"{message} ({name})", details={"field": name})
    event_type = _event_type(request["eventType"])
    if not isinstance(request["payload"], dict):
        raise ValidationFailed(
            f"payload must be a JSON object, not {_json_kind(request['payload'])}",
            details={"field": "payload"},
        )
    model = PUBLISH_MODELS[event_type]
    with _field_errors(""):
        try:
            checked = model.model_validate(
                request, context={"max_message_length": max_message_length}
            )
        except ValidationError as exc:
            raise invalid_event(exc) from None
    payload: Payload = checked.payload  # type: ignore[attr-defined]
    return Event(
        event_id=event_id,
        event_type=event_type,
        aggregate_id=checked.aggregateId,
        occurred_at=_millis(now),
        payload_record=PAYLOAD_RECORD_OF[event_type],
        payload=payload.model_dump(),
        correlation_id=checked.correlationId,
        user_id=checked.userId,
        source=checked.source,
    )


def parse_batch(
    body: bytes,
    *,
    maximum: int,
    now: datetime,
    new_id: Callable[[], str],
    max_message_length: int = MAX_MESSAGE_LENGTH,
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
            parsed.append(
                parse_event_request(
                    item, event_id=new_id(), now=now, max_message_length=max_message_length
                )
            )
        except ApiError as exc:
            parsed.append(exc)
    return parsed


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
        if exc.field and exc.field.rsplit(".", 1)[-1].lower() not in message.lower():
            message = f"{message} ({field})"
        raise ValidationFailed(message, details={"field": field}) from None


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


def parse_query(model: type[Q], query: Mapping[str, str]) -> Q:
    """The query parameters ``model`` declares, checked by it; a 400 naming the first bad one."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in query:
            continue
        many = get_origin(field.annotation) is list and hasattr(query, "getall")
        values[name] = query.getall(name) if many else query[name]  # type: ignore[attr-defined]
    return parse_model(model, values)


def parse_model(model: type[Q], values: Mapping[str, Any]) -> Q:
    """Values (a query, a JSON body) checked by ``model``; a 400 naming the first bad field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise field_error(model, exc, values) from None


def field_error(
    model: type[BaseModel], exc: ValidationError, values: Mapping[str, Any]
) -> BadRequest:
    error = exc.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    kind = error["type"]
    given = str(values.get(field, ""))[:40]
    details = {"field": field[:255]}
    if kind == "extra_forbidden":
        allowed = list(model.model_fields)
        return BadRequest(
            f"Unknown field {field[:60]!r}; allowed: {', '.join(allowed)}",
            details={**details, "allowed": allowed},
        )
    if kind in WHOLE_NUMBER_ERRORS:
        maximum = _maximum(model, field)
        wanted = "a whole number" if maximum is None else f"a whole number from 0 to {maximum}"
        return BadRequest(f"{field} must be {wanted}, got {given!r}", details=details)
    if kind == "date_time":
        return BadRequest(
            f"{field} must be an ISO-8601 date-time such as 2024-05-01T09:30:00Z, got {given!r}",
            details=details,
        )
    if kind == "bool_type":
        return BadRequest(f"{field} must be true or false", details=details)
    if kind == "string_type":
        return BadRequest(f"{field} must be a string", details=details)
    return BadRequest(f"{field}: {error['msg']}", details=details)


WHOLE_NUMBER_ERRORS = frozenset(
    {"whole_number", "less_than_equal", "greater_than_equal", "int_type", "int_from_float"}
)


def _maximum(model: type[BaseModel], field: str) -> int | None:
    """The ``maximum`` the model's schema gives ``field`` (the document's own bound)."""
    prop = model.model_json_schema()["properties"].get(field, {})
    for option in prop.get("anyOf", [prop]):
        if isinstance(option.get("maximum"), int):
            return int(option["maximum"])
    return None
