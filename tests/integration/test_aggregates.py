"""Aggregates against the truth: after a known input, after a SIGKILL, across two workers."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.settings import Settings
from karrot_streams.traffic import TrafficSpec, produce, records
from tests.support import api, store
from tests.support.truth import compute
from tests.support.worker import WorkerProcess, new_app_id

pytestmark = pytest.mark.integration


def tagged(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}-"


async def test_each_view_returns_the_expected_numbers(
    settings: Settings, input_writers: dict[str, WriterSchema], worker: WorkerProcess
) -> None:
    batch = list(
        records(TrafficSpec(count=1500, poison_share=0.05, tag=tagged("a")), input_writers)
    )
    truth = compute(batch, settings.fee_rate)
    assert len(truth.categories) >= 5
    assert sum(c["soldCount"] for c in truth.categories.values()) > 50
    await produce(settings.kafka_bootstrap, batch)
    diffs = await api.wait_until_equal(worker.url, truth)
    assert not diffs, "\n".join(diffs[:10]) + "\n" + worker.tail()


async def test_sigkill_mid_stream_counts_every_event_once(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    batch = list(
        records(TrafficSpec(count=4000, poison_share=0.05, tag=tagged("k")), input_writers)
    )
    truth = compute(batch, settings.fee_rate)
    first = worker_factory(
        app_id=new_app_id(), data_dir=tmp_path / "data", log_path=tmp_path / "worker.log"
    )
    first.start()
    await first.wait_ready()
    producing = asyncio.create_task(produce(settings.kafka_bootstrap, batch, rate=800))
    await asyncio.sleep(2.5)
    first.kill()  # mid-stream: tables updated, offsets not yet committed
    killed_at = time.monotonic()
    second = worker_factory(
        app_id=first.app_id, data_dir=first.data_dir, log_path=tmp_path / "worker-2.log"
    )
    second.start()
    await second.wait_ready()
    recovered_s = time.monotonic() - killed_at
    await producing
    expected = dict.fromkeys(truth.valid_ids, "PROCESSED") | dict.fromkeys(
        truth.failed_ids, "FAILED"
    )
    found = await store.wait_for_statuses(settings.database_dsn, expected)
    missing = {i: s for i, s in expected.items() if found.get(i, ("",))[0] != s}
    assert not missing, f"{len(missing)} of {len(expected)} rows missing:\n{second.tail()}"
    diffs = await api.wait_until_equal(second.url, truth)
    assert not diffs, "\n".join(diffs[:10]) + "\n" + second.tail()
    print(f"worker back and serving {recovered_s:.1f}s after SIGKILL")


async def test_two_workers_answer_alike_for_every_key(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    app_id = new_app_id()
    workers = [
        worker_factory(app_id=app_id, data_dir=tmp_path / f"d{n}", log_path=tmp_path / f"w{n}.log")
        for n in (1, 2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        await worker.wait_ready()
    batch = list(records(TrafficSpec(count=1500, tag=tagged("w")), input_writers))
    truth = compute(batch, settings.fee_rate)
    await produce(settings.kafka_bootstrap, batch)
    for worker in workers:
        diffs = await api.wait_until_equal(worker.url, truth)
        assert not diffs, "\n".join(diffs[:10]) + "\n" + worker.tail()
