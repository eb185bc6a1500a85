"""Read-your-writes for the table queries: the tokens a query gives, and the wait for them.

A query names tokens (``?consistencyToken=``, a comma-separated list) and how long it may wait
(``?consistencyWaitMs=``, capped by KARROT_CONSISTENCY_WAIT_MAX_S). The worker that answers the
key (the owner, after forwarding) finds each token's event (this worker's cache of what it
published, else the event store), and the values the event must be in (``Need``); it answers
once every one includes its event, or 409 NOT_YET_CONSISTENT when the wait runs out. A token
whose event touches the key asked for in no way needs nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from karrot_streams.events.enrichment import normalize_category
from karrot_streams.events.failures import TransientFailure
from karrot_streams.events.model import Event
from karrot_streams.events.types import EventType
from karrot_streams.pipeline.facts import UNKNOWN_REGION
from karrot_streams.tables.consistency import (
    Token,
    effect_source,
    fact_position,
    includes,
    parse_tokens,
)
from karrot_streams.tables.declarations import window_of
from karrot_streams.tables.facts import CURRENCY
from karrot_streams.web.http import models
from karrot_streams.web.http.errors import (
    BadRequest,
    NotFound,
    NotYetConsistent,
    ServiceUnavailable,
)
from karrot_streams.web.http.requests import parse_query
from karrot_streams.web.owner_forwarding import ask_owner, is_local, partition_of

if TYPE_CHECKING:
    from karrot_streams.events.topics import TopicNames
    from karrot_streams.publishing.events import Published
    from karrot_streams.tables.declarations import Tables
    from karrot_streams.worker_app import KarrotApp

#: Where a worker asks a peer for an item's value (web/internal_views.py).
ITEM_PATH = "/internal/items/{item_id}"
POLL_S = 0.005
#: Events this worker published (or looked up), by id: a query here needs no database read.
CACHE_SIZE = 20_000
_WRITTEN: OrderedDict[str, Written] = OrderedDict()


@dataclass(frozen=True, slots=True)
class Written:
    """A token's event as the tables key it."""

    token: Token
    #: ``<physical input topic>:<partition>``: the pipeline's name for where it was read.
    source: str
    event_type: EventType
    occurred_at: float  # epoch seconds
    payload: Mapping[str, Any]

    @property
    def category(self) -> str | None:
        category = self.payload.get("category")
        return normalize_category(category) if isinstance(category, str) else None

    @property
    def region(self) -> str:
        region = self.payload.get("region")
        return (" ".join(region.split()) if isinstance(region, str) else "") or UNKNOWN_REGION


@dataclass(frozen=True, slots=True)
class Need:
    """The value of ``key`` in ``table`` must include the record at ``position`` of ``source``."""

    table: Any
    key: Any
    source: str
    position: int

    def met(self) -> bool:
        return includes(self.table[self.key], self.source, self.position)


def published_token(published: Published, event: Event, names: TopicNames) -> Token:
    """The token of an event just published, noted here: a query on this worker with it reads
    no database."""
    token = Token(published.topic, published.partition, published.offset, published.event_id)
    remember(token, event, names.physical(published.topic))
    return token


def remember(token: Token, event: Event, physical_topic: str) -> None:
    _keep(
        Written(
            token,
            f"{physical_topic}:{token.partition}",
            event.event_type,
            event.occurred_at.timestamp(),
            dict(event.payload),
        )
    )


def _keep(written: Written) -> None:
    _WRITTEN[written.token.event_id] = written
    _WRITTEN.move_to_end(written.token.event_id)
    while len(_WRITTEN) > CACHE_SIZE:
        _WRITTEN.popitem(last=False)


def tokens_of(request: web.Request) -> tuple[list[Token], float]:
    """The request's tokens and the wait it allows (seconds, before the setting's cap)."""
    query = parse_query(models.ConsistencyQuery, request.query)
    if query.consistencyToken is None:
        return [], 0.0
    try:
        tokens = parse_tokens(query.consistencyToken)
    except ValueError as exc:
        raise BadRequest(str(exc), details={"field": "consistencyToken"}) from None
    return tokens, query.consistencyWaitMs / 1000


