"""The API's bodies and query parameters as typed models: what the views read and answer.

The OpenAPI document (web/openapi.py) is generated from these models and the route table. The
publish body embeds the payload models of events/payloads.py, the stream's own rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel
from pydantic_core import PydanticCustomError

from karrot_streams.dlq.selection import InvalidSelection, parse_instant
from karrot_streams.events.payloads import (
    ChatMessage,
    EnvelopeFields,
    ItemCreated,
    Payment,
    UserCreated,
)
from karrot_streams.events.types import EventType
from karrot_streams.tables.consistency import TOKEN_LIST_PATTERN, TOKEN_PATTERN

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
INSTANT_HELP = "ISO-8601 UTC, milliseconds, `Z`"

Instant = Annotated[str, Field(description=INSTANT_HELP)]
Count = Annotated[int, Field(ge=0)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- Request bodies ---------------------------------------------------------------------------


class _Publish(EnvelopeFields):
    """One event to publish; unknown fields are ignored (the seed's EventRequest)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class PublishUserCreated(_Publish):
    model_config = ConfigDict(title=EventType.USER_CREATED.value)
    eventType: Literal[EventType.USER_CREATED]
    payload: UserCreated


class PublishItemCreated(_Publish):
    model_config = ConfigDict(title=EventType.ITEM_CREATED.value)
    eventType: Literal[EventType.ITEM_CREATED]
    payload: ItemCreated


class PublishPaymentRequested(_Publish):
    model_config = ConfigDict(title=EventType.PAYMENT_REQUESTED.value)
    eventType: Literal[EventType.PAYMENT_REQUESTED]
    payload: Payment


class PublishPaymentCompleted(_Publish):
    model_config = ConfigDict(title=EventType.PAYMENT_COMPLETED.value)
    eventType: Literal[EventType.PAYMENT_COMPLETED]
    payload: Payment


class PublishChatMessageSent(_Publish):
    model_config = ConfigDict(title=EventType.CHAT_MESSAGE_SENT.value)
    eventType: Literal[EventType.CHAT_MESSAGE_SENT]
    payload: ChatMessage


PublishModel = (
    PublishUserCreated
    | PublishItemCreated
    | PublishPaymentRequested
    | PublishPaymentCompleted
    | PublishChatMessageSent
)
#: The request model of each event type (the publish body's ``eventType`` picks it).
PUBLISH_MODELS: dict[EventType, type[_Publish]] = {
    EventType.USER_CREATED: PublishUserCreated,
    EventType.ITEM_CREATED: PublishItemCreated,
    EventType.PAYMENT_REQUESTED: PublishPaymentRequested,
    EventType.PAYMENT_COMPLETED: PublishPaymentCompleted,
    EventType.CHAT_MESSAGE_SENT: PublishChatMessageSent,
}


class PublishRequest(RootModel[Annotated[PublishModel, Field(discriminator="eventType")]]):
    """One event to publish: its type names its payload record (contract)."""


class BatchRequest(Model):
    """``maxItems`` is KARROT_BATCH_PUBLISH_MAX (set in the served document)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    events: Annotated[list[PublishRequest], Field(min_length=1)]


class RedriveRequest(Model):
    """Filters; {} redrives the whole topic. An unknown field is a 400."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    partition: Annotated[int, Field(ge=0, le=INT_MAX, strict=True)] | None = None
    offset: Annotated[int, Field(ge=0, le=LONG_MAX, strict=True)] | None = None
    since: BodyInstant | None = None
    until: BodyInstant | None = None
    exceptionClass: Annotated[str, Field(strict=True)] | None = None
    dryRun: Annotated[bool, Field(strict=True)] = False


# --- Query parameters -------------------------------------------------------------------------


def _digits(value: Any) -> Any:
    """A query's whole number: ASCII digits only (no sign, no space, no ``1.0``, not empty)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError("whole_number", "not a whole number")
    return int(value) if isinstance(value, str) else value


def _instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_instant(value, "")
        except InvalidSelection:
            raise PydanticCustomError("date_time", "not an ISO-8601 date-time") from None
    return value


QueryInstant = Annotated[datetime, BeforeValidator(_instant)]


def _body_instant(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("date_time", "not an ISO-8601 date-time")
    return _instant(value)


#: A date-time in a JSON body: a string only (a number is not a moment here).
BodyInstant = Annotated[datetime, BeforeValidator(_body_instant)]
QueryPartition = Annotated[int, Field(ge=0, le=INT_MAX), BeforeValidator(_digits)]
QueryOffset = Annotated[int, Field(ge=0, le=LONG_MAX), BeforeValidator(_digits)]


class RecentQuery(Model):
    """``GET /api/v1/monitoring/dlq``."""

    limit: Annotated[
        int, Field(ge=0, le=100, description="Letters shown"), BeforeValidator(_digits)
    ] = 20


class DeadLetterQuery(Model):
    """``GET /api/v1/dlq/{topic}/messages``: the filters, and where to read."""

    limit: Annotated[
        int, Field(ge=0, le=1000, description="Letters shown"), BeforeValidator(_digits)
    ] = 100
    since: Annotated[QueryInstant, Field(description="Failed at or after")] | None = None
    until: Annotated[QueryInstant, Field(description="Failed before")] | None = None
    exceptionClass: Annotated[str, Field(description="The exception_class header")] | None = None
    partition: Annotated[QueryPartition, Field(description="With offset: one letter")] | None = None
    offset: Annotated[QueryOffset, Field(description="With partition: one letter")] | None = None
    fromOffset: Annotated[QueryOffset, Field(description="Needs partition")] | None = None
    toOffset: Annotated[QueryOffset, Field(description="Needs partition")] | None = None


class ConsistencyQuery(Model):
    """The consistency tokens of a table query (web/consistency.py), and how long it may wait."""

    consistencyToken: (
        Annotated[
            str,
            Field(
                pattern=TOKEN_LIST_PATTERN,
                description="Tokens publishes answered (comma-separated): the figures include"
                " their events, or the answer is 409 NOT_YET_CONSISTENT once the wait runs out",
            ),
        ]
        | None
    ) = None
    consistencyWaitMs: Annotated[
        int,
        Field(
            ge=0,
            le=600_000,
            description="How long to wait for the tokens' events (capped by"
            " KARROT_CONSISTENCY_WAIT_MAX_S)",
        ),
        BeforeValidator(_digits),
    ] = 5000


# --- Response bodies --------------------------------------------------------------------------


class ErrorResponse(Model):
    """Every error of /api/v1 (the seed's ErrorResponse)."""

    code: Annotated[str, Field(examples=["INVALID_REQUEST"])]
    message: str
    timestamp: Instant
    path: str
    details: dict[str, Any] | None


ConsistencyToken = Annotated[
    str,
    Field(
        pattern=TOKEN_PATTERN,
        description="Where the event was written: give it to a table query"
        " (consistencyToken) to read figures that include it",
    ),
]


class Published(Model):
    eventId: str
    status: Literal["PUBLISHED"]
    publishedAt: Instant
    topic: str
    partition: int
    offset: int
    consistencyToken: ConsistencyToken


class StoredEvent(Model):
    eventId: str
    eventType: str
    aggregateId: str
    status: Literal["CREATED", "PUBLISHED", "PROCESSED", "FAILED"]
    eventTime: Instant
    publishedAt: Instant | None
    failureReason: str | None


class BatchPublished(Model):
    index: int
    eventId: str
    status: Literal["PUBLISHED"]
    topic: str
    partition: int
    offset: int
    consistencyToken: ConsistencyToken


class BatchFailed(Model):
    index: int
    status: Literal["FAILED"]
    code: str
    message: str
    details: dict[str, Any] | None


class BatchResult(Model):
    results: list[BatchPublished | BatchFailed]


class CategoryStats(Model):
    """Prices in KRW; min and max null when no item."""

    category: str
    itemCount: Count
    totalPrice: int
    averagePrice: float
    minPrice: int | None
    maxPrice: int | None
    soldCount: Count
    soldAmount: int


class Categories(Model):
    categories: list[CategoryStats]


class HourWindow(Model):
    start: Instant
    end: Instant
    itemCount: Count


class CategoryHourly(Model):
    category: str
    windows: list[HourWindow]


class SellerSales(Model):
    """feeAmount + netAmount = grossAmount; an unknown seller has zeros."""

    sellerId: str
    salesCount: Count
    grossAmount: int
    feeAmount: int
    netAmount: int
    lastSaleAt: Instant | None


class PaymentDay(Model):
    start: Instant
    end: Instant
    paymentCount: Count
    totalAmount: int


class PaymentsDaily(Model):
    currency: str
    days: list[PaymentDay]


class UsersDay(Model):
    start: Instant
    end: Instant
    newUsers: Count


class RegionNewUsers(Model):
    region: str
    days: list[UsersDay]


class DeadLetter(Model):
    topic: str
    partition: int
    offset: int
    timestamp: Instant
    key: str | None
    headers: dict[str, str | None]


class DeadLetterMessage(DeadLetter):
    value: Annotated[Any, Field(description="The Avro envelope, null if undecodable")]
    valueBase64: str | None
    redriven: bool


class ScannedRange(Model):
    partition: int
    fromOffset: int
    toOffset: int


class Scanned(Model):
    records: int
    bytes: int
    partitions: list[ScannedRange]


class DeadLetterMessages(Model):
    topic: str
    total: int
    complete: bool
    scanned: Scanned
    messages: list[DeadLetterMessage]


class RedriveTarget(Model):
    topic: str
    partition: int
    offset: int


class RedriveOutcome(Model):
    partition: int
    offset: int
    exceptionClass: str | None
    failedAt: str | None
    status: Literal["REDRIVEN", "ALREADY_REDRIVEN", "WOULD_REDRIVE"]
    target: RedriveTarget | None
    consistencyToken: Annotated[
        str | None,
        Field(
            description="Where the letter was redriven to, as a publish's token: a table query"
            " given it answers with figures that include the event (null: not redriven, or"
            " its value is not an event)"
        ),
    ]


class RedriveReport(Model):
    dryRun: bool
    selected: int
    redriven: int
    alreadyRedriven: int
    messages: list[RedriveOutcome]


class ComponentHealth(Model):
    status: Literal["UP", "DOWN"]
    details: dict[str, Any]


class Health(Model):
    status: Literal["UP", "DOWN"]
    components: dict[str, ComponentHealth]


class LetterCount(Model):
    count: int


class MonitoringDeadLetters(Model):
    topics: dict[str, LetterCount]
    recent: list[DeadLetter]


class Stats(Model):
    sampledAt: Instant
    worker: dict[str, Any]
    topics: dict[str, Any]
    lag: list[dict[str, Any]]
    eventStore: dict[str, Any]
