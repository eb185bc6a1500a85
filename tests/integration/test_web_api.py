"""The HTTP contract on a real worker: auth, errors, publish to PROCESSED, aggregates, monitoring.

Each aggregate test uses keys of its own (a fresh suffix), so counts start at zero whatever the
topics already hold.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.worker import ADMIN_TOKEN, API_TOKEN

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ERROR_FIELDS = {"code", "message", "timestamp", "path", "details"}
EVENTUALLY_S = 90.0


@pytest.fixture(scope="module")
def api(worker_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker_url, headers=AUTH, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(worker_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker_url, timeout=30.0) as client:
        yield client


def suffix() -> str:
    return uuid.uuid4().hex[:10]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_FIELDS
    assert body["path"] == response.request.url.path
    assert body["timestamp"].endswith("Z")
    return body


def eventually(probe: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + EVENTUALLY_S
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {EVENTUALLY_S:g}s; last: {value}")
        time.sleep(0.5)


def publish(
    api: httpx.Client, event_type: str, aggregate_id: str, **payload: Any
) -> dict[str, Any]:
    response = api.post(
        "/api/v1/events",
        json={"eventType": event_type, "aggregateId": aggregate_id, "payload": payload},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def item(api: httpx.Client, item_id: str, seller: str, price: int, category: str) -> None:
    publish(
        api,
        "ITEM_CREATED",
        item_id,
        itemId=item_id,
        sellerId=seller,
        title="아이폰 15",
        price=price,
        category=category,
        region="서울 강남구",
    )


def parse_iso(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- monitoring (open) -------------------------------------------------------------------------


def test_health_is_open_and_up(anonymous: httpx.Client) -> None:
    response = anonymous.get("/api/v1/monitoring/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "UP"
    assert set(body["components"]) >= {
        "broker",
        "schema_registry",
        "database",
        "pipeline",
        "tables",
        "commits",
    }
    for component in body["components"].values():
        assert component["status"] == "UP"
        assert isinstance(component["details"], dict)


def test_metrics_are_open_prometheus_text(anonymous: httpx.Client) -> None:
    response = anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "karrot_events_processed_total" in response.text
    assert "faust_" in response.text


def test_dead_letters_are_open(anonymous: httpx.Client) -> None:
    response = anonymous.get("/api/v1/monitoring/dlq", params={"limit": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["topics"]) == {
        "dlq.user-events",
        "dlq.item-events",
        "dlq.payment-events",
        "dlq.chat-events",
    }
    for topic in body["topics"].values():
        assert topic["count"] >= 0
    assert len(body["recent"]) <= 5
    timestamps = [parse_iso(letter["timestamp"]) for letter in body["recent"]]
    assert timestamps == sorted(timestamps, reverse=True)
    for letter in body["recent"]:
        assert letter["topic"] in body["topics"]
        assert {"partition", "offset", "key", "headers"} <= set(letter)
        assert letter["headers"]["original_topic"] == letter["topic"].removeprefix("dlq.")


@pytest.mark.parametrize("limit", ["abc", "-1", "101"])
def test_dead_letters_bad_limit(anonymous: httpx.Client, limit: str) -> None:
    body = error_of(anonymous.get("/api/v1/monitoring/dlq", params={"limit": limit}), 400)
    assert body["details"] == {"field": "limit"}


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/categories"),
        ("GET", "/api/v1/categories/디지털기기"),
        ("GET", "/api/v1/sellers/s1/sales"),
        ("GET", f"/api/v1/events/{uuid.uuid4()}"),
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/no-such-thing"),
    ],
)
def test_api_needs_a_valid_token(
    anonymous: httpx.Client, headers: dict[str, str], method: str, path: str
) -> None:
    response = anonymous.request(method, path, headers=headers, json={})
    body = error_of(response, 401)
    assert body["code"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_admin_token_is_accepted(anonymous: httpx.Client) -> None:
    response = anonymous.get(
        "/api/v1/sellers/nobody/sales", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 200


# -- errors ------------------------------------------------------------------------------------


def test_unknown_path_is_404_json(api: httpx.Client) -> None:
    body = error_of(api.get("/api/v1/no-such-thing"), 404)
    assert body["code"] == "NOT_FOUND"
    error_of(api.get("/api/v1/monitoring/no-such-thing"), 404)


def test_wrong_method_is_405_json(api: httpx.Client) -> None:
    response = api.delete("/api/v1/events")
    body = error_of(response, 405)
    assert body["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in response.headers["allow"]
    error_of(api.put("/api/v1/categories"), 405)


def test_unknown_event_is_404_json(api: httpx.Client) -> None:
    event_id = str(uuid.uuid4())
    body = error_of(api.get(f"/api/v1/events/{event_id}"), 404)
    assert event_id in body["message"]


GOOD_ITEM = {
    "itemId": "i-1",
    "sellerId": "s-1",
    "title": "자전거",
    "price": 50000,
    "category": "스포츠/레저",
}


@pytest.mark.parametrize(
    ("content", "field", "code"),
    [
        (b"{not json", None, "INVALID_REQUEST"),
        (b"", None, "INVALID_REQUEST"),
        (b"[1, 2]", None, "INVALID_REQUEST"),
        (b"\xff\xfe", None, "INVALID_REQUEST"),
        ({"aggregateId": "a", "payload": GOOD_ITEM}, "eventType", "EVENT_VALIDATION_FAILED"),
        ({"eventType": "ITEM_CREATED", "payload": GOOD_ITEM}, "aggregateId", None),
        ({"eventType": "ITEM_CREATED", "aggregateId": "a"}, "payload", None),
        ({"eventType": "ITEM_BURNED", "aggregateId": "a", "payload": {}}, "eventType", None),
        ({"eventType": 3, "aggregateId": "a", "payload": GOOD_ITEM}, "eventType", None),
        (
            {"eventType": "ITEM_CREATED", "aggregateId": " ", "payload": GOOD_ITEM},
            "aggregateId",
            None,
        ),
        (
            {"eventType": "ITEM_CREATED", "aggregateId": 1, "payload": GOOD_ITEM},
            "aggregateId",
            None,
        ),
        ({"eventType": "ITEM_CREATED", "aggregateId": "a", "payload": "x"}, "payload", None),
        (
            {
                "eventType": "ITEM_CREATED",
                "aggregateId": "a",
                "payload": {**GOOD_ITEM, "price": "1"},
            },
            "payload.price",
            None,
        ),
        (
            {
                "eventType": "ITEM_CREATED",
                "aggregateId": "a",
                "payload": {**GOOD_ITEM, "price": -5},
            },
            "payload.price",
            None,
        ),
        (
            {"eventType": "ITEM_CREATED", "aggregateId": "a", "payload": {"itemId": "i"}},
            "payload.sellerId",
            None,
        ),
        (
            {
                "eventType": "USER_CREATED",
                "aggregateId": "u",
                "payload": {"userId": "u", "email": "no-at-sign", "nickname": "당근"},
            },
            "payload.email",
            None,
        ),
        (
            {
                "eventType": "PAYMENT_COMPLETED",
                "aggregateId": "p",
                "payload": {
                    "paymentId": "p",
                    "buyerId": "b",
                    "sellerId": "s",
                    "itemId": "i",
                    "amount": 0,
                },
            },
            "payload.amount",
            None,
        ),
        (
            {
                "eventType": "CHAT_MESSAGE_SENT",
                "aggregateId": "r",
                "payload": {"chatRoomId": "r", "senderId": "u", "message": "가" * 1001},
            },
            "payload.message",
            None,
        ),
    ],
)
def test_bad_publish_requests_are_400(
    api: httpx.Client, content: bytes | dict[str, Any], field: str | None, code: str | None
) -> None:
    if isinstance(content, bytes):
        response = api.post(
            "/api/v1/events", content=content, headers={"Content-Type": "application/json"}
        )
    else:
        response = api.post("/api/v1/events", json=content)
    body = error_of(response, 400)
    assert body["code"] == (code or "EVENT_VALIDATION_FAILED")
    if field is not None:
        assert body["details"] == {"field": field}
        assert field.rsplit(".", 1)[-1].lower() in body["message"].lower()


def test_oversized_body_is_413(api: httpx.Client) -> None:
    big = {"eventType": "ITEM_CREATED", "aggregateId": "a", "payload": {"title": "x" * 300_000}}
    body = error_of(api.post("/api/v1/events", json=big), 413)
    assert body["code"] == "PAYLOAD_TOO_LARGE"


def test_oversized_chunked_body_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 10_000

    response = api.post("/api/v1/events", content=chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    error_of(response, 413)


# -- publish -------------------------------------------------------------------------------------


def test_publish_then_published_then_processed(api: httpx.Client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    item_id = f"item-{suffix()}"
    response = api.post(
        "/api/v1/events",
        json={
            "eventType": "ITEM_CREATED",
            "aggregateId": item_id,
            "payload": {**GOOD_ITEM, "itemId": item_id},
            "correlationId": "corr-1",
            "source": "integration-test",
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    created = response.json()
    assert set(created) == {
        "eventId",
        "status",
        "publishedAt",
        "topic",
        "partition",
        "offset",
        "consistencyToken",
    }
    assert created["consistencyToken"] == (
        f"{created['topic']}:{created['partition']}:{created['offset']}:{created['eventId']}"
    )
    assert created["status"] == "PUBLISHED"
    assert created["topic"] == "item-events"
    assert created["partition"] >= 0
    assert created["offset"] >= 0
    assert parse_iso(created["publishedAt"]) >= before
    uuid.UUID(created["eventId"])

    first = api.get(f"/api/v1/events/{created['eventId']}")
    assert first.status_code == 200
    stored = first.json()
    assert set(stored) == {
        "eventId",
        "eventType",
        "aggregateId",
        "status",
        "eventTime",
        "publishedAt",
        "failureReason",
    }
    assert stored["status"] in {"PUBLISHED", "PROCESSED"}
    assert stored["eventType"] == "ITEM_CREATED"
    assert stored["aggregateId"] == item_id
    assert parse_iso(stored["eventTime"]) >= before
    assert stored["publishedAt"] == created["publishedAt"]
    assert stored["failureReason"] is None

    processed = eventually(
        lambda: api.get(f"/api/v1/events/{created['eventId']}").json(),
        lambda body: body["status"] == "PROCESSED",
        "PROCESSED",
    )
    assert processed["publishedAt"] == created["publishedAt"]


# -- aggregates ----------------------------------------------------------------------------------


def test_korean_category_counts(api: httpx.Client) -> None:
    tag = suffix()
    # Sent with extra spaces and capitals: the tables key categories normalised.
    for n, price in enumerate((1000, 3000)):
        item(api, f"item-{tag}-{n}", f"seller-{tag}", price, f"  디지털기기  Test-{tag.upper()} ")
    category = f"디지털기기 test-{tag}"
    path = f"/api/v1/categories/{quote(category)}"
    stats = eventually(
        lambda: api.get(path).json(), lambda body: body["itemCount"] == 2, "two listings"
    )
    assert stats == {
        "category": category,
        "itemCount": 2,
        "totalPrice": 4000,
        "averagePrice": 2000,
        "minPrice": 1000,
        "maxPrice": 3000,
        "soldCount": 0,
        "soldAmount": 0,
    }
    raw = api.get(f"/api/v1/categories/{quote(f'디지털기기   TEST-{tag}')}")
    assert raw.json() == stats
    assert "디지털기기" in raw.text  # not \uXXXX-escaped

    hourly = api.get(f"{path}/hourly")
    assert hourly.status_code == 200
    body = hourly.json()
    assert body["category"] == category
    assert len(body["windows"]) == 1
    window = body["windows"][0]
    start, end = parse_iso(window["start"]), parse_iso(window["end"])
    assert end - start == timedelta(hours=1)
    assert start <= datetime.now(UTC) < end + timedelta(minutes=1)
    assert window["itemCount"] == 2

    listed = api.get("/api/v1/categories").json()["categories"]
    assert stats in listed
    names = [c["category"] for c in listed]
    assert names == sorted(names)


def test_unknown_category_is_zero(api: httpx.Client) -> None:
    category = f"없는카테고리-{suffix()}"
    response = api.get(f"/api/v1/categories/{quote(category)}")
    assert response.status_code == 200
    assert response.json() == {
        "category": category,
        "itemCount": 0,
        "totalPrice": 0,
        "averagePrice": 0,
        "minPrice": None,
        "maxPrice": None,
        "soldCount": 0,
        "soldAmount": 0,
    }
    hourly = api.get(f"/api/v1/categories/{quote(category)}/hourly")
    assert hourly.json() == {"category": category, "windows": []}


def test_seller_sales_and_daily_payments(api: httpx.Client) -> None:
    tag = suffix()
    seller, item_id, category = f"seller-{tag}", f"item-{tag}", f"가전/주방-{tag}"
    item(api, item_id, seller, 10_000, category)
    publish(
        api,
        "PAYMENT_COMPLETED",
        f"payment-{tag}",
        paymentId=f"payment-{tag}",
        buyerId=f"buyer-{tag}",
        sellerId=seller,
        itemId=item_id,
        amount=10_000,
    )
    sales = eventually(
        lambda: api.get(f"/api/v1/sellers/{quote(seller)}/sales").json(),
        lambda body: body["salesCount"] == 1,
        "one sale",
    )
    assert sales["sellerId"] == seller
    assert sales["grossAmount"] == 10_000
    assert sales["feeAmount"] == 330  # KARROT_FEE_RATE's default 0.033
    assert sales["feeAmount"] + sales["netAmount"] == sales["grossAmount"]
    assert parse_iso(sales["lastSaleAt"]) <= datetime.now(UTC)

    eventually(
        # A "/" in a category travels encoded (%2F) and still names one path segment.
        lambda: api.get(f"/api/v1/categories/{quote(category, safe='')}").json(),
        lambda body: body["soldCount"] == 1,
        "the sale counted for the item's category",
    )

    daily = api.get("/api/v1/payments/daily").json()
    assert daily["currency"] == "KRW"
    today = daily["days"][-1]
    assert parse_iso(today["start"]) <= datetime.now(UTC) < parse_iso(today["end"])
    assert today["paymentCount"] >= 1
    assert today["totalAmount"] >= 10_000


def test_unknown_seller_is_zero(api: httpx.Client) -> None:
    seller = f"판매자-{suffix()}"
    response = api.get(f"/api/v1/sellers/{quote(seller)}/sales")
    assert response.status_code == 200
    assert response.json() == {
        "sellerId": seller,
        "salesCount": 0,
        "grossAmount": 0,
        "feeAmount": 0,
        "netAmount": 0,
        "lastSaleAt": None,
    }


def test_new_users_per_region(api: httpx.Client) -> None:
    tag = suffix()
    region = f"테스트구 {tag}"
    publish(
        api,
        "USER_CREATED",
        f"user-{tag}",
        userId=f"user-{tag}",
        email=f"{tag}@karrot.test",
        nickname="당근이",
        region=region,
    )
    body = eventually(
        lambda: api.get(f"/api/v1/regions/{quote(region)}/new-users").json(),
        lambda body: len(body["days"]) == 1,
        "one new user",
    )
    assert body["region"] == region
    day = body["days"][0]
    assert day["newUsers"] == 1
    assert parse_iso(day["end"]) - parse_iso(day["start"]) == timedelta(days=1)
