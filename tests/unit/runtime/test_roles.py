"""KARROT_ROLE: which agents and tables a worker has, and in which consumer group."""

from __future__ import annotations

from faust.topics import Topic

from karrot_streams.app import create_app
from karrot_streams.settings import Settings


def agent_names(app: object) -> set[str]:
    return {str(agent.name) for agent in app.agents.values()}  # type: ignore[attr-defined]


def test_all_runs_both_stages_in_one_group() -> None:
    app = create_app(Settings(app_id="r1"))
    assert app.conf.id == "r1"
    names = agent_names(app)
    assert {"pipeline.item-events", "aggregate.items"} <= names
    assert app.tables["items"].changelog_topic.get_topic_name() == "r1-items-changelog"


def test_pipeline_role_has_no_tables_and_keeps_the_group() -> None:
    app = create_app(Settings(app_id="r2", role="pipeline"))
    assert app.conf.id == "r2"
    assert app.aggregates is None
    assert list(app.tables) == []
    assert all(name.startswith("pipeline.") for name in agent_names(app))


def test_aggregates_role_has_its_own_group_and_the_same_changelogs() -> None:
    app = create_app(Settings(app_id="r3", role="aggregates"))
    assert app.conf.id == "r3-aggregates"
    assert all(name.startswith("aggregate.") for name in agent_names(app))
    changelogs = {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert changelogs == {
        f"r3-{name}-changelog"
        for name in (
            "items",
            "categories",
            "category-hourly",
            "sellers",
            "payment-volume-daily",
            "new-users-daily",
        )
    }
    # The assignor and recovery find tables by these names.
    assert app.tables.changelog_topics == changelogs
    # What the store and a changelog record are encoded with survives the re-pinning.
    changelog = app.tables["items"].changelog_topic
    assert isinstance(changelog, Topic)
    assert changelog.value_serializer == "orjson"
