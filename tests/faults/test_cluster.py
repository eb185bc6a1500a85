"""Three brokers (RF 3, min.insync.replicas 2, acks=all everywhere), one killed and brought back.

Soak only: a second Kafka of three JVMs next to the fault stack costs about a minute and a half
on a 2-core machine, which the CI budget does not have. Run it with ``make soak``.
The cluster gets its own folder and ports (39092/39094/39096, controllers one above each); the
registry and PostgreSQL are the fault stack's. Both guarantees (exactly_once: no duplicate,
nothing missing; at_least_once: the bound below).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.provision import contract_topics, create_topics, dead_letter_limits
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings
from tests.faults.conftest import Workers, create_internal_topics, start_group_at_end
from tests.faults.outcome import Outcome
from tests.faults.scenario import GUARANTEES, Scenario, Size
from tests.faults.stackctl import REPO, ClusterStack, FaultStack

pytestmark = [pytest.mark.faults, pytest.mark.soak]

SIZE = Size(count=12000, rate=200)


@pytest.fixture
async def cluster() -> AsyncIterator[ClusterStack]:
    stack = ClusterStack(stack_dir=Path(REPO / ".stack-cluster"))
    await stack.run("start", "kafka")
    yield stack
    await stack.run("stop", "kafka")


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_one_of_three_brokers_killed_and_back(
    guarantee: str,
    cluster: ClusterStack,
    fault_stack: FaultStack,
    fault_settings: Settings,
    outcomes: list[Outcome],
    tmp_path: Path,
) -> None:
    settings = fault_settings.model_copy(
        update={"kafka_bootstrap": cluster.bootstrap, "topic_replication": 3}
    )
    await create_topics(settings, contract_topics())
    await dead_letter_limits(settings)
    resources = Resources.create(settings)
    await resources.ready()
    writers = {topic: resources.writers[topic] for topic in INPUT_TOPICS}
    await resources.close()

    env = {
        **fault_stack.app_env(),
        "KARROT_KAFKA_BOOTSTRAP": cluster.bootstrap,
        "KARROT_TOPIC_REPLICATION": "3",
        "KARROT_PROCESSING_GUARANTEE": guarantee,
    }
    workers = Workers(tmp_path, env)
    await create_internal_topics(settings, workers.app_id)
    await start_group_at_end(settings, workers.app_id)
    try:
        run = Scenario(
            "3 brokers, one killed", settings, writers, workers.app_id, outcomes, guarantee
        )
        worker = workers.start("worker")
        await worker.wait_ready()
        run.watch_commits()
        run.produce(run.traffic(SIZE), SIZE.rate)
        await asyncio.sleep(10)
        run.fault()
        await cluster.run("kill-broker", "2", "--hard")
        await asyncio.sleep(20)
        await cluster.run("start-broker", "2")
        run.fault_over()
        # A hard kill loses the acknowledgements in flight on that broker's connections: those
        # sends are repeated (at-least-once), and so are offsets acked but not committed when
        # the coordinator moves.
        await run.verdict([worker.url], duplicate_bound=int(SIZE.rate * 4) + 500)
    finally:
        workers.stop_all()
