"""What a fresh cluster needs before a worker starts: topics, migrations, registered schemas."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from karrot_streams.connections import kafka_connection
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings

log = logging.getLogger(__name__)

#: ``config_source`` of a DescribeConfigs entry set on the topic itself.
DYNAMIC_TOPIC_CONFIG = 1


def contract_topics(names: TopicNames | None = None) -> list[str]:
    """The physical names of the contract's input, enriched and dead-letter topics."""
    names = names or TopicNames()
    return [
        name
        for topic in INPUT_TOPICS
        for name in (names.physical(topic), names.enriched(topic), names.dead_letter(topic))
    ]


async def create_topics(settings: Settings, names: list[str]) -> list[str]:
    """Create the topics that are missing; return those created."""
    admin = AIOKafkaAdminClient(**kafka_connection(settings).client_kwargs())
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


async def dead_letter_limits(settings: Settings) -> None:
    """Let each ``dlq.<topic>`` take records of ``max_record_bytes`` (``max.message.bytes``).

    A dead letter carries its original bytes plus the failure headers; with the broker's default
    limit, a record that only just fitted on its input topic could never be dead-lettered, and
    the pipeline would wait for Kafka forever. Idempotent; run at provisioning and worker start.
    """
    admin = AIOKafkaAdminClient(**kafka_connection(settings).client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        ours = [settings.topic_names.dead_letter(t) for t in INPUT_TOPICS]
        names = [name for name in ours if name in existing]
        if not names:
            return
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        # AlterConfigs replaces a topic's whole set of overrides: keep the ones it has.
        overrides: dict[str, dict[str, str]] = {name: {} for name in names}
        for response in described:
            for _code, _message, _kind, name, entries in response.resources:
                for entry in entries:
                    if entry[3] == DYNAMIC_TOPIC_CONFIG and name in overrides:
                        overrides[name][entry[0]] = entry[1]
        wanted = settings.max_record_bytes
        changes = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                name,
                configs={**configs, "max.message.bytes": str(wanted)},
            )
            for name, configs in overrides.items()
            if int(configs.get("max.message.bytes", 0)) < wanted
        ]
        if changes:
            await admin.alter_configs(changes)
            log.info("max.message.bytes=%d on %s", wanted, [c.name for c in changes])
    finally:
        await admin.close()


async def provision(settings: Settings) -> None:
    created = await create_topics(settings, contract_topics(settings.topic_names))
    await dead_letter_limits(settings)
    log.info("Topics created: %s", created or "none (all there)")
    resources = Resources.create(settings)
    try:
        await resources.ready()
    finally:
        await resources.close()