async def resolve(app: KarrotApp, token: Token) -> Written:
    """The token's event: from this worker's cache, else the event store (404 if unknown)."""
    cached = _WRITTEN.get(token.event_id)
    if cached is not None and cached.token == token:
        return cached
    resources = app.resources
    try:
        stored = await asyncio.wait_for(resources.store.get(token.event_id), 10.0)
    except (TransientFailure, TimeoutError) as exc:
        raise ServiceUnavailable(
            "The event store is unavailable", details={"reason": str(exc)[:300]}
        ) from exc
    if stored is None:
        raise NotFound(
            f"No event with id {token.event_id} (consistency token {token})",
            details={"consistencyToken": str(token)},
        )
    data = json.loads(stored.event_data) if stored.event_data else {}
    physical = resources.topics.names.physical(token.topic)
    written = Written(
        token,
        f"{physical}:{token.partition}",
        EventType(stored.event_type),
        occurred_at_of(data, stored.event_time),
        payload_of(data),
    )
    _keep(written)
    return written


class Unmet:
    """What a need that cannot be stated yet stands for (the items stage has not applied the
    sale, on another worker): not met, asked again on the next look."""

    def met(self) -> bool:
        return False


def occurred_at_of(data: Any, fallback: datetime) -> float:
    """Epoch seconds of the event's ``occurredAt`` (ISO text, or Avro's milliseconds)."""
    value = data.get("occurredAt") if isinstance(data, dict) else None
    try:
        if isinstance(value, str):
            return datetime.fromisoformat(value).timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) / 1000
    except ValueError:
        pass
    return fallback.timestamp()


def payload_of(data: Any) -> Mapping[str, Any]:
    """The payload of an event_store row's data: the API's and the pipeline's JSON (a dict), a
    dead letter's decoded Avro (its union as ``[record name, dict]``), or nothing usable."""
    payload = data.get("payload") if isinstance(data, dict) else None
    if isinstance(payload, list | tuple) and len(payload) == 2:
        payload = payload[1]
    return payload if isinstance(payload, dict) else {}


#: What a query asks of one token's event: the values it must be in (none: it touches none).
Needs = Callable[["Written"], Awaitable[Sequence[Need | Unmet]]]


async def consistent(app: KarrotApp, request: web.Request, needs: Needs) -> None:
    """Return once every token's event is in the values ``needs`` names; 409 when the wait (the
    caller's, capped by the setting) runs out first. No tokens: at once."""
    tokens, wait_s = tokens_of(request)
    if not tokens:
        return
    cap = app.resources.settings.consistency_wait_max_s
    deadline = time.monotonic() + min(wait_s, cap)
    written = [await resolve(app, token) for token in tokens]
    while True:
        pending = []
        for w in written:
            wanted = await needs(w)
            if not all(need.met() for need in wanted):
                pending.append(w.token)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise NotYetConsistent(
                "The table does not include every event of the consistency tokens yet;"
                " retry, or give a longer consistencyWaitMs",
                details={
                    "pending": [str(token) for token in pending],
                    "waitedMs": round(min(wait_s, cap) * 1000),
                    "maxWaitMs": round(cap * 1000),
                },
            )
        await asyncio.sleep(POLL_S)


def items_partition(app: KarrotApp, tables: Tables, item_id: str) -> int:
    return partition_of(item_id, tables.items.partitions, app.producer.partitioner)


def category_needs(app: KarrotApp, tables: Tables, category: str) -> Needs:
    """A listing of ``category``; a sale of an item listed in it. A sale's category is the
    item's: known once the items stage has applied the sale, read from the items table here
    or, when another worker holds the item's partition, asked of it."""

    async def needs(w: Written) -> Sequence[Need | Unmet]:
        item_id = w.payload.get("itemId")
        if not isinstance(item_id, str):
            return []
        _, position = fact_position(w.token.offset)
        q = items_partition(app, tables, item_id)
        into_category = Need(tables.categories, category, effect_source(q, w.source), position)
        if w.event_type is EventType.ITEM_CREATED:
            return [into_category] if w.category == category else []
        if w.event_type is not EventType.PAYMENT_COMPLETED:
            return []
        return await _sale_needs(app, tables, category, w, item_id, into_category)

    return needs


