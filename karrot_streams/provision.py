"""What a fresh cluster needs before a worker starts: topics, migrations, registered schemas."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from karrot_streams.events.types import dead_letter_topic, enriched_topic
from karrot_streams.resources import Resources
from karrot_streams.settings import INPUT_TOPICS, Settings

log = logging.getLogger(__name__)


def contract_topics() -> list[str]:
    return [
        name
        for topic in INPUT_TOPICS
        for name in (topic, enriched_topic(topic), dead_letter_topic(topic))
    ]


async def create_topics(settings: Settings, names: list[str]) -> list[str]:
    """Create the topics that are missing; return those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(name, settings.topic_partitions, settings.topic_replication)
                        for name in missing
                    ]
                )
            except TopicAlreadyExistsError:
                log.info("Another process created some of %s first", missing)
        return missing
    finally:
        await admin.close()


async def provision(settings: Settings) -> None:
    created = await create_topics(settings, contract_topics())
    log.info("Topics created: %s", created or "none (all there)")
    resources = Resources.create(settings)
    try:
        await resources.ready()
    finally:
        await resources.close()
