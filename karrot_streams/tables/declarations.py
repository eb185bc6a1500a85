"""The RocksDB-backed tables, recovered from their changelog topics after a crash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust

from karrot_streams.events.topics import TopicNames
from karrot_streams.runtime import internals
from karrot_streams.runtime.recovery import Verdict, judge_recovery
from karrot_streams.tables import codec
from karrot_streams.tables.replay_guard import Order, order, order_owed

HOUR = 3600.0
DAY = 86400.0
#: Hourly listing windows are kept a day longer than the seven the API promises.
HOURLY_EXPIRES = timedelta(days=8)
DAILY_EXPIRES = timedelta(days=400)


@dataclass(frozen=True)
class Tables:
    items: Any
    categories: Any
    category_hourly: Any  # windowed: the underlying Table, keys (category, window range)
    sellers: Any
    payment_daily: Any  # windowed, key "KRW"
    users_daily: Any  # windowed, key region

    @classmethod
    def declare(
        cls,
        app: faust.App,
        partitions: int,
        app_id: str | None = None,
        names: TopicNames | None = None,
    ) -> Tables:
        """The tables of ``app``; their changelogs named after ``app_id`` (default: app's id).

        ``names`` puts the topic prefix before the changelogs too: Faust names them after the
        app id alone, which would share them between runs of one id under different prefixes.
        """
        codec.register()
        tables = cls._declare(app, partitions)
        for table in (
            tables.items,
            tables.categories,
            tables.category_hourly,
            tables.sellers,
            tables.payment_daily,
            tables.users_daily,
        ):
            judge_recovery(app, table, changelog_verdict)
        names = names or TopicNames()
        owner = app_id if app_id is not None else app.conf.id
        if owner != app.conf.id or names.prefix:
            for table in app.tables.values():
                internals.pin_changelog_topic(table, names.changelog(owner, table.name))
        return tables

    @classmethod
    def _declare(cls, app: faust.App, partitions: int) -> Tables:
        def keyed(name: str, help_: str) -> Any:
            # Faust serialises str keys as JSON; the facts topics are keyed the same way, so
            # a key's partition is the same in both and table_route finds its owner.
            return codec.use_for_values(
                app.Table(
                    name,
                    default=dict,
                    key_type=str,
                    partitions=partitions,
                    help=help_,
                )
            )

        def windowed(name: str, size: float, expires: timedelta, help_: str) -> Any:
            table = app.Table(name, default=dict, partitions=partitions, help=help_)
            return codec.use_for_values(table.tumbling(size, expires=expires).table)

        return cls(
            items=keyed("items", "Per item: category, sales seen before the listing."),
            categories=keyed("categories", "Per category: listings, prices, sales."),
            category_hourly=windowed(
                "category-hourly", HOUR, HOURLY_EXPIRES, "Items listed per category per hour."
            ),
            sellers=keyed("sellers", "Per seller: completed sales and settlement."),
            payment_daily=windowed(
                "payment-volume-daily", DAY, DAILY_EXPIRES, "Completed payment volume per day."
            ),
            users_daily=windowed(
                "new-users-daily", DAY, DAILY_EXPIRES, "New users per region per day."
            ),
        )


_VERDICTS = {Order.OLDER: Verdict.KEEP, Order.INCOMPARABLE: Verdict.CONFLICT}


def changelog_verdict(current: bytes, incoming: bytes) -> Verdict:
    """At recovery: whether a changelog value replaces its key's value, by their marks.

    Every aggregate value carries its marks; between equal marks the one that owes fewer late
    records is the newer (``replay_guard.order_owed``). One without marks (written before they
    existed) replaces and is replaced as it always was.
    """
    held = codec.applied_marks(current)
    if held is None:
        return Verdict.TAKE
    new = codec.applied_marks(incoming)
    if new is None:
        return Verdict.TAKE
    ordered = order(held, new)
    if ordered is Order.EQUAL:
        # Equal marks: a late record applied (replay_guard.admit) left the marks as they were.
        ordered = order_owed(codec.owed_ranges(current), codec.owed_ranges(incoming))
    return _VERDICTS.get(ordered, Verdict.TAKE)


def window_of(table: Any, timestamp: float) -> tuple[float, float]:
    start, end = table.window.current(timestamp)
    return float(start), float(end)
