"""Open views: ``/api/v1/monitoring/health``, ``/api/v1/monitoring/ready``,
``/api/v1/monitoring/dlq`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from karrot_streams.connections import kafka_connection
from karrot_streams.dlq.overview import read_overview
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.monitoring import health_checks
from karrot_streams.monitoring.commit_monitor import CommitMonitor
from karrot_streams.web.http import models
from karrot_streams.web.http.errors import ServiceUnavailable
from karrot_streams.web.http.operations import TEXT, Answer, Operation, declare
from karrot_streams.web.http.requests import parse_query
from karrot_streams.web.http.responses import json_response
from karrot_streams.web.view import ApiView

log = logging.getLogger(__name__)

DLQ_TIMEOUT_S = 10.0


class HealthView(ApiView):
    """200 ``{status: UP, components}`` when every component is up, else 503 with DOWN."""

    operations = declare(
        get=Operation(
            "Health of broker, registry, database, pipeline, tables and commits (open)",
            {
                200: Answer("Every component UP", models.Health),
                503: Answer("A component DOWN", models.Health),
            },
            open=True,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        app = self.karrot
        resources = self.resources
        monitor = app.monitor
        broker, registry, database, commits = await asyncio.gather(
            health_checks.broker(app),
            health_checks.schema_registry(resources.registry),
            health_checks.database(resources.store),
            _commits(app, monitor, resources.settings.commit_stall_s),
        )
        components = {
            "broker": broker,
            "schema_registry": registry,
            "database": database,
            "pipeline": health_checks.pipeline(resources.health, resources.is_ready),
            "tables": health_checks.tables(app),
            "commits": commits,
        }
        up = all(check.up for check in components.values())
        return json_response(
            {
                "status": "UP" if up else "DOWN",
                "components": {name: check.to_json() for name, check in components.items()},
            },
            status=200 if up else 503,
        )


class ReadyView(ApiView):
    """200 ``{status: UP}`` once started, assigned and recovered; 503 until then and during a
    rebalance. Cheap (no probe of any dependency): for a readiness probe every few seconds."""

    operations = declare(
        get=Operation(
            "Readiness: started, assignment taken, its tables recovered; no dependency probed"
            " (open)",
            {
                200: Answer("Ready", models.Health),
                503: Answer("Starting, rebalancing or recovering", models.Health),
            },
            open=True,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        components = health_checks.readiness(self.karrot, self.resources.is_ready)
        up = all(check.up for check in components.values())
        return json_response(
            {
                "status": "UP" if up else "DOWN",
                "components": {name: check.to_json() for name, check in components.items()},
            },
            status=200 if up else 503,
        )


async def _commits(app: object, monitor: object, stall_s: float) -> health_checks.Check:
    if not isinstance(monitor, CommitMonitor):
        return health_checks.Check(True, {"tracked": False})
    return await health_checks.commits(app, monitor, stall_s)


class DeadLettersView(ApiView):
    """Counts of ``dlq.<topic>`` and the latest dead letters (``?limit=``, default 20, max 100)."""

    operations = declare(
        get=Operation(
            "Counts per dead-letter topic and the latest letters (open)",
            {200: Answer("Counts and letters", models.MonitoringDeadLetters)},
            errors=(400, 503),
            query=models.RecentQuery,
            open=True,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        limit = parse_query(models.RecentQuery, request.query).limit
        names = self.resources.topics.names
        topics = [names.dead_letter(topic) for topic in INPUT_TOPICS]
        try:
            settings = self.resources.settings
            letters = await read_overview(
                kafka_connection(settings),
                topics,
                limit,
                DLQ_TIMEOUT_S,
                max_bytes=settings.dlq_read_max_bytes,
            )
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("Reading the dead-letter topics failed: %s", exc)
            raise ServiceUnavailable(
                "Kafka could not be read", details={"reason": f"{type(exc).__name__}: {exc}"[:300]}
            ) from exc
        return json_response(letters.to_json(names))


class MetricsView(ApiView):
    """Prometheus text: the project's metrics and Faust's (``faust_*``), one registry."""

    operations = declare(
        get=Operation(
            "Prometheus text exposition: karrot_* and faust_* metrics (open)",
            {200: Answer("Metrics", TEXT)},
            open=True,
        )
    )

    async def get(self, request: web.Request) -> web.StreamResponse:
        body = generate_latest(self.resources.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
