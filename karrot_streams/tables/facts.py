"""The facts the aggregate stages read, one TypedDict per kind, and the bytes of their keys.

``pipeline/facts.py`` writes them, ``tables/agents.py`` reads them. On the wire each is the
orjson encoding of the dict, its keys in the order the producer writes them (base fields first).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from karrot_streams.tables import codec

#: The one currency of the daily payment volume (the volume facts' key).
CURRENCY = "KRW"


class FactBase(TypedDict):
    """Where a fact comes from: its event, and the input partition and offset it was read at."""

    occurred_at: float
    #: ``<input topic>:<partition>``: the replay guard's mark key.
    source: str
    offset: int
    event_id: str
    #: The offset of the fact the pipeline sent just before it in the same send, for the same
    #: topic, key, source (and window, for windowed counts); absent for the first. A resend can
    #: land a fact behind a later one; ``prev`` lets the stage tell (tables/replay_guard.py).
    prev: NotRequired[int]


class ListedFact(FactBase):
    """An item listed (ITEM_CREATED), keyed by item."""

    kind: Literal["LISTED"]
    item_id: str
    seller_id: str
    category: str
    amount: int


class SoldFact(FactBase):
    """A completed sale (PAYMENT_COMPLETED), keyed by item, by seller and by currency."""

    kind: Literal["SOLD"]
    item_id: str
    seller_id: str
    amount: int
    fee: int
    net: int


class NewUserFact(FactBase):
    """A new user (USER_CREATED), keyed by region."""

    kind: Literal["USER"]
    region: str


#: What the item-keyed stage reads.
ItemFact = ListedFact | SoldFact
#: Any fact the pipeline produces.
AnyFact = ListedFact | SoldFact | NewUserFact


class CategoryEffectFact(TypedDict):
    """What the item stage sends the category stage: a listing or a sale, and its position."""

    kind: str  # "LISTED" | "SOLD"
    category: str
    amount: int
    occurred_at: float
    #: ``<item-stage partition>|<input topic>:<partition>``: the category stage's mark key.
    source: str
    position: int
    #: ``prev`` (see FactBase) of this category and source, and of its hour for a listing.
    prev: NotRequired[int]
    prev_hour: NotRequired[int]


def table_key(key: str) -> bytes:
    """A key serialised exactly as Faust serialises a ``str`` table key (JSON, Faust's codec)."""
    return codec.key_bytes(key)
