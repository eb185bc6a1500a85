"""Two workers of one app: every keyed view answers alike on both, the list gathers both halves."""

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
PEER_SECRET = "the-peer-secret-of-this-test"


def local_only(path: str) -> dict[str, str]:
    """What routing sends a peer (signed hop): answer ``GET path`` from local tables."""
    return {
        FORWARDED_HEADER: "1",
        PEER_HEADER: PeerAuth(PEER_SECRET.encode()).sign("GET", path, ""),
    }


@pytest.fixture(scope="module")
def two_workers(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    base = tmp_path_factory.mktemp("two-workers")
    first = worker_env(Path(base / "w1"), KARROT_PEER_SECRET=PEER_SECRET)
    second = {**first, "KARROT_WEB_PORT": str(free_port()), "KARROT_DATA_DIR": str(base / "w2")}
    with sharing_workers(first, second) as urls:
        yield urls


def test_keyed_views_and_the_list_agree_on_both_workers(two_workers: list[str]) -> None:
    tag = uuid.uuid4().hex[:8]
    categories = [f"분류{n}-{tag}" for n in range(16)]  # both workers own some, but 2 in 65536
    for n, category in enumerate(categories):
        response = httpx.post(
            two_workers[n % 2] + "/api/v1/events",
            headers=AUTH,
            json={
                "eventType": "ITEM_CREATED",
                "aggregateId": f"item{n}-{tag}",
                "payload": {
                    "itemId": f"item{n}-{tag}",
                    "sellerId": f"seller-{tag}",
                    "title": "의자",
                    "price": 1000 * (n + 1),
                    "category": category,
                },
            },
            timeout=30,
        )
        assert response.status_code == 201, response.text

    def answers() -> list[dict[str, object]]:
        return [
            httpx.get(f"{url}/api/v1/categories/{quote(category)}", headers=AUTH, timeout=30).json()
            for url in two_workers
            for category in categories
        ]

    deadline = time.monotonic() + 90
    while not all(answer["itemCount"] == 1 for answer in answers()):
        assert time.monotonic() < deadline, answers()
        time.sleep(1)
    for n, category in enumerate(categories):
        for url in two_workers:
            hourly = httpx.get(
                f"{url}/api/v1/categories/{quote(category)}/hourly", headers=AUTH, timeout=30
            ).json()
            assert [w["itemCount"] for w in hourly["windows"]] == [1], (url, n, hourly)

    local = [
        {
            c["category"]
            for c in httpx.get(
                url + "/api/v1/categories", headers=local_only("/api/v1/categories"), timeout=30
            ).json()["categories"]
            if c["category"].endswith(tag)
        }
        for url in two_workers
    ]
    assert local[0] and local[1], "each worker should own some of the categories"
    assert local[0] | local[1] == set(categories)
    assert not local[0] & local[1]
    for url in two_workers:
        listed = httpx.get(url + "/api/v1/categories", headers=AUTH, timeout=30).json()
        assert {c["category"] for c in listed["categories"]} >= set(categories)
        # A client's own hop header is ignored: it is routed (and gathered) as any request.
        hop = {**AUTH, FORWARDED_HEADER: "1"}
        listed = httpx.get(url + "/api/v1/categories", headers=hop, timeout=30).json()
        assert {c["category"] for c in listed["categories"]} >= set(categories)
        # Without a token it is not let in, hop header or not.
        refused = httpx.get(url + "/api/v1/categories", headers={FORWARDED_HEADER: "1"})
        assert refused.status_code == 401
