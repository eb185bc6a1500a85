"""Replay-safe aggregate updates: a record counts once, however often it is delivered."""

from __future__ import annotations

from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.replay_guard import position_of


def at(source: str, offset: int) -> agg.Applied:
    return agg.Applied(source, position_of(offset))


def test_listing_counts_once_and_tracks_prices() -> None:
    stats = agg.CategoryStats("도서")
    first = agg.apply_listing(stats, 5000, at("p0", 1))
    assert first is not None
    second = agg.apply_listing(first, 1000, at("p0", 2))
    assert second is not None
    assert agg.apply_listing(second, 1000, at("p0", 2)) is None
    assert agg.apply_listing(second, 7000, at("p0", 1)) is None
    assert second.to_json() == {
        "category": "도서",
        "itemCount": 2,
        "totalPrice": 6000,
        "averagePrice": 3000.0,
        "minPrice": 1000,
        "maxPrice": 5000,
        "soldCount": 0,
        "soldAmount": 0,
    }
    other_partition = agg.apply_listing(second, 9000, at("p1", 1))
    assert other_partition is not None
    assert other_partition.item_count == 3


def test_empty_category_reads_as_zeros() -> None:
    assert agg.category_from({}, "x").to_json() == {
        "category": "x",
        "itemCount": 0,
        "totalPrice": 0,
        "averagePrice": 0,
        "minPrice": None,
        "maxPrice": None,
        "soldCount": 0,
        "soldAmount": 0,
    }


def test_values_survive_the_changelog_round_trip() -> None:
    stats = agg.apply_listing(agg.CategoryStats("c"), 10, at("p0", 5))
    assert stats is not None
    assert agg.category_from(agg.to_value(stats), "c") == stats
    state, _ = agg.apply_item_sold(agg.ItemState("i"), 100, 1.0, at("s:0", 3), "s:0:3")
    assert agg.item_from(agg.to_value(state), "i") == state


def test_seller_sales_sum_fee_and_net() -> None:
    sales = agg.SellerSales("s1")
    once = agg.apply_seller_sale(sales, 10_000, 330, 9_670, 100.0, at("pay:0", 7))
    assert once is not None
    twice = agg.apply_seller_sale(once, 5_000, 165, 4_835, 50.0, at("pay:0", 9))
    assert twice is not None
    assert agg.apply_seller_sale(twice, 5_000, 165, 4_835, 50.0, at("pay:0", 9)) is None
    out = twice.to_json()
    assert out["salesCount"] == 2
    assert out["grossAmount"] == 15_000
    assert out["feeAmount"] + out["netAmount"] == out["grossAmount"]
    assert out["lastSaleAt"] == "1970-01-01T00:01:40.000Z"


def test_sale_before_listing_waits_then_counts_for_the_category() -> None:
    state = agg.ItemState("i1")
    state, effects = agg.apply_item_sold(state, 3000, 10.0, at("pay:1", 4), "pay:1:4")
    assert effects == []
    assert state.pending_sales == ((3000, 10.0),)
    state, effects = agg.apply_item_listed(
        state, "도서", "s1", 2500, 5.0, at("items:0", 8), "items:0:8"
    )
    assert [(e.kind, e.amount) for e in effects] == [("LISTED", 2500), ("SOLD", 3000)]
    assert [e.position for e in effects] == [position_of(8), position_of(8) + 1]
    assert state.pending_sales == ()
    state, effects = agg.apply_item_sold(state, 4000, 11.0, at("pay:1", 9), "pay:1:9")
    assert [(e.category, e.kind, e.amount) for e in effects] == [("도서", "SOLD", 4000)]


def test_replayed_item_record_resends_exactly_its_first_effects() -> None:
    state, first = agg.apply_item_listed(
        agg.ItemState("i1"), "도서", "s1", 2500, 5.0, at("items:0", 8), "items:0:8"
    )
    again_state, again = agg.apply_item_listed(
        state, "도서", "s1", 2500, 5.0, at("items:0", 8), "items:0:8"
    )
    assert again_state is state
    assert again == first
    # Downstream, the category skips the resent effects it already has.
    stats = agg.apply_listing(
        agg.CategoryStats("도서"), 2500, agg.Applied("0|items:0", first[0].position)
    )
    assert stats is not None
    assert agg.apply_listing(stats, 2500, agg.Applied("0|items:0", again[0].position)) is None


def test_counter_counts_once() -> None:
    counter = agg.apply_count(agg.Counter(), 700, at("v:0", 1))
    assert counter is not None
    assert agg.apply_count(counter, 700, at("v:0", 1)) is None
    assert (counter.count, counter.amount) == (1, 700)
