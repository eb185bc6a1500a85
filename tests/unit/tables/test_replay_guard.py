"""The replay guard as a property of the pure update functions: each source's records delivered
in order, any prefix of them delivered again after a "crash", sources interleaved at will: every
record counts exactly once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.replay_guard import is_replay, mark, position_of

#: Per source, the increasing positions of its records (gaps allowed: compaction, sub-records).
sources = st.dictionaries(
    st.sampled_from(["item-events:0", "item-events:1", "0|payment-events:0"]),
    st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True).map(sorted),
    min_size=1,
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[dict[str, list[int]], list[tuple[str, int]]]:
    """The records, and one delivery order: per source, restarts from an earlier record."""
    records = draw(sources)
    # Each source's delivery: its records from 0 up to some point, then again from a point at
    # or before there (a replay from the last commit), ..., finally through to its end.
    per_source: dict[str, list[int]] = {}
    for source, positions in records.items():
        delivered: list[int] = []
        done = 0
        for _ in range(draw(st.integers(0, 3))):
            reached = draw(st.integers(done, len(positions)))
            delivered += positions[done:reached]
            done = draw(st.integers(0, reached))  # the crash: back to the last commit
        delivered += positions[done:]
        per_source[source] = delivered
    # Any interleaving of the sources, each keeping its own order.
    order: list[tuple[str, int]] = []
    cursors = dict.fromkeys(per_source, 0)
    while any(cursors[s] < len(per_source[s]) for s in per_source):
        ready = sorted(s for s in per_source if cursors[s] < len(per_source[s]))
        source = draw(st.sampled_from(ready))
        order.append((source, per_source[source][cursors[source]]))
        cursors[source] += 1
    return records, order


@settings(max_examples=200, deadline=None)
@given(deliveries())
def test_every_record_counts_once_whatever_the_redeliveries(
    case: tuple[dict[str, list[int]], list[tuple[str, int]]],
) -> None:
    records, order = case
    counter = agg.Counter()
    stats = agg.CategoryStats("c")
    for source, position in order:
        at = agg.Applied(source, position)
        counter = agg.apply_count(counter, position, at) or counter
        stats = agg.apply_listing(stats, position, at) or stats

    every = [p for positions in records.values() for p in positions]
    assert (counter.count, counter.amount) == (len(every), sum(every))
    assert (stats.item_count, stats.total_price) == (len(every), sum(every))
    assert (stats.min_price, stats.max_price) == (min(every), max(every))
    assert counter.applied == {source: max(ps) for source, ps in records.items()}


@given(st.integers(0, 2**40), st.integers(0, 1023), st.integers(0, 1023))
def test_positions_order_offsets_first_then_sub_records(offset: int, a: int, b: int) -> None:
    assert (position_of(offset, a) < position_of(offset, b)) == (a < b)
    assert position_of(offset, a) < position_of(offset + 1, 0)
    applied = mark({}, "s", position_of(offset, a))
    assert is_replay(applied, "s", position_of(offset, a))
    assert not is_replay(applied, "s", position_of(offset + 1))
    assert not is_replay(applied, "other", 0)


# -- a sender that resends what the broker refused (replay_guard.admit) ------------------------

#: What the broker does with one record of an attempt: takes it, refuses it, or takes it and the
#: acknowledgement is lost (reported refused, resent: a true duplicate).
TAKEN, REFUSED, ACK_LOST = "taken", "refused", "ack lost"


@st.composite
def resent_log(draw: st.DrawFn, positions: list[int]) -> list[tuple[int, int | None]]:
    """What reaches the topic, (position, prev), from a sender of ``positions`` in sends that
    resend the records reported refused until all are taken; a sender crash starts again from
    the first record of its send (its commit), in sends cut anew."""
    log: list[tuple[int, int | None]] = []
    done = 0
    while done < len(positions):
        end = draw(st.integers(done + 1, len(positions)))
        send = positions[done:end]
        prevs = dict(zip(send[1:], send[:-1], strict=True))
        pending = send
        crashed = False
        while pending:
            reported: list[int] = []
            for position in pending:
                fate = draw(st.sampled_from([TAKEN, TAKEN, REFUSED, ACK_LOST]))
                if fate != REFUSED:
                    log.append((position, prevs.get(position)))
                if fate != TAKEN:
                    reported.append(position)
            pending = reported
            if pending and draw(st.integers(0, 5)) == 0:
                crashed = True
                break
        if not crashed:
            done = end
    return log


@st.composite
def reordered(draw: st.DrawFn) -> tuple[dict[str, list[int]], list[tuple[str, int, int | None]]]:
    records = draw(sources)
    logs = {source: draw(resent_log(positions)) for source, positions in records.items()}
    merged: list[tuple[str, int, int | None]] = []
    cursors = dict.fromkeys(logs, 0)
    while any(cursors[s] < len(logs[s]) for s in logs):
        source = draw(st.sampled_from(sorted(s for s in logs if cursors[s] < len(logs[s]))))
        merged.append((source, *logs[source][cursors[source]]))
        cursors[source] += 1
    # The stage crashes now and then: back to a committed point, what follows read again.
    delivered: list[tuple[str, int, int | None]] = []
    done = 0
    for _ in range(draw(st.integers(0, 3))):
        reached = draw(st.integers(done, len(merged)))
        delivered += merged[done:reached]
        done = draw(st.integers(0, reached))
    delivered += merged[done:]
    return records, delivered


@settings(max_examples=300, deadline=None)
@given(reordered())
def test_every_record_counts_once_whatever_the_resends_and_redeliveries(
    case: tuple[dict[str, list[int]], list[tuple[str, int, int | None]]],
) -> None:
    records, delivered = case
    # A stage crash falls between its table write and its commit: the records after the commit
    # are read again against the state already written, so each applies to the state it finds.
    counter = agg.Counter()
    for source, position, prev in delivered:
        counter = agg.apply_count(counter, position, agg.Applied(source, position, prev)) or counter

    every = [p for positions in records.values() for p in positions]
    assert (counter.count, counter.amount) == (len(every), sum(every))
    assert counter.applied == {source: max(ps) for source, ps in records.items()}
    assert counter.owed == {}
