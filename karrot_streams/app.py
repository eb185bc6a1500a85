"""The Faust application, built by a factory.

``faust -A karrot_streams.app worker`` reads the module attribute ``app``; it is built on first
access (PEP 562), so importing this module has no side effects and tests build their own apps.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from karrot_streams.connections import kafka_connection
from karrot_streams.monitoring import liveness, logs, tracing
from karrot_streams.peer_auth import PeerAuth
from karrot_streams.pipeline import agents as pipeline_agents
from karrot_streams.provision import dead_letter_limits
from karrot_streams.redaction import install_log_redaction
from karrot_streams.resources import Resources
from karrot_streams.runtime import internals as runtime
from karrot_streams.runtime import state_marks, transactional_store
from karrot_streams.runtime.recovery import BulkTableManager
from karrot_streams.runtime.transactions import TransactionFailed, WorkerTransactions
from karrot_streams.serving import check_serving
from karrot_streams.settings import Settings
from karrot_streams.tables import agents as table_agents
from karrot_streams.tables import codec
from karrot_streams.tables.declarations import Tables
from karrot_streams.web import route_table
from karrot_streams.worker_app import KarrotApp

log = logging.getLogger(__name__)


def group_id(settings: Settings) -> str:
    """The Faust app id, which is the consumer group.

    A pipeline-only worker keeps the app id, so it resumes where an all-in-one worker of the
    same id committed; an aggregates-only worker reads the facts in a group of its own, from
    the start (the replay guard skips what the tables already counted).
    """
    return f"{settings.app_id}-aggregates" if settings.role == "aggregates" else settings.app_id


def create_app(settings: Settings | None = None) -> KarrotApp:
    settings = settings or Settings()
    codec.register()  # before Faust encodes a key: see tables/codec.py
    transactional_store.register()  # before a table makes its store
    logs.setup(settings)  # before the app reads its settings: Faust's worker applies the format
    tracing.setup(settings)  # batch spans exported only with KARROT_OTEL_ENDPOINT
    install_log_redaction()
    check_serving(
        bind_host=settings.web_host,
        canonical_url=settings.canonical_url,
        tokens=(*settings.api_tokens, *settings.admin_tokens),
        allow_demo_tokens=settings.allow_demo_tokens,
        peer_secret_set=settings.peer_secret is not None,
    )
    # Built here, before the event loop runs: a TLS context reads its files.
    kafka = kafka_connection(settings)
    app = KarrotApp(
        group_id(settings),
        broker=f"kafka://{kafka.bootstrap}",
        broker_credentials=kafka.faust_credentials(),
        # Faust's RocksDB store (rocksdict) whose writes wait for the worker's transaction to
        # commit under exactly-once (runtime/transactional_store.py).
        store=f"{transactional_store.SCHEME}://",
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=settings.canonical_url,
        topic_partitions=settings.topic_partitions,
        # Static membership; Faust's table-aware assignor stays in place with it whenever the app
        # has changelog tables (faust-streaming#658, aiokafka.py `_create_worker_consumer`).
        consumer_group_instance_id=settings.group_instance_id,
        table_standby_replicas=settings.table_standby_replicas,
        topic_replication_factor=settings.topic_replication,
        # Faust's own exactly-once is not used (one producer per partition, failures logged and
        # passed over: faust-streaming#517); runtime/transactions.py is the project's.
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Up to 5 ms to fill a produce request: a fifth less CPU per event (bench/), small cost
        # in latency next to the batch windows.
        producer_linger=0.005,
        producer_max_request_size=settings.max_record_bytes,
        # Per partition per fetch. Faust's 1 MiB is ~5,000 changelog records: a table's
        # recovery then waits for a broker round trip every 5,000 records (1 million keys:
        # 20.8 s reading at 1 MiB, 12.1 s at 8 MiB; 4.6 s at 4 MiB with the GC setting too).
        consumer_max_fetch_size=max(4 * 1024 * 1024, settings.max_record_bytes),
        # Batches of a run of records per partition (runtime.producer); Faust's 16 KiB held
        # about 40 enriched events.
        producer_max_batch_size=256 * 1024,
        producer_compression_type=settings.producer_compression_type,
        # Commits come from the interval only: Faust's drain loop would otherwise stop
        # delivering for a commit (and a producer flush) every thousand acks.
        broker_commit_every=2**62,
        # A SIGKILLed worker's partitions move after this, not after Faust's default minute.
        broker_session_timeout=15.0,
        broker_heartbeat_interval=3.0,
        broker_commit_interval=settings.commit_interval,
        stream_buffer_maxsize=4096,
        # Recovery takes the changelog records a fetch brought in runs (runtime/recovery.py).
        TableManager=BulkTableManager,
        web_in_thread=False,
        # Faust's own /table pages would show table contents without a token.
        web_tables_enabled=False,
        web_graph_enabled=False,
        # Its /router pages show every worker's URL and assignment to anyone who asks.
        web_router_enabled=False,
        # With debug on, its / and /assignment/ would show sensors and assignments the same way.
        web_stats_enabled=False,
        # New topics (a fresh app's internal ones) are noticed in seconds, not 5 minutes.
        consumer_metadata_max_age_ms=15_000,
        autodiscover=False,
        loghandlers=[],
    )
    app.resources = Resources.create(settings)
    app.transactions = WorkerTransactions(
        exactly_once=settings.exactly_once,
        transactional_id=(
            state_marks.transactional_id(settings.data_dir, group_id(settings))
            if settings.exactly_once
            else None
        ),
        timeout_s=settings.transaction_timeout_s,
    )

    async def stop_on_failed_transaction(exc: TransactionFailed) -> None:
        # Its table stores drop the transaction's writes (runtime/transactional_store.py): the
        # next run starts from what they hold and reads the committed changelogs after it.
        await app.crash(exc)

    app.transactions.bind(
        lambda: runtime.aiokafka_producer(app),
        stop_on_failed_transaction,
        rebalancing=lambda: bool(app.rebalancing),
    )
    app.peer_auth = PeerAuth(settings.peer_key)
    app.aggregates = None
    if settings.role in ("all", "aggregates"):
        app.aggregates = Tables.declare(
            app, settings.topic_partitions, settings.app_id, settings.topic_names
        )
        table_agents.register(app, app.resources, app.aggregates)
    if settings.role in ("all", "pipeline"):
        pipeline_agents.register(app, app.resources)
    outputs = pipeline_agents.output_topics(app, app.resources)

    @app.task  # type: ignore[untyped-decorator]
    async def prepare() -> None:
        for topic in outputs:
            await topic.maybe_declare()
        await dead_letter_limits(settings)
        await app.resources.ready()

    @app.timer(settings.registry_check_s)  # type: ignore[untyped-decorator]
    async def keep_registrations() -> None:
        await app.resources.refresh_registrations()

    @app.timer(settings.stats_refresh_s)  # type: ignore[untyped-decorator]
    async def refresh_status_counts() -> None:
        if app.resources.status_counts is not None:
            await app.resources.status_counts.refresh()

    route_table.register(app)
    liveness.register(app)
    return app


def collect_garbage_every(allocations: int) -> None:
    """The worker's cyclic garbage collector: a young collection per ``allocations`` objects.

    At CPython's 700 a worker draining a backlog spent a quarter of its CPU in the collector
    (every batch allocates tens of thousands of objects and the heap holds the queued events):
    130 against 102 µs per event at 20,000, 6,800 against 8,400 events/s (docs/performance.md).
    The older generations keep their thresholds; what a collection frees it frees later, at
    some memory (RSS 290 -> 307 MiB after the bench's 100,000 events).
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(allocations, older, oldest)


app: KarrotApp  # built on first access, below


def __getattr__(name: str) -> Any:
    if name == "app":
        global app  # noqa: PLW0603  memoise the default app for faust's -A lookup
        settings = Settings()
        runtime.use_event_loop(settings.event_loop)
        collect_garbage_every(settings.gc_allocations)
        app = create_app(settings)
        return app
    raise AttributeError(name)
