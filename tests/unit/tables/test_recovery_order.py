"""Which of two values of a key recovery keeps: the order of their applied marks as properties,
the marks read from stored bytes, and the verdict the tables give the recovery."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from karrot_streams.runtime.recovery import Verdict
from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.codec import applied_marks, owed_ranges
from karrot_streams.tables.declarations import changelog_verdict
from karrot_streams.tables.replay_guard import Order, mark, order

SOURCES = ["item-events:0", "item-events:1", "0|payment-events:0", "payment-events:3"]
marks = st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 20), max_size=4)
#: Updates to a value: each raises (or adds) one source's mark, as every apply_* does.
updates = st.lists(st.tuples(st.sampled_from(SOURCES), st.integers(1, 5)), max_size=6)


def reference(current: dict[str, int], incoming: dict[str, int]) -> Order:
    """The rule spelt out: a missing source is below every position."""
    sources = set(current) | set(incoming)
    below = {s for s in sources if incoming.get(s, -1) < current.get(s, -1)}
    above = {s for s in sources if incoming.get(s, -1) > current.get(s, -1)}
    if below and above:
        return Order.INCOMPARABLE
    if below:
        return Order.OLDER
    return Order.NEWER if above else Order.EQUAL


@given(marks, marks)
def test_order_is_the_rule(current: dict[str, int], incoming: dict[str, int]) -> None:
    assert order(current, incoming) is reference(current, incoming)


@given(marks, marks)
def test_order_is_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    flipped = {
        Order.NEWER: Order.OLDER,
        Order.OLDER: Order.NEWER,
        Order.EQUAL: Order.EQUAL,
        Order.INCOMPARABLE: Order.INCOMPARABLE,
    }
    assert order(b, a) is flipped[order(a, b)]
    assert order(a, a) is Order.EQUAL


@given(marks, updates, updates)
def test_a_later_value_of_a_key_is_never_older(
    start: dict[str, int], first: list[tuple[str, int]], then: list[tuple[str, int]]
) -> None:
    """A value after more updates is newer than or equal to the earlier one, never older; so a
    zombie's copy that missed the new owner's updates is the older one."""
    earlier = start
    for source, step in first:
        earlier = mark(earlier, source, earlier.get(source, 0) + step)
    later = earlier
    for source, step in then:
        later = mark(later, source, later.get(source, 0) + step)
    assert order(earlier, later) in (Order.NEWER, Order.EQUAL)
    assert order(later, earlier) in (Order.OLDER, Order.EQUAL)
    assert (order(later, earlier) is Order.EQUAL) == (later == earlier)


def test_order_examples() -> None:
    assert order({"a": 5}, {"a": 3}) is Order.OLDER
    assert order({"a": 5, "b": 1}, {"a": 5}) is Order.OLDER  # lacks a source, higher nowhere
    assert order({"a": 5}, {"a": 5, "b": 0}) is Order.NEWER
    assert order({"a": 5, "b": 1}, {"a": 6}) is Order.INCOMPARABLE
    assert order({"a": 5}, {"a": 4, "b": 9}) is Order.INCOMPARABLE
    assert order({}, {}) is Order.EQUAL


aggregates = st.one_of(
    st.builds(agg.SellerSales, seller_id=st.text(max_size=8), applied=marks),
    st.builds(agg.CategoryStats, category=st.text(max_size=8), applied=marks),
    st.builds(agg.Counter, count=st.integers(0, 9), applied=marks),
    st.builds(
        agg.ItemState,
        item_id=st.text(max_size=8),
        category=st.text(max_size=12),
        applied=marks,
        emitted=st.dictionaries(
            st.text(max_size=6),
            st.just([["c", "SOLD", 1, 2.0, 3]]),
            max_size=3,
        ),
    ),
)


@given(aggregates)
def test_marks_read_from_stored_bytes_are_the_values_marks(value: Any) -> None:
    stored = agg.to_value(value)
    assert applied_marks(orjson.dumps(stored)) == value.applied
    # Faust's codec with the stdlib's default separators (a store older than orjson's).
    assert applied_marks(json.dumps(stored).encode()) == value.applied


def test_values_without_marks_have_none() -> None:
    assert applied_marks(b'{"count":1}') is None
    assert applied_marks(b'{"applied":null}') is None
    assert applied_marks(b'{"applied":[1,2]}') is None
    assert applied_marks(b'{"note":"\\"applied\\":{}"}') is None
    assert applied_marks(b"[]") is None


def seller(count: int, applied: dict[str, int]) -> bytes:
    return orjson.dumps(agg.to_value(agg.SellerSales("s", sales_count=count, applied=applied)))


def test_the_tables_verdict() -> None:
    newer = seller(2, {"payment-events:0": 10})
    stale = seller(1, {"payment-events:0": 5})
    assert changelog_verdict(newer, stale) is Verdict.KEEP
    assert changelog_verdict(stale, newer) is Verdict.TAKE
    assert changelog_verdict(newer, seller(2, {"payment-events:0": 10})) is Verdict.TAKE
    other = seller(3, {"payment-events:0": 4, "payment-events:1": 1})
    assert changelog_verdict(newer, other) is Verdict.CONFLICT
    # Values without marks: today's behaviour, the record replaces the value.
    assert changelog_verdict(b'{"count":9}', stale) is Verdict.TAKE
    assert changelog_verdict(newer, b'{"count":0}') is Verdict.TAKE


def test_between_equal_marks_the_value_that_owes_less_is_newer() -> None:
    # Offset 1 applied before offset 0 (a resend put 0 behind it): 0 is owed, then applied.
    marks = {"payment-events:0": 1}
    owing = agg.to_value(
        agg.SellerSales("s", 1, applied=marks, owed={"payment-events:0": [[0, 0]]})
    )
    settled = agg.to_value(agg.SellerSales("s", 2, applied=marks))
    assert "owed" in owing and "owed" not in settled  # nothing owed: stored as before
    assert owed_ranges(orjson.dumps(owing)) == {"payment-events:0": [[0, 0]]}
    assert owed_ranges(orjson.dumps(settled)) == {}
    assert applied_marks(orjson.dumps(owing)) == marks
    assert changelog_verdict(orjson.dumps(owing), orjson.dumps(settled)) is Verdict.TAKE
    assert changelog_verdict(orjson.dumps(settled), orjson.dumps(owing)) is Verdict.KEEP
    assert changelog_verdict(orjson.dumps(owing), orjson.dumps(owing)) is Verdict.TAKE
