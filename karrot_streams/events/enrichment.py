"""Derived fields added to every valid event before it is forwarded. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from karrot_streams.events.model import Event

SEOUL = ZoneInfo("Asia/Seoul")
KST_FORMAT = "%Y-%m-%d %H:%M:%S"  # the seed's TimeUtils pattern yyyy-MM-dd HH:mm:ss

PHONE = re.compile(r"(?<!\d)(?:\+?82[-.\s]?)?0?1[016789][-.\s]?\d{3,4}[-.\s]?\d{4}(?!\d)")
ACCOUNT = re.compile(r"(?<!\d)\d{2,6}-\d{2,6}-\d{2,8}(?!\d)|(?<!\d)\d{11,14}(?!\d)")
BANKS = re.compile(
    r"국민|신한|우리은행|하나은행|농협|기업은행|카카오뱅크|토스뱅크|새마을|우체국|계좌"
)
LINK = re.compile(r"https?://|www\.|open\.kakao\.com|bit\.ly", re.IGNORECASE)
#: Phrases of the classic second-hand scams: pay first, leave the platform, fake safe-payment links.
SCAM_PHRASES: dict[str, re.Pattern[str]] = {
    "PREPAYMENT": re.compile(r"선입금|입금\s*먼저|먼저\s*입금|송금\s*먼저"),
    "OFF_PLATFORM": re.compile(r"카톡|카카오톡|텔레그램|오픈채팅|라인\s*아이디", re.IGNORECASE),
    "FAKE_SAFE_PAYMENT": re.compile(r"안전\s*결제\s*링크|안전거래\s*사이트|네이버\s*페이\s*링크"),
    "SHIPPING_ONLY": re.compile(r"택배\s*거래만|직거래\s*(?:불가|안\s*돼)"),
}


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where an event was read: carried along so aggregates can skip replays."""

    topic: str
    partition: int
    offset: int


def normalize_category(category: str) -> str:
    return " ".join(category.split()).lower()


def price_band(price: int) -> str:
    if price == 0:
        return "FREE"
    if price < 10_000:
        return "UNDER_10K"
    if price < 100_000:
        return "UNDER_100K"
    if price < 1_000_000:
        return "UNDER_1M"
    return "OVER_1M"


def payment_fee(amount: int, rate: Decimal) -> tuple[int, int]:
    """Fee rounded half up to whole KRW, and the net that makes fee + net == amount."""
    fee = int((Decimal(amount) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return fee, amount - fee


def chat_signals(message: str) -> dict[str, Any]:
    phone = PHONE.search(message) is not None
    account = ACCOUNT.search(message) is not None and BANKS.search(message) is not None
    link = LINK.search(message) is not None
    signals = [name for name, pattern in SCAM_PHRASES.items() if pattern.search(message)]
    if account:
        signals.append("BANK_ACCOUNT")
    if link and signals:
        signals.append("LINK_WITH_PRESSURE")
    return {
        "messageLength": len(message),
        "containsPhoneNumber": phone,
        "containsBankAccount": account,
        "containsExternalLink": link,
        "suspectedScam": bool(signals) and (account or link or "PREPAYMENT" in signals),
        "scamSignals": signals,
    }


def derived_fields(event: Event, fee_rate: Decimal) -> dict[str, Any]:
    payload = event.payload
    record = event.payload_record.rsplit(".", 1)[-1]
    if record == "UserCreated":
        region = payload.get("region")
        return {
            "emailDomain": payload["email"].rsplit("@", 1)[-1].lower(),
            "regionNormalized": " ".join(region.split()) if region else None,
        }
    if record == "ItemCreated":
        return {
            "categoryNormalized": normalize_category(payload["category"]),
            "priceBand": price_band(payload["price"]),
        }
    if record == "Payment":
        fee, net = payment_fee(payload["amount"], fee_rate)
        return {"feeRate": str(fee_rate), "feeAmount": fee, "netAmount": net}
    if record == "ChatMessage":
        return chat_signals(payload["message"])
    raise ValueError(f"no enrichment for {event.payload_record}")


def format_kst(moment: datetime) -> str:
    return moment.astimezone(SEOUL).strftime(KST_FORMAT)


@lru_cache(maxsize=16)
def _processing_times(processed_at: datetime) -> tuple[datetime, str, str]:
    """A batch's processing time in its three forms; the whole batch shares one."""
    utc = processed_at.astimezone(UTC)
    return utc, utc.isoformat(timespec="milliseconds").replace("+00:00", "Z"), format_kst(utc)


def enrich(
    event: Event, source: SourcePosition, processed_at: datetime, fee_rate: Decimal
) -> dict[str, Any]:
    """The enriched Avro record: the envelope, where and when it was processed, derived fields."""
    processed_utc, processed_iso, processed_kst = _processing_times(processed_at)
    return {
        **event.to_avro(),
        "processing": {
            "processedAt": processed_utc,
            "processedAtUtc": processed_iso,
            "processedAtKst": processed_kst,
            "sourceTopic": source.topic,
            "sourcePartition": source.partition,
            "sourceOffset": source.offset,
        },
        "derived": derived_fields(event, fee_rate),
    }
