"""KARROT_TOPIC_PREFIX in the app: every topic an agent reads and every changelog is prefixed."""

from __future__ import annotations

from karrot_streams.app import create_app
from karrot_streams.settings import Settings

TABLES = (
    "items",
    "categories",
    "category-hourly",
    "sellers",
    "payment-volume-daily",
    "new-users-daily",
)


def test_agents_read_physical_topics_and_changelogs_carry_the_prefix() -> None:
    app = create_app(Settings(app_id="p1", topic_prefix="t1."))
    sources = {str(a.name): a.channel.get_topic_name() for a in app.agents.values()}
    assert sources["pipeline.item-events"] == "t1.item-events"
    assert sources["aggregate.items"] == "t1.p1.facts.items"
    assert all(topic.startswith("t1.") for topic in sources.values())
    changelogs = {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert changelogs == {f"t1.p1-{name}-changelog" for name in TABLES}
    assert app.tables.changelog_topics == changelogs


def test_an_aggregates_worker_under_a_prefix_keeps_the_prefixed_changelogs() -> None:
    app = create_app(Settings(app_id="p2", role="aggregates", topic_prefix="t2-"))
    assert app.conf.id == "p2-aggregates"
    changelogs = {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert changelogs == {f"t2-p2-{name}-changelog" for name in TABLES}
