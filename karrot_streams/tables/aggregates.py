"""The aggregate values and their pure, replay-safe update functions.

Each ``apply_*`` returns the new value, or ``None`` when the record was already applied.
Values are plain dicts in tables (JSON in the changelog), dataclasses here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from karrot_streams.tables.replay_guard import Owed, admit


@dataclass(frozen=True, slots=True)
class Applied:
    source: str  # upstream "topic:partition"
    position: int  # offset, or position_of(offset, sub)
    #: The position of the record of its key and source sent just before it (replay_guard.admit).
    prev: int | None = None


@dataclass(frozen=True, slots=True)
class CategoryStats:
    category: str
    item_count: int = 0
    total_price: int = 0
    min_price: int | None = None
    max_price: int | None = None
    sold_count: int = 0
    sold_amount: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    owed: Owed = field(default_factory=dict)  # stored only when not empty

    @property
    def average_price(self) -> float | None:
        return self.total_price / self.item_count if self.item_count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "itemCount": self.item_count,
            "totalPrice": self.total_price,
            "averagePrice": self.average_price if self.average_price is not None else 0,
            "minPrice": self.min_price,
            "maxPrice": self.max_price,
            "soldCount": self.sold_count,
            "soldAmount": self.sold_amount,
        }


@dataclass(frozen=True, slots=True)
class SellerSales:
    seller_id: str
    sales_count: int = 0
    gross_amount: int = 0
    fee_amount: int = 0
    net_amount: int = 0
    last_sale_at: float | None = None  # epoch seconds of the latest sale's event time
    applied: dict[str, int] = field(default_factory=dict)
    owed: Owed = field(default_factory=dict)  # stored only when not empty

    def to_json(self) -> dict[str, Any]:
        return {
            "sellerId": self.seller_id,
            "salesCount": self.sales_count,
            "grossAmount": self.gross_amount,
            "feeAmount": self.fee_amount,
            "netAmount": self.net_amount,
            "lastSaleAt": iso(self.last_sale_at),
        }


@dataclass(frozen=True, slots=True)
class Counter:
    """A count and a sum, for one key in one window."""

    count: int = 0
    amount: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    owed: Owed = field(default_factory=dict)  # stored only when not empty


@dataclass(frozen=True, slots=True)
class ItemState:
    """What the item-keyed stage knows of one item: its category, and sales seen before it."""

    item_id: str
    category: str | None = None
    seller_id: str | None = None
    price: int | None = None
    sold_count: int = 0
    pending_sales: tuple[tuple[int, float], ...] = ()  # (amount, occurred_at) before the listing
    applied: dict[str, int] = field(default_factory=dict)
    owed: Owed = field(default_factory=dict)  # stored only when not empty
    emitted: dict[str, list[list[Any]]] = field(default_factory=dict)


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return (
        datetime.fromtimestamp(epoch_s, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


Aggregate = TypeVar("Aggregate", "CategoryStats", "SellerSales", "Counter", "ItemState")

#: Field names per aggregate type: ``dataclasses.fields`` rebuilds its tuple on every call.
_NAMES: dict[type, tuple[str, ...]] = {}


def _names(kind: type) -> tuple[str, ...]:
    names = _NAMES.get(kind)
    if names is None:
        names = _NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def to_value(obj: CategoryStats | SellerSales | Counter | ItemState) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict deep-copies every nested dict, on the hot path.
    value = {name: getattr(obj, name) for name in _names(type(obj))}
    if not obj.owed:
        del value["owed"]  # nothing owed, nearly always: the value as it was before owed existed
    return value


def replace(obj: Aggregate, **changes: Any) -> Aggregate:
    """``dataclasses.replace`` for the aggregates (no init-only or non-init fields): a copy
    through the constructor, without its per-call field checks."""
    return type(obj)(**{**to_value(obj), **changes})


def category_from(value: dict[str, Any] | None, category: str) -> CategoryStats:
    return CategoryStats(**value) if value else CategoryStats(category=category)


def seller_from(value: dict[str, Any] | None, seller_id: str) -> SellerSales:
    return SellerSales(**value) if value else SellerSales(seller_id=seller_id)


def counter_from(value: dict[str, Any] | None) -> Counter:
    return Counter(**value) if value else Counter()


def item_from(value: dict[str, Any] | None, item_id: str) -> ItemState:
    if not value:
        return ItemState(item_id=item_id)
    pending = tuple((int(a), float(t)) for a, t in value.get("pending_sales", ()))
    return ItemState(**{**value, "pending_sales": pending})


def apply_listing(stats: CategoryStats, price: int, at: Applied) -> CategoryStats | None:
    admitted = admit(stats.applied, stats.owed, at.source, at.position, at.prev)
    if admitted is None:
        return None
    return replace(
        stats,
        item_count=stats.item_count + 1,
        total_price=stats.total_price + price,
        min_price=price if stats.min_price is None else min(stats.min_price, price),
        max_price=price if stats.max_price is None else max(stats.max_price, price),
        applied=admitted[0],
        owed=admitted[1],
    )


def apply_category_sale(stats: CategoryStats, amount: int, at: Applied) -> CategoryStats | None:
    admitted = admit(stats.applied, stats.owed, at.source, at.position, at.prev)
    if admitted is None:
        return None
    return replace(
        stats,
        sold_count=stats.sold_count + 1,
        sold_amount=stats.sold_amount + amount,
        applied=admitted[0],
        owed=admitted[1],
    )


def apply_seller_sale(
    sales: SellerSales, amount: int, fee: int, net: int, occurred_at: float, at: Applied
) -> SellerSales | None:
    admitted = admit(sales.applied, sales.owed, at.source, at.position, at.prev)
    if admitted is None:
        return None
    last = occurred_at if sales.last_sale_at is None else max(sales.last_sale_at, occurred_at)
    return replace(
        sales,
        sales_count=sales.sales_count + 1,
        gross_amount=sales.gross_amount + amount,
        fee_amount=sales.fee_amount + fee,
        net_amount=sales.net_amount + net,
        last_sale_at=last,
        applied=admitted[0],
        owed=admitted[1],
    )


def apply_count(counter: Counter, amount: int, at: Applied) -> Counter | None:
    admitted = admit(counter.applied, counter.owed, at.source, at.position, at.prev)
    if admitted is None:
        return None
    return replace(
        counter,
        count=counter.count + 1,
        amount=counter.amount + amount,
        applied=admitted[0],
        owed=admitted[1],
    )


@dataclass(frozen=True, slots=True)
class CategoryEffect:
    """What an item-stage record does to its category: a listing or a sale, and its position."""

    category: str
    kind: str  # "LISTED" | "SOLD"
    amount: int
    occurred_at: float
    position: int


#: Per item, how many records' effects are remembered for re-emission on replay.
EFFECT_HISTORY = 64


def _remember(
    state: ItemState, coordinate: str, effects: list[CategoryEffect]
) -> dict[str, list[list[Any]]]:
    history = dict(state.emitted)
    history[coordinate] = [
        [e.category, e.kind, e.amount, e.occurred_at, e.position] for e in effects
    ]
    while len(history) > EFFECT_HISTORY:
        del history[next(iter(history))]
    return history


def _replayed(state: ItemState, coordinate: str) -> list[CategoryEffect]:
    """The effects a replayed record had: sent again, the category stage skips what it has."""
    return [
        CategoryEffect(c, k, int(a), float(t), int(p))
        for c, k, a, t, p in state.emitted.get(coordinate, [])
    ]


def apply_item_listed(
    state: ItemState,
    category: str,
    seller_id: str,
    price: int,
    occurred_at: float,
    at: Applied,
    coordinate: str,
) -> tuple[ItemState, list[CategoryEffect]]:
    """Record the item's category; release the sales that arrived before it.

    ``coordinate`` names the source record ("topic:partition:offset"); ``at.position`` is its
    offset scaled by :func:`position_of` so released sales get positions after the listing's.
    """
    admitted = admit(state.applied, state.owed, at.source, at.position, at.prev)
    if admitted is None:
        return state, _replayed(state, coordinate)
    applied, owed = admitted
    if state.category is not None:
        # A second ITEM_CREATED for the same item: the first listing stands.
        return replace(state, applied=applied, owed=owed), []
    effects = [CategoryEffect(category, "LISTED", price, occurred_at, at.position)]
    effects += [
        CategoryEffect(category, "SOLD", amount, t, at.position + n)
        for n, (amount, t) in enumerate(state.pending_sales, start=1)
    ]
    new = replace(
        state,
        category=category,
        seller_id=seller_id,
        price=price,
        sold_count=state.sold_count + len(state.pending_sales),
        pending_sales=(),
        applied=applied,
        owed=owed,
    )
    return replace(new, emitted=_remember(new, coordinate, effects)), effects


def apply_item_sold(
    state: ItemState, amount: int, occurred_at: float, at: Applied, coordinate: str
) -> tuple[ItemState, list[CategoryEffect]]:
    admitted = admit(state.applied, state.owed, at.source, at.position, at.prev)
    if admitted is None:
        return state, _replayed(state, coordinate)
    applied, owed = admitted
    if state.category is None:
        pending = (*state.pending_sales, (amount, occurred_at))
        return replace(state, pending_sales=pending, applied=applied, owed=owed), []
    effects = [CategoryEffect(state.category, "SOLD", amount, occurred_at, at.position)]
    new = replace(state, sold_count=state.sold_count + 1, applied=applied, owed=owed)
    return replace(new, emitted=_remember(new, coordinate, effects)), effects
