"""Topic names: the logical names of the domain, and the physical names on the broker.

Validation, the event store, metrics, headers and the HTTP API speak in logical names (the
contract's ``item-events``, ``enriched.item-events``, ``dlq.item-events``). Only what talks to
Kafka uses physical names, which are the logical ones behind ``KARROT_TOPIC_PREFIX``: runs that
share a cluster (tests, the benchmark) each get topics of their own and never read another's
events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from karrot_streams.events.types import dead_letter_topic, enriched_topic

#: What Kafka allows in a topic name, so a prefix can never make a name the broker refuses.
LEGAL_PREFIX = re.compile(r"[a-zA-Z0-9._-]*")


def check_prefix(prefix: str) -> str:
    if not LEGAL_PREFIX.fullmatch(prefix):
        raise ValueError(
            f"KARROT_TOPIC_PREFIX={prefix!r} may hold only letters, digits, '.', '_' and '-'"
            " (the characters of a Kafka topic name)"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Logical topic name <-> physical topic name, for one prefix (empty: the same names)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def physical(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    def logical(self, physical: str) -> str:
        """The logical name of a topic of ours; a name without the prefix is a bug upstream."""
        if not physical.startswith(self.prefix):
            raise ValueError(f"Topic {physical!r} is not under the prefix {self.prefix!r}")
        return physical[len(self.prefix) :]

    def enriched(self, topic: str) -> str:
        """The physical ``enriched.<topic>`` of a logical input topic."""
        return self.physical(enriched_topic(topic))

    def dead_letter(self, topic: str) -> str:
        """The physical ``dlq.<topic>`` of a logical input topic."""
        return self.physical(dead_letter_topic(topic))

    def changelog(self, app_id: str, table: str) -> str:
        """Faust's ``{app id}-{table}-changelog``, behind the prefix."""
        return self.physical(f"{app_id}-{table}-changelog")


@dataclass(frozen=True, slots=True)
class InternalTopics:
    """The physical names of the internal topics between the pipeline and the aggregates.

    They have no logical name anyone outside reads, so they carry the prefix from the start.
    """

    app_id: str
    prefix: str = ""

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.prefix)

    @property
    def item_facts(self) -> str:
        """Keyed by itemId: listings and completed sales, to join a sale to its category."""
        return f"{self.prefix}{self.app_id}.facts.items"

    @property
    def seller_facts(self) -> str:
        """Keyed by sellerId: completed sales."""
        return f"{self.prefix}{self.app_id}.facts.sellers"

    @property
    def volume_facts(self) -> str:
        """Keyed by currency: completed sales, for the daily payment volume."""
        return f"{self.prefix}{self.app_id}.facts.payment-volume"

    @property
    def user_facts(self) -> str:
        """Keyed by region: new users."""
        return f"{self.prefix}{self.app_id}.facts.new-users"

    @property
    def category_effects(self) -> str:
        """Keyed by category: listings and sales, from the item-keyed stage."""
        return f"{self.prefix}{self.app_id}.category-effects"

    def all(self) -> tuple[str, ...]:
        return (
            self.item_facts,
            self.seller_facts,
            self.volume_facts,
            self.user_facts,
            self.category_effects,
        )
