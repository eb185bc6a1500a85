from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from karrot_streams.events.enrichment import (
    SourcePosition,
    chat_signals,
    enrich,
    format_kst,
    normalize_category,
    payment_fee,
    price_band,
)
from karrot_streams.events.model import Event
from karrot_streams.events.types import NAMESPACE, EventType


@pytest.mark.parametrize(
    ("amount", "rate", "fee"),
    [
        (10_000, "0.033", 330),
        (15, "0.033", 0),
        (16, "0.033", 1),
        (1, "0", 0),
        (999_999, "0.1", 100_000),
    ],
)
def test_fee_rounds_half_up_and_net_completes_gross(amount: int, rate: str, fee: int) -> None:
    got_fee, net = payment_fee(amount, Decimal(rate))
    assert got_fee == fee
    assert got_fee + net == amount


def test_kst_uses_the_seed_format() -> None:
    assert format_kst(datetime(2026, 11, 24, 15, 30, tzinfo=UTC)) == "2026-11-25 00:30:00"


def test_category_normalisation_folds_space_and_case() -> None:
    assert normalize_category("  Digital   Goods ") == "digital goods"
    assert normalize_category("디지털기기") == "디지털기기"


def test_price_bands() -> None:
    assert [price_band(p) for p in (0, 9_999, 10_000, 999_999, 1_000_000)] == [
        "FREE",
        "UNDER_10K",
        "UNDER_100K",
        "UNDER_1M",
        "OVER_1M",
    ]


def test_chat_signals_flag_scam_patterns() -> None:
    scam = chat_signals("선입금 해주세요 국민 123456-01-234567")
    assert scam["containsBankAccount"]
    assert scam["suspectedScam"]
    assert "PREPAYMENT" in scam["scamSignals"]
    phone = chat_signals("010-1234-5678 로 연락주세요")
    assert phone["containsPhoneNumber"]
    assert not phone["suspectedScam"]
    plain = chat_signals("네고 가능할까요?")
    assert plain == {
        "messageLength": len("네고 가능할까요?"),
        "containsPhoneNumber": False,
        "containsBankAccount": False,
        "containsExternalLink": False,
        "suspectedScam": False,
        "scamSignals": [],
    }


def test_enrich_payment_record() -> None:
    event = Event(
        event_id=str(uuid.uuid4()),
        event_type=EventType.PAYMENT_COMPLETED,
        aggregate_id="p1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload_record=f"{NAMESPACE}.Payment",
        payload={
            "paymentId": "p1",
            "buyerId": "b",
            "sellerId": "s",
            "itemId": "i",
            "amount": 50_000,
        },
    )
    processed = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    record = enrich(event, SourcePosition("payment-events", 2, 41), processed, Decimal("0.033"))
    assert record["derived"] == {"feeRate": "0.033", "feeAmount": 1650, "netAmount": 48_350}
    assert record["processing"]["processedAtUtc"] == "2026-01-01T00:00:01.000Z"
    assert record["processing"]["processedAtKst"] == "2026-01-01 09:00:01"
    assert record["processing"]["sourceOffset"] == 41
    assert record["payload"] == (f"{NAMESPACE}.Payment", dict(event.payload))
