"""Names of the internal topics between the pipeline and the aggregates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InternalTopics:
    app_id: str

    @property
    def item_facts(self) -> str:
        """Keyed by itemId: listings and completed sales, to join a sale to its category."""
        return f"{self.app_id}.facts.items"

    @property
    def seller_facts(self) -> str:
        """Keyed by sellerId: completed sales."""
        return f"{self.app_id}.facts.sellers"

    @property
    def volume_facts(self) -> str:
        """Keyed by currency: completed sales, for the daily payment volume."""
        return f"{self.app_id}.facts.payment-volume"

    @property
    def user_facts(self) -> str:
        """Keyed by region: new users."""
        return f"{self.app_id}.facts.new-users"

    @property
    def category_effects(self) -> str:
        """Keyed by category: listings and sales, from the item-keyed stage."""
        return f"{self.app_id}.category-effects"

    def all(self) -> tuple[str, ...]:
        return (
            self.item_facts,
            self.seller_facts,
            self.volume_facts,
            self.user_facts,
            self.category_effects,
        )
