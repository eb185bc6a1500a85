"""KARROT_TOPIC_PREFIX: logical names to physical ones and back, and what a prefix may hold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from karrot_streams.events.topics import InternalTopics, TopicNames
from karrot_streams.provision import contract_topics
from karrot_streams.settings import Settings


def test_without_a_prefix_physical_and_logical_names_are_the_contract_s() -> None:
    names = TopicNames()
    assert names.physical("item-events") == "item-events"
    assert names.enriched("item-events") == "enriched.item-events"
    assert names.dead_letter("item-events") == "dlq.item-events"
    assert names.logical("dlq.item-events") == "dlq.item-events"
    assert InternalTopics("karrot").item_facts == "karrot.facts.items"
    assert "item-events" in contract_topics()


def test_a_prefix_goes_before_every_physical_name() -> None:
    names = TopicNames("bench.r1.")
    assert names.physical("item-events") == "bench.r1.item-events"
    assert names.enriched("item-events") == "bench.r1.enriched.item-events"
    assert names.dead_letter("chat-events") == "bench.r1.dlq.chat-events"
    assert names.changelog("karrot", "items") == "bench.r1.karrot-items-changelog"
    internal = InternalTopics("karrot", "bench.r1.")
    assert internal.names == names
    assert internal.all() == (
        "bench.r1.karrot.facts.items",
        "bench.r1.karrot.facts.sellers",
        "bench.r1.karrot.facts.payment-volume",
        "bench.r1.karrot.facts.new-users",
        "bench.r1.karrot.category-effects",
    )
    assert all(name.startswith("bench.r1.") for name in contract_topics(names))
    assert len(contract_topics(names)) == len(contract_topics())


def test_logical_strips_the_prefix_and_refuses_a_name_without_it() -> None:
    names = TopicNames("t-")
    assert names.logical("t-enriched.user-events") == "enriched.user-events"
    assert names.logical(names.physical("payment-events")) == "payment-events"
    with pytest.raises(ValueError, match="not under the prefix"):
        names.logical("user-events")


@pytest.mark.parametrize("prefix", ["bench.run-1.", "ci_42-", "A.b_C-9"])
def test_the_setting_takes_kafka_s_topic_characters(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KARROT_TOPIC_PREFIX", prefix)
    settings = Settings()
    assert settings.topic_prefix == prefix
    assert settings.topic_names.physical("item-events") == f"{prefix}item-events"


def test_the_setting_defaults_to_no_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KARROT_TOPIC_PREFIX", raising=False)
    assert Settings().topic_names == TopicNames()


@pytest.mark.parametrize("prefix", ["bench/run.", "a b", "run:1.", "한글.", "bench.*"])
def test_the_setting_refuses_what_kafka_would(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARROT_TOPIC_PREFIX", prefix)
    with pytest.raises(ValidationError, match="KARROT_TOPIC_PREFIX"):
        Settings()
    with pytest.raises(ValueError, match="letters, digits"):
        TopicNames(prefix)
