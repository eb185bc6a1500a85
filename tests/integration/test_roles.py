"""The split layout: a pipeline-only and an aggregates-only worker of one app, on the real stack."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.settings import Settings
from karrot_streams.traffic import TrafficSpec, produce, records
from tests.support import api, store
from tests.support.truth import compute
from tests.support.worker import API_TOKEN, WorkerProcess, new_app_id

pytestmark = pytest.mark.integration


async def test_split_stages_count_every_event_once(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    app_id = new_app_id()
    pipeline, aggregates = (
        worker_factory(
            app_id=app_id,
            data_dir=tmp_path / role,
            log_path=tmp_path / f"{role}.log",
            extra_env={"KARROT_ROLE": role},
        )
        for role in ("pipeline", "aggregates")
    )
    pipeline.start()
    aggregates.start()
    await pipeline.wait_ready()
    await aggregates.wait_ready()

    tag = f"r{uuid.uuid4().hex[:6]}-"
    batch = list(records(TrafficSpec(count=2000, poison_share=0.05, tag=tag), input_writers))
    truth = compute(batch, settings.fee_rate)
    await produce(settings.kafka_bootstrap, batch)

    expected = dict.fromkeys(truth.valid_ids, "PROCESSED") | dict.fromkeys(
        truth.failed_ids, "FAILED"
    )
    found = await store.wait_for_statuses(settings.database_dsn, expected)
    assert all(found.get(i, ("",))[0] == s for i, s in expected.items()), pipeline.tail()
    diffs = await api.wait_until_equal(aggregates.url, truth)
    assert not diffs, "\n".join(diffs[:10]) + "\n" + aggregates.tail()

    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(
            f"{pipeline.url}/api/v1/categories",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
    assert answer.status_code == 503
    assert "KARROT_ROLE=pipeline" in answer.json()["message"]
