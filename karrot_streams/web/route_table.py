"""The HTTP API of a worker (the contract's HTTP table), mounted on Faust's aiohttp web server."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from faust.web.drivers.aiohttp import Web

from karrot_streams.monitoring import commit_monitor
from karrot_streams.web.aggregates_views import (
    CategoriesView,
    CategoryHourlyView,
    CategoryView,
    PaymentsDailyView,
    RegionNewUsersView,
    SellerSalesView,
)
from karrot_streams.web.batch_views import PublishBatchView
from karrot_streams.web.consistency import ITEM_PATH
from karrot_streams.web.console_views import ConsoleAssetView, ConsoleView
from karrot_streams.web.dlq_views import DeadLetterMessagesView, RedriveView
from karrot_streams.web.events_views import EventView, PublishEventView
from karrot_streams.web.http.auth import TokenCheck
from karrot_streams.web.http.middleware import api_middleware
from karrot_streams.web.internal_views import ItemStateView
from karrot_streams.web.monitoring_views import (
    DeadLettersView,
    HealthView,
    MetricsView,
    ReadyView,
)
from karrot_streams.web.openapi import OPENAPI_PATH, openapi_view
from karrot_streams.web.stats_views import StatsView
from karrot_streams.web.view import ApiView

if TYPE_CHECKING:
    from karrot_streams.worker_app import KarrotApp

ROUTES: tuple[tuple[str, type[ApiView]], ...] = (
    ("/api/v1/events", PublishEventView),
    ("/api/v1/events/batch", PublishBatchView),
    ("/api/v1/events/{event_id}", EventView),
    ("/api/v1/categories", CategoriesView),
    ("/api/v1/categories/{category}", CategoryView),
    ("/api/v1/categories/{category}/hourly", CategoryHourlyView),
    ("/api/v1/sellers/{seller_id}/sales", SellerSalesView),
    ("/api/v1/payments/daily", PaymentsDailyView),
    ("/api/v1/regions/{region}/new-users", RegionNewUsersView),
    ("/api/v1/dlq/{topic}/messages", DeadLetterMessagesView),
    ("/api/v1/dlq/{topic}/redrive", RedriveView),
    ("/api/v1/monitoring/health", HealthView),
    ("/api/v1/monitoring/ready", ReadyView),
    ("/api/v1/monitoring/dlq", DeadLettersView),
    ("/api/v1/monitoring/stats", StatsView),
    (OPENAPI_PATH, openapi_view(lambda: ROUTES)),
    ("/metrics", MetricsView),
    ("/console", ConsoleView),
    ("/console/{name}", ConsoleAssetView),
    (ITEM_PATH, ItemStateView),
)


def register(app: KarrotApp) -> None:
    settings = app.resources.settings
    tokens = TokenCheck(
        token.get_secret_value() for token in (*settings.api_tokens, *settings.admin_tokens)
    )
    cast(Web, app.web).web_app.middlewares.append(api_middleware(tokens, app.peer_auth))
    commit_monitor.install(app, app.resources.metrics.registry)
    for path, view in ROUTES:
        app.page(path, name=view.__name__)(view)