async def _sale_needs(
    app: KarrotApp, tables: Tables, category: str, w: Written, item_id: str, itself: Need
) -> Sequence[Need | Unmet]:
    if itself.met():
        return []  # the sale went on to the category itself (its item was listed before it)
    item = await item_value(app, tables, item_id)
    if not includes(item, w.source, itself.position):
        return [Unmet()]  # the items stage has not applied the sale yet
    if item.get("category") != category:
        return []  # not listed (the sale waits at the item), or listed elsewhere
    # The sale went on to the category either itself (listed before it) or with the listing
    # that released it: every effect the item remembers sending must be in the category.
    q = items_partition(app, tables, item_id)
    return [
        Need(tables.categories, category, effect_source(q, coordinate.rsplit(":", 1)[0]), p)
        for coordinate, effects in (item.get("emitted") or {}).items()
        for c, _, _, _, p in effects
        if c == category
    ]


async def item_value(app: KarrotApp, tables: Tables, item_id: str) -> Mapping[str, Any]:
    """The items stage's value of ``item_id``: here, or asked of the worker that holds it."""
    if is_local(app, tables.items, item_id):
        value: Mapping[str, Any] = tables.items[item_id]
        return value
    asked: Mapping[str, Any] = await ask_owner(
        app, tables.items, item_id, ITEM_PATH.format(item_id=item_id)
    )
    return asked


def hourly_needs(app: KarrotApp, tables: Tables, category: str) -> Needs:
    async def needs(w: Written) -> Sequence[Need | Unmet]:
        item_id = w.payload.get("itemId")
        if w.event_type is not EventType.ITEM_CREATED or w.category != category:
            return []
        assert isinstance(item_id, str)  # noqa: S101  the payload model requires it
        table = tables.category_hourly
        source = effect_source(items_partition(app, tables, item_id), w.source)
        key = (category, window_of(table, w.occurred_at))
        return [Need(table, key, source, fact_position(w.token.offset)[1])]

    return needs


def seller_needs(tables: Tables, seller_id: str) -> Needs:
    async def needs(w: Written) -> Sequence[Need | Unmet]:
        if w.event_type is not EventType.PAYMENT_COMPLETED:
            return []
        if w.payload.get("sellerId") != seller_id:
            return []
        return [Need(tables.sellers, seller_id, w.source, fact_position(w.token.offset)[0])]

    return needs


def payments_daily_needs(tables: Tables) -> Needs:
    async def needs(w: Written) -> Sequence[Need | Unmet]:
        if w.event_type is not EventType.PAYMENT_COMPLETED:
            return []
        table = tables.payment_daily
        key = (CURRENCY, window_of(table, w.occurred_at))
        return [Need(table, key, w.source, fact_position(w.token.offset)[0])]

    return needs


def region_needs(tables: Tables, region: str) -> Needs:
    async def needs(w: Written) -> Sequence[Need | Unmet]:
        if w.event_type is not EventType.USER_CREATED or w.region != region:
            return []
        table = tables.users_daily
        key = (region, window_of(table, w.occurred_at))
        return [Need(table, key, w.source, fact_position(w.token.offset)[0])]

    return needs


def local_category_needs(app: KarrotApp, tables: Tables) -> Needs:
    """For the list of every category: the categories this worker holds (its peers wait for
    theirs when the list asks them)."""

    async def needs(w: Written) -> Sequence[Need | Unmet]:
        category = w.category
        item_id = w.payload.get("itemId")
        if w.event_type is EventType.PAYMENT_COMPLETED and isinstance(item_id, str):
            item = await item_value(app, tables, item_id)
            if not includes(item, w.source, fact_position(w.token.offset)[1]):
                return [Unmet()]  # which category is not known before the items stage has it
            category = item.get("category")
        if not category or not is_local(app, tables.categories, category):
            return []
        return await category_needs(app, tables, category)(w)

    return needs
