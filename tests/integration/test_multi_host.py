"""Two workers on one port at two addresses, as two hosts with the same settings would be.

Before the fix both advertised ``http://0.0.0.0:<port>``: each took every key for its own and
answered the other's keys with local zeros (200) or a 503 "rebalancing". Each now advertises its
own address, and every key is answered with the truth from both.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from karrot_streams.peer_auth import FORWARDED_HEADER, PEER_HEADER, PeerAuth
from karrot_streams.settings import Settings
from tests.support.worker import API_TOKEN, free_port, sharing_workers, worker_env

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HOSTS = ("127.0.0.2", "127.0.0.3")
PEER_SECRET = "the-peer-secret-of-two-hosts"


@pytest.fixture(scope="module")
def two_hosts(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    base = tmp_path_factory.mktemp("two-hosts")
    port = str(free_port(*HOSTS))
    first = worker_env(Path(base / "a"), KARROT_WEB_PORT=port, KARROT_WEB_HOST=HOSTS[0])
    first["KARROT_PEER_SECRET"] = PEER_SECRET
    second = {**first, "KARROT_WEB_HOST": HOSTS[1], "KARROT_DATA_DIR": str(base / "b")}
    with sharing_workers(first, second) as urls:
        yield urls


def test_each_worker_advertises_its_own_address(two_hosts: list[str]) -> None:
    advertised = [
        httpx.get(url + "/api/v1/monitoring/stats", timeout=10).json()["worker"]["url"]
        for url in two_hosts
    ]
    assert [u.rstrip("/") for u in advertised] == two_hosts
    assert two_hosts[0].rsplit(":", 1)[1] == two_hosts[1].rsplit(":", 1)[1], "one port"


def test_faust_router_pages_are_not_served(two_hosts: list[str]) -> None:
    for url in two_hosts:
        for path in ("/router/", "/router/list/", "/table/"):
            assert httpx.get(url + path, timeout=10).status_code == 404, path


def test_every_key_is_answered_with_the_truth_from_both(two_hosts: list[str]) -> None:
    tag = uuid.uuid4().hex[:8]
    # Distinct counts per category: a local zero or another key's answer cannot pass.
    truth = {f"분류{n}-{tag}": n % 3 + 1 for n in range(16)}
    posted = 0
    for n, (category, items) in enumerate(truth.items()):
        for i in range(items):
            response = httpx.post(
                two_hosts[posted % 2] + "/api/v1/events",
                headers=AUTH,
                json={
                    "eventType": "ITEM_CREATED",
                    "aggregateId": f"item{n}.{i}-{tag}",
                    "payload": {
                        "itemId": f"item{n}.{i}-{tag}",
                        "sellerId": f"seller-{tag}",
                        "title": "의자",
                        "price": 1000,
                        "category": category,
                    },
                },
                timeout=30,
            )
            assert response.status_code == 201, response.text
            posted += 1

    def answers() -> dict[tuple[str, str], tuple[int, object]]:
        out: dict[tuple[str, str], tuple[int, object]] = {}
        for url in two_hosts:
            for category in truth:
                got = httpx.get(
                    f"{url}/api/v1/categories/{quote(category)}", headers=AUTH, timeout=30
                )
                out[(url, category)] = (got.status_code, got.json().get("itemCount"))
        return out

    expected = {(url, c): (200, items) for url in two_hosts for c, items in truth.items()}
    deadline = time.monotonic() + 90
    got = answers()
    while got != expected:
        assert time.monotonic() < deadline, {k: v for k, v in got.items() if expected[k] != v}
        time.sleep(1)
        got = answers()
    for url in two_hosts:
        listed = httpx.get(url + "/api/v1/categories", headers=AUTH, timeout=30).json()
        counts = {c["category"]: c["itemCount"] for c in listed["categories"]}
        assert {c: counts.get(c) for c in truth} == truth, url
    # Each worker really owns a part (so half of those answers were forwarded to the other).
    path = "/api/v1/categories"
    signature = PeerAuth(PEER_SECRET.encode()).sign("GET", path, "")
    signed = {FORWARDED_HEADER: "1", PEER_HEADER: signature}

    def local_categories(url: str) -> set[str]:
        answer = httpx.get(url + path, headers=signed, timeout=30).json()
        return {c["category"] for c in answer["categories"]} & set(truth)

    local = [local_categories(url) for url in two_hosts]
    assert local[0] and local[1], local
    assert local[0] | local[1] == set(truth)
    assert not local[0] & local[1]
