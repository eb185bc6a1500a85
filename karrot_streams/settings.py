"""The one settings object. Nothing else in the project reads the environment."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
EventLoop = Literal["uvloop", "asyncio"]
#: What a worker runs: everything, the pipeline stage only, or the aggregate stages only.
Role = Literal["all", "pipeline", "aggregates"]

INPUT_TOPICS: tuple[str, ...] = ("user-events", "item-events", "payment-events", "chat-events")
LogFormat = Literal["text", "json"]


def _split_tokens(value: object) -> object:
    if isinstance(value, str):
        return tuple(token.strip() for token in value.split(",") if token.strip())
    return value


class Settings(BaseSettings):
    """Typed, frozen configuration read from ``KARROT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KARROT_", frozen=True, extra="ignore")

    app_id: str = "karrot-streams"
    kafka_bootstrap: str = "localhost:9092"
    schema_registry_url: str = "http://localhost:8081/apis/ccompat/v7"
    database_url: SecretStr = SecretStr("postgresql://karrot:karrot@localhost:5432/karrot")
    web_host: str = "0.0.0.0"  # noqa: S104  the worker serves its API to the network by design
    web_port: int = 6066
    #: How other workers reach this one (table queries are forwarded to a key's owner).
    advertised_url: str | None = None
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr("local-dev-token"),)
    admin_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr("local-admin-token"),)
    fee_rate: Decimal = Field(default=Decimal("0.033"), ge=0, lt=1)

    data_dir: Path = Path(".karrot-data")
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    processing_guarantee: ProcessingGuarantee = "at_least_once"
    #: ``pipeline`` and ``aggregates`` run the two stages in processes of their own (each its
    #: own consumer group; see README "Cores and hosts"); ``all`` runs both in one.
    role: Role = "all"
    #: The worker's event loop (``faust -A karrot_streams.app worker``). uvloop is installed
    #: but not the default: with it, aiopg 1.4.0 cannot reconnect after a failed handshake
    #: (a PostgreSQL restart): the stale poll handle of the reused socket raises "the handler
    #: is closed" on every new connection (aio-libs/aiopg#909, fix #926 unreleased).
    event_loop: EventLoop = "asyncio"

    batch_max: int = Field(default=500, ge=1, description="Events handled together per agent step.")
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

    @field_validator("api_tokens", "admin_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> object:
        return _split_tokens(value)

    @property
    def database_dsn(self) -> str:
        return self.database_url.get_secret_value()
