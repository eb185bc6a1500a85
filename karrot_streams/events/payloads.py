"""The payload records of the contract as typed models: the one statement of the payload rules.

The stream validates each decoded payload with these models (``validation.validate_payload``)
and the API validates each publish body with the same models (``web/http/models.py``), whose
JSON Schema is the OpenAPI document's: an event the API accepts is one the pipeline accepts.

Every rule is a constraint the models both check and state in their schema; ``invalid_event``
turns pydantic's first error into the seed's message and the field to fix.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from karrot_streams.events.failures import InvalidEvent
from karrot_streams.events.types import NAMESPACE

EMAIL_PATTERN: Final = r"^[A-Za-z0-9+_.-]+@([^\x00\n]+)$"
MAX_MESSAGE_LENGTH: Final = 1000
MAX_ID_LENGTH: Final = 255  # event_store keys are VARCHAR(255); an id is a key somewhere
LONG_MAX: Final = 2**63 - 1
#: Not blank (one character that is not white space: the seed's @NotBlank), and no NUL anywhere
#: (PostgreSQL text cannot hold one): the schema says what the check does.
NOT_BLANK: Final = r"^[^\x00]*[^\s\x00][^\x00]*$"
#: Optional text: anything without NUL.
NO_NUL: Final = r"^[^\x00]*$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL: such a value could never be stored or looked up.
        raise PydanticCustomError("nul", "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON's "\ud800"): Avro and PostgreSQL take UTF-8 only.
        raise PydanticCustomError("lone_surrogate", "is not valid Unicode text") from None
    return value


def _whole_number(value: Any) -> Any:
    """A float with no fraction is the integer it equals (JSON Schema's integer); nothing else
    changes: a string, a boolean or a fraction stays what it is and fails the strict int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _blank_is_null(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _message_length(value: str, info: ValidationInfo) -> str:
    limit = (info.context or {}).get("max_message_length", MAX_MESSAGE_LENGTH)
    if len(value) > limit:
        raise PydanticCustomError(
            "message_too_long",
            "Message too long: {length} characters, at most {limit}",
            {"length": len(value), "limit": limit},
        )
    return value


#: A required id: a non-blank string of at most 255 characters, without NUL.
Id = Annotated[
    str,
    StringConstraints(strict=True, pattern=NOT_BLANK, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_nul),
]
#: Required free text: non-blank, without NUL.
Text = Annotated[str, StringConstraints(strict=True, pattern=NOT_BLANK), AfterValidator(_no_nul)]
#: Optional text: null, or blank (read as null), or text without NUL.
OptionalText = Annotated[
    Annotated[str, StringConstraints(strict=True, pattern=NO_NUL), AfterValidator(_no_nul)] | None,
    BeforeValidator(_blank_is_null),
]
Email = Annotated[
    str,
    StringConstraints(strict=True, pattern=EMAIL_PATTERN, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_nul),
]
Message = Annotated[
    str,
    StringConstraints(strict=True, pattern=NOT_BLANK, max_length=MAX_MESSAGE_LENGTH),
    AfterValidator(_no_nul),
]
#: KRW as Avro long: a whole number (``5.0`` is one), never a string or a boolean.
Price = Annotated[int, Field(strict=True, ge=0, le=LONG_MAX), BeforeValidator(_whole_number)]
Amount = Annotated[int, Field(strict=True, gt=0, le=LONG_MAX), BeforeValidator(_whole_number)]


class EnvelopeFields(BaseModel):
    """The envelope's own fields that carry a rule (its id, type and time are the producer's)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    aggregateId: Id
    correlationId: OptionalText = None
    userId: OptionalText = None
    source: OptionalText = None


def validate_envelope(fields: Any) -> EnvelopeFields:
    try:
        return EnvelopeFields.model_validate(fields)
    except ValidationError as exc:
        raise invalid_event(exc) from None


class Payload(BaseModel):
    """A payload record. Unknown fields are ignored (Avro has nowhere to put them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class UserCreated(Payload):
    userId: Id
    email: Email
    nickname: Text
    region: OptionalText = None


class ItemCreated(Payload):
    itemId: Id
    sellerId: Id
    title: Text
    price: Price
    category: Text
    region: OptionalText = None


class Payment(Payload):
    paymentId: Id
    buyerId: Id
    sellerId: Id
    itemId: Id
    amount: Amount


class ChatMessage(Payload):
    chatRoomId: Id
    senderId: Id
    # Its limit is KARROT_MAX_MESSAGE_LENGTH (validation context), 1000 unless set.
    message: Annotated[
        str,
        StringConstraints(strict=True, pattern=NOT_BLANK),
        AfterValidator(_no_nul),
        AfterValidator(_message_length),
        Field(json_schema_extra={"maxLength": MAX_MESSAGE_LENGTH}),
    ]


#: The model of each payload record, by its full Avro name.
PAYLOAD_MODELS: dict[str, type[Payload]] = {
    f"{NAMESPACE}.{model.__name__}": model
    for model in (UserCreated, ItemCreated, Payment, ChatMessage)
}

#: The seed's messages for a rule broken, by (field, pydantic error type).
_SEED_MESSAGES = {
    ("email", "string_pattern_mismatch"): "Invalid email format",
    ("price", "greater_than_equal"): "Price cannot be negative",
    ("amount", "greater_than"): "Amount must be positive",
}


def message_of(error: Any, field: str) -> str:  # noqa: PLR0911  one message per error kind
    """The message for one pydantic error of ``field`` (the seed's where it has one)."""
    kind = error["type"]
    seed = _SEED_MESSAGES.get((field, kind))
    if seed is not None:
        return seed
    if kind in {"string_pattern_mismatch", "nul"} and "\x00" in str(error.get("input", "")):
        return f"{field} contains a NUL character"
    if kind in {"lone_surrogate", "string_unicode"}:
        return f"{field} is not valid Unicode text (lone surrogate)"
    blank = kind == "string_pattern_mismatch" and error["ctx"]["pattern"] == NOT_BLANK
    if kind == "missing" or blank or (kind.endswith("_type") and error.get("input") is None):
        return f"Required field missing: {field}"
    if kind == "string_type":
        return f"{field} must be a string"
    if kind in {"int_type", "int_from_float", "int_parsing"}:
        return f"{field} must be a whole number of KRW"
    if kind == "string_too_long":
        if field == "message":
            return f"Message too long: more than {error['ctx']['max_length']} characters"
        return f"{field} is longer than {error['ctx']['max_length']} characters"
    if kind in {"less_than_equal", "less_than"}:
        return f"{field} is out of range for a 64-bit whole number"
    if kind == "nul":
        return f"{field} contains a NUL character"
    if kind == "message_too_long":
        return str(error["msg"])
    return f"{field}: {error['msg']}"


def invalid_event(exc: ValidationError, *, skip: int = 0) -> InvalidEvent:
    """The first error of ``exc`` as the pipeline's InvalidEvent, its field a dotted path
    (``skip`` leading parts of the location left out: a union's tag)."""
    error = exc.errors(include_url=False)[0]
    path = [str(part) for part in error["loc"][skip:]]
    field = ".".join(path)
    return InvalidEvent(message_of(error, path[-1] if path else "payload"), field=field or None)


def validate_record(
    record: str, payload: Any, *, max_message_length: int = MAX_MESSAGE_LENGTH
) -> Payload:
    model = PAYLOAD_MODELS.get(record)
    if model is None:
        raise InvalidEvent(f"Unknown payload record {record}", field="payload")
    try:
        return model.model_validate(payload, context=_context(max_message_length))
    except ValidationError as exc:
        raise invalid_event(exc) from None


@functools.cache
def _context(max_message_length: int) -> Mapping[str, int]:
    """The validation context of a limit: one dict per limit, not one per payload (hot path)."""
    return MappingProxyType({"max_message_length": max_message_length})
