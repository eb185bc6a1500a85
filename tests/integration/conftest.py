"""Integration tests run against the real local stack (``stack/stack.sh start``)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.provision import contract_topics, create_topics
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings
from tests.support.worker import WorkerProcess, new_app_id, running_worker, worker_env

pytestmark = pytest.mark.integration


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings()
    host, port = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    if not _reachable(host, int(port)):
        pytest.fail(f"Kafka is not running at {settings.kafka_bootstrap}: run stack/stack.sh start")
    return settings


@pytest.fixture(scope="session")
async def input_writers(settings: Settings) -> AsyncIterator[dict[str, WriterSchema]]:
    """Creates the contract's topics, registers the schemas and applies migrations."""
    await create_topics(settings, contract_topics())
    resources = Resources.create(settings)
    await resources.ready()
    yield {topic: resources.writers[topic] for topic in INPUT_TOPICS}
    await resources.close()


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[type[WorkerProcess]]:
    started: list[WorkerProcess] = []

    class Factory(WorkerProcess):
        def start(self) -> None:
            started.append(self)
            super().start()

    yield Factory
    for worker in started:
        worker.stop()


StartWorker = Callable[..., Awaitable[WorkerProcess]]


@pytest.fixture
def start_worker(tmp_path: Path, worker_factory: type[WorkerProcess]) -> StartWorker:
    """Start a worker of a new app (``KARROT_*`` overrides as keywords), healthy when returned."""

    async def start(**extra_env: str) -> WorkerProcess:
        process = worker_factory(
            app_id=new_app_id(),
            data_dir=tmp_path / "data",
            log_path=tmp_path / "worker.log",
            extra_env=extra_env,
        )
        process.start()
        await process.wait_ready()
        return process

    return start


@pytest.fixture
async def worker(start_worker: StartWorker, input_writers: object) -> WorkerProcess:
    return await start_worker()


@pytest.fixture(scope="module")
def worker_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of one worker shared by a module, healthy before the first test (web API)."""
    env = worker_env(tmp_path_factory.mktemp("web-worker"))
    with running_worker(env) as base_url:
        yield base_url
