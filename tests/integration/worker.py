"""A worker for the web API tests: started from ``KARROT_*`` settings, yielded once it is healthy.

Process handling is ``tests.support.worker.WorkerProcess``; this adds the settings of a worker of
its own (app id, port, data directory, tokens), the wait for ``/api/v1/monitoring/health`` and
the creation of the internal topics before the first subscription.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from karrot_streams.pipeline.topics import InternalTopics
from tests.support.worker import WorkerProcess, free_port, new_app_id

HEALTH = "/api/v1/monitoring/health"
API_TOKEN = "test-token"
ADMIN_TOKEN = "test-admin-token"


def worker_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """``KARROT_*`` settings for a worker of its own: app id, web port, data directory, tokens."""
    settings = {
        "KARROT_APP_ID": new_app_id(),
        "KARROT_WEB_PORT": str(free_port()),
        "KARROT_WEB_HOST": "127.0.0.1",
        "KARROT_DATA_DIR": str(data_dir),
        "KARROT_API_TOKENS": API_TOKEN,
        "KARROT_ADMIN_TOKENS": ADMIN_TOKEN,
    }
    settings.update(overrides)
    return settings


def create_internal_topics(settings_env: Mapping[str, str], partitions: int = 4) -> None:
    """Create the worker's internal topics (facts, category effects) before it subscribes.

    A worker with a brand-new app id subscribes before it has created them; the consumer group
    then only picks them up at its next metadata refresh (about five minutes), which would leave
    the aggregate views empty for that long.
    """
    topics = InternalTopics(settings_env["KARROT_APP_ID"]).all()
    bootstrap = settings_env.get("KARROT_KAFKA_BOOTSTRAP", "localhost:9092")

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, partitions, 1) for name in topics], timeout_ms=15_000
            )
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    asyncio.run(create())


def wait_until_healthy(base_url: str, timeout_s: float, *, require_up: bool = True) -> None:
    """Until the health view answers 200 (or, without ``require_up``, answers at all)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(base_url + HEALTH, timeout=5.0)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code == 200 or (not require_up and answer.status_code == 503):
                return
            last = f"{answer.status_code} {answer.text[:2000]}"
        time.sleep(0.5)
    raise TimeoutError(f"worker not healthy after {timeout_s:g}s; last health answer: {last}")


@contextmanager
def running_worker(
    settings_env: Mapping[str, str], *, start_timeout_s: float = 180.0, require_up: bool = True
) -> Iterator[str]:
    """Start a worker with ``settings_env`` (see ``worker_env``); yield its base URL; stop it."""
    data_dir = Path(settings_env["KARROT_DATA_DIR"])
    worker = WorkerProcess(
        app_id=settings_env["KARROT_APP_ID"],
        data_dir=data_dir,
        log_path=data_dir / "worker.log",
        extra_env=dict(settings_env),
        port=int(settings_env["KARROT_WEB_PORT"]),
    )
    worker.start()
    try:
        try:
            wait_until_healthy(worker.url, start_timeout_s, require_up=require_up)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\nworker log:\n{worker.tail(60)}") from None
        yield worker.url
    finally:
        worker.stop()
