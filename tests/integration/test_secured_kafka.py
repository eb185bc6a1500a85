"""Through the stack's SASL_SSL listener (``KARROT_STACK_SECURE=1``, SCRAM-SHA-512 over TLS).

The pipeline, a table query, a dead-letter listing, a redrive and the CLI all connect with the
settings' one Kafka connection; a wrong password, an untrusted certificate or a plaintext client
fails fast with a message that names the variables to fix.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import KafkaConnection, KafkaMisconfigured, check_kafka
from karrot_streams.settings import Settings
from karrot_streams.traffic import TrafficSpec, produce, records
from tests.support import store
from tests.support.secured import connection_of, secured_env
from tests.support.truth import compute
from tests.support.worker import ADMIN_TOKEN, API_TOKEN, WorkerProcess, free_port, new_app_id

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST_S = 10.0
SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def secured(settings: Settings) -> Iterator[dict[str, str]]:
    env = secured_env(settings.kafka_bootstrap)
    if env is None:
        pytest.skip("no SASL_SSL listener: start the stack with KARROT_STACK_SECURE=1")
    yield env


async def refused(kafka: KafkaConnection, match: str) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaMisconfigured, match=match):
        await check_kafka(kafka, timeout_s=FAST_S)
    assert time.monotonic() - started < FAST_S, "it should fail fast, not time out"


async def test_the_right_credentials_connect(secured: dict[str, str]) -> None:
    await check_kafka(connection_of(secured), timeout_s=FAST_S)


async def test_a_plaintext_client_is_refused(secured: dict[str, str]) -> None:
    await refused(KafkaConnection(secured["KARROT_KAFKA_BOOTSTRAP"]), "KARROT_KAFKA_SECURITY")


async def test_a_wrong_password_fails_fast(secured: dict[str, str]) -> None:
    wrong = {**secured, "KARROT_KAFKA_SASL_PASSWORD": "not-the-password"}
    await refused(connection_of(wrong), "KARROT_KAFKA_SASL_PASSWORD")


async def test_an_untrusted_certificate_fails_fast(secured: dict[str, str]) -> None:
    # The system's CAs did not sign the stack's broker certificate.
    kafka = connection_of(secured, cafile=SYSTEM_CAS)
    await refused(kafka, "KARROT_KAFKA_SSL_CAFILE")


def test_a_worker_with_a_wrong_password_exits_saying_why(
    secured: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **secured,
        "KARROT_KAFKA_SASL_PASSWORD": "not-the-password",
        "KARROT_APP_ID": new_app_id(),
        "KARROT_DATA_DIR": str(tmp_path),
        "KARROT_WEB_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "faust", "-A", "karrot_streams.app", "worker", "-l", "info"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0, output[-2000:]
    assert "refused the SASL credentials" in output, output[-2000:]
    assert "not-the-password" not in output


async def test_pipeline_table_query_dead_letters_and_redrive(
    settings: Settings,
    secured: dict[str, str],
    input_writers: dict[str, WriterSchema],
    worker_factory: type[WorkerProcess],
    tmp_path: Path,
) -> None:
    kafka = connection_of(secured)
    worker = worker_factory(
        app_id=new_app_id(),
        data_dir=tmp_path / "data",
        log_path=tmp_path / "worker.log",
        extra_env=secured,
        group_kafka=kafka,
    )
    worker.start()
    await worker.wait_ready()
    started = datetime.now(UTC) - timedelta(seconds=5)

    # The pipeline: records produced over SASL_SSL, processed by a worker reading over SASL_SSL.
    tag = f"s{uuid.uuid4().hex[:6]}-"
    batch = list(records(TrafficSpec(count=200, poison_share=0.1, tag=tag, seed=3), input_writers))
    truth = compute(batch, settings.fee_rate)
    assert truth.failed_ids or sum(truth.dead_letters.values()), "the batch has poison"
    await produce(kafka, batch)
    expected = {i: "PROCESSED" for i in truth.valid_ids} | {i: "FAILED" for i in truth.failed_ids}
    found = await store.wait_for_statuses(settings.database_dsn, expected)
    missing = [i for i, s in expected.items() if found.get(i, ("",))[0] != s]
    assert not missing, f"{len(missing)} events without their row:\n{worker.tail()}"

    async with httpx.AsyncClient(base_url=worker.url, timeout=30) as http:
        # A table query: an event published over HTTP (produced over SASL_SSL), then counted.
        category = f"보안-{tag}"
        published = await http.post(
            "/api/v1/events",
            headers=AUTH,
            json={
                "eventType": "ITEM_CREATED",
                "aggregateId": f"item-{tag}",
                "payload": {
                    "itemId": f"item-{tag}",
                    "sellerId": f"seller-{tag}",
                    "title": "금고",
                    "price": 5000,
                    "category": category,
                },
            },
        )
        assert published.status_code == 201, published.text
        deadline = time.monotonic() + 60
        while True:
            answer = (await http.get(f"/api/v1/categories/{quote(category)}", headers=AUTH)).json()
            if answer["itemCount"] == 1:
                break
            assert time.monotonic() < deadline, answer
            await asyncio.sleep(0.5)

        # The dead letters, read over SASL_SSL, and one redriven over SASL_SSL.
        dlq = next(topic for topic, count in truth.dead_letters.items() if count)
        listing = await http.get(
            f"/api/v1/dlq/{dlq}/messages",
            params={"since": started.isoformat(), "limit": "1000"},
            headers=AUTH,
        )
        assert listing.status_code == 200, listing.text
        mine = [m for m in listing.json()["messages"] if (m["key"] or "").startswith(tag)]
        assert len(mine) == truth.dead_letters[dlq]
        letter = mine[0]
        redrive = await http.post(
            f"/api/v1/dlq/{dlq}/redrive",
            headers=ADMIN,
            json={"partition": letter["partition"], "offset": letter["offset"]},
        )
        assert redrive.status_code == 200, redrive.text
        assert redrive.json()["redriven"] == 1
        assert redrive.json()["messages"][0]["status"] == "REDRIVEN"

    # The CLI, with the same settings.
    command = [str(Path(sys.executable).parent / "karrot-streams"), "dlq", "list", dlq]
    cli = await asyncio.to_thread(
        subprocess.run,
        [*command, "--limit", "1000"],
        env={**os.environ, **secured},
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = cli.stdout.decode(errors="replace")
    assert cli.returncode == 0, cli.stderr.decode(errors="replace")[-2000:]
    assert str(letter["offset"]) in out
    assert secured["KARROT_KAFKA_SASL_PASSWORD"] not in out + cli.stderr.decode(errors="replace")


def test_a_password_is_not_in_the_settings_repr(secured: dict[str, str]) -> None:
    kafka = connection_of(secured)
    assert isinstance(kafka.password, SecretStr)
    assert secured["KARROT_KAFKA_SASL_PASSWORD"] not in repr(kafka)
