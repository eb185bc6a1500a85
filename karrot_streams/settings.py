"""The one settings object. Nothing else in the project reads the environment."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from karrot_streams.events.topics import TopicNames, check_prefix
from karrot_streams.serving import advertised_url

ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
EventLoop = Literal["uvloop", "asyncio"]
#: What a worker runs: everything, the pipeline stage only, or the aggregate stages only.
Role = Literal["all", "pipeline", "aggregates"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
#: Kafka's codecs; ``none`` is the Kafka producer's own default.
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]

LogFormat = Literal["text", "json"]


def _split_tokens(value: object) -> object:
    if isinstance(value, str):
        return tuple(token.strip() for token in value.split(",") if token.strip())
    return value


def connection_problems(settings: Settings) -> list[str]:
    """What is inconsistent in the Kafka and registry connection settings, by variable."""
    problems: list[str] = []
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    tls = protocol in ("SSL", "SASL_SSL")
    if sasl:
        missing = [
            name
            for name, value in (
                ("KARROT_KAFKA_SASL_MECHANISM", settings.kafka_sasl_mechanism),
                ("KARROT_KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
                ("KARROT_KAFKA_SASL_PASSWORD", settings.kafka_sasl_password),
            )
            if not value
        ]
        if missing:
            problems.append(f"KARROT_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
    elif settings.kafka_sasl_mechanism or settings.kafka_sasl_username:
        problems.append(
            f"KARROT_KAFKA_SASL_* are set but KARROT_KAFKA_SECURITY_PROTOCOL={protocol}: "
            "use SASL_SSL (or SASL_PLAINTEXT)"
        )
    files = (settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if not tls and any(files):
        problems.append(
            f"KARROT_KAFKA_SSL_* files are set but KARROT_KAFKA_SECURITY_PROTOCOL={protocol}: "
            "use SSL or SASL_SSL"
        )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        problems.append("KARROT_KAFKA_SSL_KEYFILE needs KARROT_KAFKA_SSL_CERTFILE")
    if settings.schema_registry_key_file and not settings.schema_registry_cert_file:
        problems.append("KARROT_SCHEMA_REGISTRY_KEY_FILE needs KARROT_SCHEMA_REGISTRY_CERT_FILE")
    if bool(settings.schema_registry_username) != bool(settings.schema_registry_password):
        problems.append(
            "KARROT_SCHEMA_REGISTRY_USERNAME and KARROT_SCHEMA_REGISTRY_PASSWORD go together"
        )
    for name, path in (
        ("KARROT_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
        ("KARROT_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
        ("KARROT_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile),
        ("KARROT_SCHEMA_REGISTRY_CA_FILE", settings.schema_registry_ca_file),
        ("KARROT_SCHEMA_REGISTRY_CERT_FILE", settings.schema_registry_cert_file),
        ("KARROT_SCHEMA_REGISTRY_KEY_FILE", settings.schema_registry_key_file),
    ):
        if path is not None and not path.is_file():
            problems.append(f"{name}={path} is not a readable file")
    return problems


class Settings(BaseSettings):
    """Typed, frozen configuration read from ``KARROT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KARROT_", frozen=True, extra="ignore")

    app_id: str = "karrot-streams"
    #: Put before every topic name the worker, its commands and provisioning use on the broker
    #: (``bench.run-1.`` makes ``bench.run-1.item-events``), so test and benchmark runs sharing
    #: a cluster never read each other's events. Empty: the contract's names. Everything else
    #: (validation, the event store, headers, metrics, the API) keeps the logical names.
    topic_prefix: str = ""
    kafka_bootstrap: str = "localhost:9092"
    #: How every Kafka client of the project connects (connections.py builds the clients'
    #: arguments from these): TLS with ``SSL``/``SASL_SSL``, SASL with ``SASL_*``.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    #: PEM files: the CAs that signed the brokers' certificates (else the system's), and a
    #: client certificate and key for mutual TLS.
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    schema_registry_url: str = "http://localhost:8081/apis/ccompat/v7"
    #: Basic auth for the registry, instead of credentials inside its URL.
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None
    #: A CA bundle for an https registry, and a client certificate and key for mutual TLS.
    schema_registry_ca_file: Path | None = None
    schema_registry_cert_file: Path | None = None
    schema_registry_key_file: Path | None = None
    database_url: SecretStr = SecretStr("postgresql://karrot:karrot@localhost:5432/karrot")
    #: Loopback by default, so a worker started with the demo tokens is not on the network.
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: How other workers reach this one (table queries are forwarded to a key's owner). Unset:
    #: ``http://<web_host>:<web_port>``, or this host's name when ``web_host`` is a wildcard.
    advertised_url: str | None = None
    #: Serve with the built-in demo tokens on a non-loopback address anyway (a demo only).
    allow_demo_tokens: bool = False
    #: What the workers of one group sign forwarded queries with (peer_auth.py). Unset, it is
    #: derived from the app id and the tokens, which the workers of a local run share; a worker
    #: bound to anything but loopback refuses to start without one.
    peer_secret: SecretStr | None = None
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr("local-dev-token"),)
    admin_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr("local-admin-token"),)
    fee_rate: Decimal = Field(default=Decimal("0.033"), ge=0, lt=1)

    data_dir: Path = Path(".karrot-data")
    #: Static group membership (KIP-345), Kafka's ``group.instance.id``: unique per worker of a
    #: group and the same across its restarts (the Helm chart uses the pod's name). A worker that
    #: comes back within the session timeout gets its partitions back with no rebalance, and the
    #: others do not stop. It sends no LeaveGroup on a clean stop: its partitions move after the
    #: session timeout. Faust keeps its own table-aware assignor with it (it falls back to
    #: round-robin only for an app without tables: the pipeline role). Unset: dynamic members.
    group_instance_id: str | None = Field(default=None, min_length=1, max_length=249)
    #: Standby copies of each table partition kept by other workers (Faust's
    #: ``table_standby_replicas``): a moved partition starts from a standby's store, not from
    #: the whole changelog. 0 saves the disk and the reads of the copies.
    table_standby_replicas: int = Field(default=1, ge=0)
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    #: ``exactly_once``: every record a step causes and the offsets it consumed are committed
    #: in one Kafka transaction per commit interval, zombies fenced by the group (README
    #: "Delivery guarantees"). ``at_least_once``: offsets committed after the records are
    #: acknowledged; a crash replays up to a commit interval of output.
    processing_guarantee: ProcessingGuarantee = "exactly_once"
    #: How often offsets (and under exactly-once, the transaction) are committed. Unset: 0.1 s
    #: under exactly-once (Kafka Streams' default there: what a ``read_committed`` reader waits
    #: for), 1 s under at-least-once.
    commit_interval_s: float | None = Field(default=None, gt=0)
    #: The broker aborts a transaction open longer than this; a restarted worker aborts its
    #: previous run's at once (its transactional id is stable per data directory).
    transaction_timeout_s: float = Field(default=60.0, gt=0)
    #: ``pipeline`` and ``aggregates`` run the two stages in processes of their own (each its
    #: own consumer group; see README "Cores and hosts"); ``all`` runs both in one.
    role: Role = "all"
    #: The batch-delivery consumer (runtime/consumer.py): 2.6x the rate at a third of the CPU
    #: per event, and it reads again what a rebalance's queue clear took. ``false`` is Faust's
    #: own consumer, which has that race (records cleared and never read again: a commit gap
    #: or a lost count in the fault suite's "two workers, one killed"); kept for comparison.
    batch_delivery: bool = True
    #: The worker's event loop (``faust -A karrot_streams.app worker``). uvloop is installed
    #: but not the default: with it, aiopg 1.4.0 cannot reconnect after a failed handshake
    #: (a PostgreSQL restart): the stale poll handle of the reused socket raises "the handler
    #: is closed" on every new connection (aio-libs/aiopg#909, fix #926 unreleased).
    event_loop: EventLoop = "asyncio"

    #: Objects allocated between two young garbage collections of the worker (CPython: 700);
    #: see ``app.collect_garbage_every``.
    gc_allocations: int = Field(default=20_000, ge=100)

    #: Events per agent step (and event-store rows per statement). Draining 100,000 events:
    #: 500 -> 8,400/s at 97 µs and 300 MiB; 1,000 -> 9,000/s, 92 µs, 320 MiB; 2,000 -> 9,300/s,
    #: 86 µs, 360 MiB (docs/performance.md). A steady stream fills batches to its rate only.
    batch_max: int = Field(default=1000, ge=1, description="Events handled per agent step.")
    batch_within_s: float = Field(default=0.05, gt=0)
    retry_attempts: int = Field(
        default=3, ge=1, description="Attempts for failures a message may cause."
    )
    retry_backoff_s: float = Field(default=0.2, gt=0)
    retry_backoff_max_s: float = Field(default=5.0, gt=0)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    batch_publish_max: int = Field(default=500, ge=1)
    #: Longest chat message the pipeline accepts (the contract's 1000; raised to redrive).
    max_message_length: int = Field(default=1000, ge=1)
    #: The longest a table query waits for its consistency tokens' events (web/consistency.py);
    #: a query's own ``consistencyWaitMs`` is capped by it.
    consistency_wait_max_s: float = Field(default=10.0, ge=0)
    commit_stall_s: float = Field(default=120.0, gt=0, description="Health turns DOWN after this.")
    #: The liveness watchdog (monitoring/liveness.py): how often it looks, how long a worker may
    #: stay stuck before it stops with a non-zero exit code, and whether it stops it at all.
    liveness_check_s: float = Field(default=5.0, gt=0)
    liveness_grace_s: float = Field(default=30.0, ge=0)
    liveness_exit: bool = True
    #: How often the worker checks that the registry still knows its subjects (and registers
    #: them again if it forgot them, as an in-memory registry does when it restarts).
    registry_check_s: float = Field(default=15.0, gt=0)
    #: Largest record the worker produces, and the ``max.message.bytes`` of the dead-letter
    #: topics: a dead letter is its original record plus the failure headers, so a record just
    #: under the broker's 1 MiB limit needs room above it to be dead-lettered at all.
    max_record_bytes: int = Field(default=2 * 1024 * 1024, ge=1024 * 1024)
    #: ``json``: one JSON object a line for every record, Faust's and aiokafka's included
    #: (monitoring/logs.py); ``text`` keeps Faust's own format.
    log_format: LogFormat = "text"
    #: OTLP/HTTP traces endpoint (``http://collector:4318/v1/traces``): one span per pipeline
    #: batch, linked to the records' traces (monitoring/tracing.py). Unset: no export.
    otel_endpoint: str | None = None
    #: How often the event-store counts of the open stats view are taken (one query per
    #: interval per worker, on a connection of its own, whatever the number of requests).
    stats_refresh_s: float = Field(default=15.0, gt=0)
    #: Most bytes of dead letters one listing request reads (plus one record): a dead-letter
    #: topic may hold millions of letters of up to ``max_record_bytes`` each.
    dlq_read_max_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    #: Compression of what the worker produces (enriched, facts, dead letters, changelogs).
    #: Every codec is readable whatever this says.
    producer_compression: Compression = "none"

    @field_validator("peer_secret")
    @classmethod
    def _peer_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("KARROT_PEER_SECRET must be at least 16 characters")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @model_validator(mode="after")
    def _connections(self) -> Settings:
        problems = connection_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("api_tokens", "admin_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> object:
        return _split_tokens(value)

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def commit_interval(self) -> float:
        if self.commit_interval_s is not None:
            return self.commit_interval_s
        return 0.1 if self.exactly_once else 1.0

    @property
    def topic_names(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def canonical_url(self) -> str:
        """The URL this worker advertises to its group: never a wildcard address."""
        return advertised_url(self.advertised_url, self.web_host, self.web_port)

    @property
    def peer_key(self) -> bytes:
        """The key of the peer signatures: the secret, else one derived for local runs."""
        if self.peer_secret is not None:
            return self.peer_secret.get_secret_value().encode()
        tokens = sorted(t.get_secret_value() for t in (*self.api_tokens, *self.admin_tokens))
        material = "\0".join([self.app_id, *tokens])
        return hashlib.sha256(b"karrot-peer\0" + material.encode()).digest()

    @property
    def producer_compression_type(self) -> str | None:
        """The value for Faust's ``producer_compression_type`` (None: uncompressed)."""
        return None if self.producer_compression == "none" else self.producer_compression

    @property
    def database_dsn(self) -> str:
        return self.database_url.get_secret_value()
