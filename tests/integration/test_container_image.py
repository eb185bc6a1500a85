"""The worker's image, run for real: ``init`` and a worker in containers on the host network,
an event upstream seen in the aggregates through the API from outside, and a SIGTERM that
commits, leaves the group and exits 0 well inside the grace period.

The containers run with a read-only root and no tmpfs, only the data directory mounted: the
image's contract that nothing else is written (README "Container image").
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.settings import Settings
from karrot_streams.traffic import TrafficSpec, produce, records
from tests.support import api, container
from tests.support.kafka import start_group_at_end
from tests.support.truth import compute
from tests.support.worker import ADMIN_TOKEN, API_TOKEN, HEALTH, free_port, new_app_id

pytestmark = [pytest.mark.integration, pytest.mark.container]

#: The chart's terminationGracePeriodSeconds: a clean stop must fit well inside it.
GRACE_S = 60
#: "Well inside": a commit, the producer's flush, a LeaveGroup and the stores' close.
STOP_WITHIN_S = 20


@pytest.fixture(scope="module")
def image() -> str:
    return container.build()


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Containers of the test, removed after it whatever happened."""
    started: list[str] = []
    yield started
    for name in started:
        container.podman("rm", "--force", "--time=0", name)


def worker_env(app_id: str, port: int) -> dict[str, str]:
    return {
        "KARROT_APP_ID": app_id,
        "KARROT_WEB_PORT": str(port),
        # The image binds 0.0.0.0: real tokens and a peer secret, as in production.
        "KARROT_API_TOKENS": API_TOKEN,
        "KARROT_ADMIN_TOKENS": ADMIN_TOKEN,
        "KARROT_PEER_SECRET": uuid.uuid4().hex,
        "KARROT_ADVERTISED_URL": f"http://127.0.0.1:{port}",
    }


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items() if tp.topic in INPUT_TOPICS}
    finally:
        await admin.close()


async def group_state(bootstrap: str, group: str) -> tuple[str, int]:
    """The group's state and member count, as the coordinator sees them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members, ...)
        described = response.groups[0]
        return str(described[2]), len(described[5])
    finally:
        await admin.close()


async def ends(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def wait_healthy(url: str, name: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                answer = await client.get(url + HEALTH)
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:500]}"
            if container.podman("inspect", "--format={{.State.Running}}", name).stdout.strip() != (
                "true"
            ):
                break
            await asyncio.sleep(0.5)
    logs = container.podman("logs", name).stderr[-4000:]
    raise AssertionError(f"container worker not healthy ({last}):\n{logs}")


async def test_image_runs_init_and_a_worker_that_stops_cleanly_on_sigterm(
    image: str,
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    names: list[str],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    app_id = new_app_id("karrot-image")
    port = free_port()
    environment = worker_env(app_id, port)

    init = f"{app_id}-init"
    names.append(init)
    result = container.podman(*container.run_args(init, data, environment, ["init"]))
    assert result.returncode == 0, result.stdout + result.stderr

    await start_group_at_end(settings.kafka_bootstrap, app_id, list(INPUT_TOPICS))
    worker = f"{app_id}-worker"
    names.append(worker)
    started = container.podman(*container.run_args(worker, data, environment, [], detach=True))
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    await wait_healthy(url, worker)
    async with httpx.AsyncClient(timeout=5.0) as client:
        # The chart's readiness probe: no dependency probed, up once assigned and recovered.
        ready = await client.get(url + "/api/v1/monitoring/ready")
    assert ready.status_code == 200, ready.text

    batch = list(
        records(
            TrafficSpec(count=300, poison_share=0.0, tag=f"img{uuid.uuid4().hex[:6]}-"),
            input_writers,
        )
    )
    truth = compute(batch, settings.fee_rate)
    await produce(settings.kafka_bootstrap, batch)
    diffs = await api.wait_until_equal(url, truth)
    assert not diffs, "\n".join(diffs[:10]) + "\n" + container.podman("logs", worker).stderr[-3000:]
    assert await group_state(settings.kafka_bootstrap, app_id) == ("Stable", 1)
    before = await committed(settings.kafka_bootstrap, app_id)
    produced_to = await ends(settings.kafka_bootstrap, list(before))

    signalled = time.monotonic()
    assert container.podman("kill", "--signal=TERM", worker).returncode == 0
    waited = container.podman("wait", worker, timeout_s=GRACE_S)
    stopped_s = time.monotonic() - signalled
    logs = container.podman("logs", worker)
    output = logs.stdout + logs.stderr
    assert waited.stdout.strip() == "0", output[-4000:]
    assert stopped_s < STOP_WITHIN_S, f"{stopped_s:.1f}s to stop\n{output[-4000:]}"
    # Every record read is committed (the last transaction's offsets on the way out), and the
    # group is empty at once: the worker left it, no member waits out the session timeout.
    assert await committed(settings.kafka_bootstrap, app_id) == produced_to
    assert await group_state(settings.kafka_bootstrap, app_id) == ("Empty", 0)
    # The volume keeps the worker's transactional id (and its table stores, kept however it
    # stops: runtime/transactional_store.py).
    assert (data / "transactional-id").exists()
    print(f"container worker stopped in {stopped_s:.1f}s after SIGTERM, exit 0")
