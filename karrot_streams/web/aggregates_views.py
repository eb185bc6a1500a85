"""Views of the aggregate tables: categories, sellers, daily payments and new users.

Each keyed view answers on the worker owning the key's partition (see owner_forwarding.py). A
key never counted answers 200 with zero counts, as the contract asks.
"""

from __future__ import annotations

import time

from aiohttp import web

from karrot_streams.events.enrichment import normalize_category
from karrot_streams.tables import aggregates as agg
from karrot_streams.tables.declarations import DAY, HOUR
from karrot_streams.tables.facts import CURRENCY
from karrot_streams.tables.windows import counted, recent_windows, span
from karrot_streams.web.consistency import (
    category_needs,
    consistent,
    hourly_needs,
    local_category_needs,
    payments_daily_needs,
    region_needs,
    seller_needs,
)
from karrot_streams.web.http import models
from karrot_streams.web.http.errors import BadRequest
from karrot_streams.web.http.operations import Answer, Operation, declare
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.owner_forwarding import answer_from_owner, gather_from_peers
from karrot_streams.web.view import ApiView

HOURLY_WINDOWS = 7 * 24 + 1  # the last seven days, and the hour under way
DAILY_WINDOWS = 30 + 1


def _required(value: str, name: str) -> str:
    if not value:
        raise BadRequest(f"{name} must not be blank", details={"field": name})
    return value


class CategoriesView(ApiView):
    """``GET /api/v1/categories``: this worker's categories, and its peers' (one hop)."""

    operations = declare(
        get=Operation(
            "Every category's aggregates",
            {200: Answer("All categories", models.Categories)},
            errors=(400, 401, 404, 409, 503),
            query=models.ConsistencyQuery,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        tables = self.aggregates
        table = tables.categories
        await consistent(self.karrot, request, local_category_needs(self.karrot, tables))
        found = {key: agg.category_from(value, key).to_json() for key, value in list(table.items())}
        for answer in await gather_from_peers(self.karrot, table, request):
            for stats in answer["categories"]:
                found.setdefault(stats["category"], stats)
        return json_response({"categories": [found[key] for key in sorted(found)]})


class CategoryView(ApiView):
    """``GET /api/v1/categories/{category}``: `{category, itemCount, ..., soldCount}`."""

    operations = declare(
        get=Operation(
            "One category's aggregates (zero counts for one never seen)",
            {200: Answer("The category", models.CategoryStats)},
            errors=(400, 401, 404, 409, 503),
            query=models.ConsistencyQuery,
            path={
                "category": {"description": "URL-encoded UTF-8, e.g. %EB%94%94... for 디지털기기"}
            },
        )
    )

    async def get(self, request: web.Request, category: str) -> web.StreamResponse:
        key = _required(normalize_category(category), "category")
        tables = self.aggregates
        table = tables.categories

        async def local() -> web.StreamResponse:
            await consistent(self.karrot, request, category_needs(self.karrot, tables, key))
            return json_response(agg.category_from(table[key], key).to_json())

        return await answer_from_owner(self.karrot, table, key, request, local)


class CategoryHourlyView(ApiView):
    """``GET /api/v1/categories/{category}/hourly``: listings per hour, last seven days."""

    operations = declare(
        get=Operation(
            "Listings per hour, the last seven days, oldest first",
            {200: Answer("Hourly windows", models.CategoryHourly)},
            errors=(400, 401, 404, 409, 503),
            query=models.ConsistencyQuery,
            path={
                "category": {"description": "URL-encoded UTF-8, e.g. %EB%94%94... for 디지털기기"}
            },
        )
    )

    async def get(self, request: web.Request, category: str) -> web.StreamResponse:
        key = _required(normalize_category(category), "category")
        tables = self.aggregates
        table = tables.category_hourly

        async def local() -> web.StreamResponse:
            await consistent(self.karrot, request, hourly_needs(self.karrot, tables, key))
            windows = recent_windows(table, time.time(), HOUR, HOURLY_WINDOWS)
            return json_response(
                {
                    "category": key,
                    "windows": [
                        {**span(start, HOUR), "itemCount": counter.count}
                        for start, counter in counted(table, key, windows)
                    ],
                }
            )

        return await answer_from_owner(self.karrot, table, key, request, local)


class SellerSalesView(ApiView):
    """``GET /api/v1/sellers/{seller_id}/sales``: completed sales and settlement."""

    operations = declare(
        get=Operation(
            "A seller's completed sales and settlement",
            {200: Answer("The seller", models.SellerSales)},
            errors=(400, 401, 404, 409, 503),
            query=models.ConsistencyQuery,
            path={"sellerId": {"description": "The seller's id"}},
        )
    )

    async def get(self, request: web.Request, seller_id: str) -> web.StreamResponse:
        key = _required(seller_id, "sellerId")
        tables = self.aggregates
        table = tables.sellers

        async def local() -> web.StreamResponse:
            await consistent(self.karrot, request, seller_needs(tables, key))
            return json_response(agg.seller_from(table[key], key).to_json())

        return await answer_from_owner(self.karrot, table, key, request, local)


class PaymentsDailyView(ApiView):
    """``GET /api/v1/payments/daily``: completed payment volume per UTC day, last 30 days."""

    operations = declare(
        get=Operation(
            "Completed payment volume per UTC day, the last 30 days",
            {200: Answer("Daily volume", models.PaymentsDaily)},
            errors=(400, 401, 404, 409, 503),
            query=models.ConsistencyQuery,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        tables = self.aggregates
        table = tables.payment_daily

        async def local() -> web.StreamResponse:
            await consistent(self.karrot, request, payments_daily_needs(tables))
            windows = recent_windows(table, time.time(), DAY, DAILY_WINDOWS)
            return json_response(
                {
                    "currency": CURRENCY,
                    "days": [
                        {
                            **span(start, DAY),
                            "paymentCount": counter.count,
                            "totalAmount": counter.amount,
                        }
                        for start, counter in counted(table, CURRENCY, windows)
                    ],
                }
            )

        return await answer_from_owner(self.karrot, table, CURRENCY, request, local)


class RegionNewUsersView(ApiView):
    """``GET /api/v1/regions/{region}/new-users``: new users per UTC day, last 30 days."""

    operations = declare(
        get=Operation(
            "New users per UTC day in a region, the last 30 days",
            {200: Answer("Daily new users", models.RegionNewUsers)},
            errors=(400, 401, 404, 409, 503),
            query=models.ConsistencyQuery,
            path={"region": {"description": "URL-encoded UTF-8 region name"}},
        )
    )

    async def get(self, request: web.Request, region: str) -> web.StreamResponse:
        # The pipeline keys regions as it enriches them: whitespace collapsed, case kept.
        key = _required(" ".join(region.split()), "region")
        tables = self.aggregates
        table = tables.users_daily

        async def local() -> web.StreamResponse:
            await consistent(self.karrot, request, region_needs(tables, key))
            windows = recent_windows(table, time.time(), DAY, DAILY_WINDOWS)
            return json_response(
                {
                    "region": key,
                    "days": [
                        {**span(start, DAY), "newUsers": counter.count}
                        for start, counter in counted(table, key, windows)
                    ],
                }
            )

        return await answer_from_owner(self.karrot, table, key, request, local)
