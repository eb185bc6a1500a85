"""Hostile HTTP against a real worker: random JSON, huge strings, deep nesting, wrong types, path
traversal and SQL in path parameters, invalid tokens. Never a 5xx, never a crash, and nothing in
``event_store`` for a rejected publish. Example counts are bounded: about a minute in all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiopg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karrot_streams.events.types import EventType
from karrot_streams.settings import Settings
from tests.faults.conftest import Workers
from tests.support.worker import API_TOKEN

pytestmark = pytest.mark.faults

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
nasty_text = st.sampled_from(
    [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "' OR '1'='1",
        "1; DROP TABLE event_store; --",
        "%00",
        "\x00",
        "디지털기기",
        "🥕" * 50,
        "a" * 5000,
        "${jndi:ldap://x}",
        "<script>alert(1)</script>",
        "",
        " ",
    ]
) | st.text(max_size=300)

publish_bodies = st.fixed_dictionaries(
    {},
    optional={
        "eventType": st.sampled_from([t.value for t in EventType]) | json_values,
        "aggregateId": nasty_text | json_values,
        "payload": st.fixed_dictionaries(
            {},
            optional={
                "itemId": nasty_text | json_values,
                "sellerId": nasty_text,
                "title": nasty_text,
                "price": st.integers() | json_values,
                "category": nasty_text,
                "email": nasty_text,
                "amount": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
                "message": st.text(max_size=2000),
            },
        )
        | json_values,
        "correlationId": nasty_text | json_values,
        "userId": nasty_text | json_values,
        "source": json_values,
    },
)


class Api:
    def __init__(self, url: str, dsn: str) -> None:
        self.url = url
        self.dsn = dsn
        self.client = httpx.Client(timeout=30.0)

    def rows(self) -> int:
        async def count() -> int:
            async with aiopg.connect(self.dsn) as conn, conn.cursor() as cur:
                await cur.execute("SELECT count(*) FROM event_store")
                row = await cur.fetchone()
                return int(row[0])

        return asyncio.run(count())

    def post(self, body: bytes, token: str | None = API_TOKEN) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post(self.url + "/api/v1/events", content=body, headers=headers)

    def get(self, path: str, token: str | None = API_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.get(self.url + path, headers=headers)


@pytest.fixture
async def api(workers: Workers, fault_settings: Settings) -> AsyncIterator[Api]:
    worker = workers.start("worker")
    await worker.wait_ready()
    client = Api(worker.url, fault_settings.database_dsn)
    yield client
    client.client.close()
    assert worker.process is not None and worker.process.poll() is None, worker.tail()
    async with httpx.AsyncClient(timeout=10) as health_client:
        answer = await health_client.get(worker.url + "/api/v1/monitoring/health")
    assert answer.status_code == 200, answer.text
    assert "Unexpected error" not in worker.tail(5000), worker.tail(200)


def no_server_error(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code < 500, (answer.status_code, answer.text[:500])
    body = answer.json()
    assert isinstance(body, dict)
    return body


def check_publish(api: Api, body: bytes) -> None:
    before = api.rows()
    answer = api.post(body)
    no_server_error(answer)
    # Other rows only come from this worker's own publishes (the fault stack is ours).
    after = api.rows()
    if answer.status_code == 201:
        assert after == before + 1
    else:
        assert answer.status_code in (400, 413), answer.text[:300]
        assert after == before, f"a rejected publish wrote a row: {answer.text[:300]}"


@EXAMPLES
@given(body=publish_bodies)
def test_publish_random_requests(api: Api, body: dict[str, Any]) -> None:
    check_publish(api, json.dumps(body).encode())


@EXAMPLES
@given(
    raw=st.binary(max_size=2000)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(min_value=1, max_value=50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    | st.integers(min_value=200_000, max_value=400_000).map(
        lambda n: json.dumps({"eventType": "ITEM_CREATED", "aggregateId": "x" * n}).encode()
    )
)
def test_publish_random_bytes(api: Api, raw: bytes) -> None:
    check_publish(api, raw)


@EXAMPLES
@given(value=nasty_text, which=st.sampled_from(["event", "category", "hourly", "seller"]))
def test_query_paths(api: Api, value: str, which: str) -> None:
    encoded = quote(value, safe="")
    path = {
        "event": f"/api/v1/events/{encoded}",
        "category": f"/api/v1/categories/{encoded}",
        "hourly": f"/api/v1/categories/{encoded}/hourly",
        "seller": f"/api/v1/sellers/{encoded}/sales",
    }[which]
    answer = api.get(path)
    body = no_server_error(answer)
    assert answer.status_code in (200, 400, 404), (path, answer.status_code, body)


@EXAMPLES
@given(
    token=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200
    )
)
def test_invalid_tokens(api: Api, token: str) -> None:
    if token == API_TOKEN:
        return
    assert api.get("/api/v1/categories", token=token).status_code == 401
    before = api.rows()
    answer = api.post(b'{"eventType":"USER_CREATED"}', token=token)
    assert answer.status_code == 401
    assert api.rows() == before
