"""What the worker's Prometheus collector (monitoring/commit_monitor.py) reads of an app, for a
worker with no consumer yet and its tables recovered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.exceptions import ConsumerNotStarted


class NoConsumer:
    def assignment(self) -> Any:
        raise ConsumerNotStarted()


def idle_app(*, rebalancing_count: int = 0, **recovery: Any) -> Any:
    """An app whose collector sees no consumer and recovered tables; ``recovery``: the
    recovery's counters (``active_records_read``...). Set ``transactions`` on it as needed."""
    completed = SimpleNamespace(is_set=lambda: True)
    return SimpleNamespace(
        consumer=NoConsumer(),
        tables=SimpleNamespace(
            recovery=SimpleNamespace(completed=completed, **recovery),
            actives_ready=True,
            changelog_topics=set(),
        ),
        rebalancing_count=rebalancing_count,
    )
