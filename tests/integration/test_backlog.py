"""A long backlog, one worker, an app id that ran before: every row and aggregate, in bounded time.

The recipe of the stall found in faust-streaming's per-record path: while the pipeline drained a
backlog, the aggregate stages' streams never started, and the tables trailed by minutes. The
batch runtime delivers every fetched partition in each pass, so the aggregates keep up.
"""

from __future__ import annotations

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

BACKLOG = 100_000
#: The aggregates must equal the truth this soon after the last event-store row.
AGGREGATES_BOUND_S = 60.0
ROWS_TIMEOUT_S = 600.0


async def test_a_backlog_drains_with_every_aggregate_exact(
    settings: Settings,
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    app_id = new_app_id()
    data = tmp_path / "data"
    earlier = worker_factory(app_id=app_id, data_dir=data, log_path=tmp_path / "earlier.log")
    earlier.start()
    await earlier.wait_ready()
    earlier.stop()  # the group exists, its offsets at the end of the input

    tag = f"b{uuid.uuid4().hex[:6]}-"
    batch = list(records(TrafficSpec(count=BACKLOG, poison_share=0.01, tag=tag), input_writers))
    truth = compute(batch, settings.fee_rate)
    await produce(settings.kafka_bootstrap, batch)

    worker = worker_factory(
        app_id=app_id, data_dir=data, log_path=tmp_path / "worker.log", from_end=False
    )
    started = time.monotonic()
    worker.start()
    expected = dict.fromkeys(truth.valid_ids, "PROCESSED") | dict.fromkeys(
        truth.failed_ids, "FAILED"
    )
    found = await store.wait_for_statuses(settings.database_dsn, expected, ROWS_TIMEOUT_S)
    rows_done = time.monotonic()
    missing = [i for i, status in expected.items() if found.get(i, ("",))[0] != status]
    assert not missing, f"{len(missing)} of {len(expected)} rows missing:\n{worker.tail()}"

    diffs = await api.wait_until_equal(worker.url, truth, timeout_s=AGGREGATES_BOUND_S)
    done = time.monotonic()
    assert not diffs, "\n".join(diffs[:10]) + "\n" + worker.tail()
    print(
        f"backlog of {len(batch):,}: rows after {rows_done - started:.1f}s"
        f" ({len(batch) / (rows_done - started):,.0f}/s from worker start),"
        f" aggregates exact {done - rows_done:.1f}s after the last row"
    )
