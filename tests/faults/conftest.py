"""Fixtures of the fault suite: its own stack, workers on it, and the session's summary table.

Every scenario adds one ``Outcome`` to the session's collector; ``pytest_terminal_summary`` prints
the table at the end and writes it to ``artifacts/faults.json``.

Workers run under the ``guarantee`` fixture's ``KARROT_PROCESSING_GUARANTEE`` (a test parametrises
it, see ``scenario.sized``; default ``exactly_once``). When the session's last fault test is done,
``no_hanging_transactions`` checks that no transaction stays open on the fault stack's broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import SecretStr

from karrot_streams.avro.registry import WriterSchema
from karrot_streams.events.topics import InternalTopics
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.provision import contract_topics, create_topics
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings
from tests.faults.load import input_ends
from tests.faults.outcome import Outcome
from tests.faults.scenario import EXACTLY_ONCE, Scenario
from tests.faults.stackctl import REPO, FaultStack
from tests.faults.transactions import hanging_transactions
from tests.support.worker import WorkerProcess, new_app_id

OUTCOMES = pytest.StashKey[list[Outcome]]()
ARTIFACT = REPO / "artifacts" / "faults.json"

#: Rebalances after a SIGKILL wait for the dead member's session to expire: Faust's default of
#: 60 s would make each kill cost a minute. Faust reads these from the environment.
FAST_REBALANCE = {"BROKER_SESSION_TIMEOUT": "8", "BROKER_HEARTBEAT_INTERVAL": "1"}

#: How long a worker's transaction may stay open before its coordinator aborts it: the
#: producer's ``transaction_timeout_ms`` (aiokafka's default, 60 s, unless the worker sets
#: another; then set this variable to match). The hanging check waits that long plus a margin.
TRANSACTION_TIMEOUT_S = float(os.environ.get("KARROT_FAULTS_TRANSACTION_TIMEOUT_S", "60"))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OUTCOMES] = []


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest) -> list[Outcome]:
    return request.config.stash[OUTCOMES]


@pytest.fixture(scope="session")
async def fault_stack() -> AsyncIterator[FaultStack]:
    """The stack the suite may break; started if needed, stopped at the end if it started it."""
    stack = FaultStack.from_env()
    # One fault session at a time per stack: two would stop each other's services.
    stack.stack_dir.mkdir(parents=True, exist_ok=True)
    lock = (stack.stack_dir / "faults.lock").open("w")
    await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
    was_up = await stack.is_up()
    if not was_up:
        await stack.run("start")
    yield stack
    # A scenario may have left a service down or frozen: bring everything back, then (if this
    # session started the stack) stop it.
    for service in ("registry", "kafka", "postgres"):
        with contextlib.suppress(OSError, ValueError):
            stack.thaw(service)
    try:
        if not was_up and not os.environ.get("KARROT_FAULTS_KEEP_STACK"):
            await stack.run("stop")
        else:
            await stack.run("start")
    finally:
        lock.close()  # releases the lock


@pytest.fixture(scope="session", autouse=True)
async def no_hanging_transactions(fault_stack: FaultStack) -> AsyncIterator[None]:
    """After the session's fault tests (every worker stopped): no transaction left open on any
    partition of the fault stack once the coordinator had time to end the abandoned ones.
    ``kafka-transactions.sh find-hanging``'s question, asked through the admin protocol
    (tests/faults/transactions.py); fails the session's teardown if one hangs."""
    yield
    hanging = await hanging_transactions(
        fault_stack.bootstrap, transaction_timeout_s=TRANSACTION_TIMEOUT_S
    )
    assert not hanging, "hanging transactions:\n" + "\n".join(str(t) for t in hanging)


@pytest.fixture
def guarantee() -> str:
    """The workers' processing guarantee; tests parametrise it (``scenario.sized``, ``BOTH``)."""
    return EXACTLY_ONCE


@pytest.fixture(scope="session")
def fault_settings(fault_stack: FaultStack) -> Settings:
    return Settings(
        kafka_bootstrap=fault_stack.bootstrap,
        schema_registry_url=fault_stack.registry_url,
        database_url=SecretStr(fault_stack.dsn),
    )


@pytest.fixture
async def writers(fault_settings: Settings) -> AsyncIterator[dict[str, WriterSchema]]:
    """Topics, migrations and schemas of the fault stack; registered anew for each test, since a
    registry restart forgets them (Apicurio in memory)."""
    await create_topics(fault_settings, contract_topics())
    resources = Resources.create(fault_settings)
    await resources.ready()
    yield {topic: resources.writers[topic] for topic in INPUT_TOPICS}
    await resources.close()


async def create_internal_topics(settings: Settings, app_id: str) -> None:
    """Before a new app id's first worker subscribes (else it sees them only minutes later)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, settings.topic_partitions, settings.topic_replication)
                for name in InternalTopics(app_id).all()
            ],
            timeout_ms=15_000,
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def start_group_at_end(settings: Settings, group: str) -> None:
    """Commit the input's end offsets for a new group: its workers read only this test's records,
    not the whole history of the shared input topics."""
    ends = await input_ends(settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit({tp: end for tp, end in ends.items()})
    finally:
        await consumer.stop()


class Workers:
    """Starts workers of one app id on the fault stack; stops what is left at the end."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.app_id = new_app_id("karrot-fault")
        self.started: list[WorkerProcess] = []

    def start(self, name: str, *, data: str | None = None, **extra: str) -> WorkerProcess:
        """A worker; ``data`` names its data directory (default: its own). A
        ``KARROT_WEB_PORT`` in ``extra`` keeps a restarted worker's URL (default: a free port)."""
        port = extra.get("KARROT_WEB_PORT")
        worker = WorkerProcess(
            app_id=self.app_id,
            data_dir=self.root / (data or name),
            log_path=self.root / f"{name}.log",
            extra_env={**self.env, **FAST_REBALANCE, **extra},
            from_end=False,  # the fixture placed the new group at the end already
        )
        if port is not None:
            worker.port = int(port)
        worker.start()
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
async def workers(
    tmp_path: Path, fault_stack: FaultStack, fault_settings: Settings, guarantee: str
) -> AsyncIterator[Workers]:
    pool = Workers(tmp_path, {**fault_stack.app_env(), "KARROT_PROCESSING_GUARANTEE": guarantee})
    await create_internal_topics(fault_settings, pool.app_id)
    await start_group_at_end(fault_settings, pool.app_id)
    yield pool
    pool.stop_all()


@pytest.fixture
def scenario(
    fault_settings: Settings,
    writers: dict[str, WriterSchema],
    workers: Workers,
    outcomes: list[Outcome],
    guarantee: str,
) -> Callable[[str], Scenario]:
    def make(name: str) -> Scenario:
        return Scenario(name, fault_settings, writers, workers.app_id, outcomes, guarantee)

    return make


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def summary_lines(rows: list[Outcome]) -> list[str]:
    header = (
        "scenario",
        "guarantee",
        "events in",
        "events out",
        "lost",
        "duplicated",
        "dead-lettered",
        "enriched missing/dup",
        "dlq missing/dup",
        "recovery s",
        "run s",
    )
    table = [header] + [
        (
            o.scenario,
            o.guarantee,
            _fmt(o.events_in),
            _fmt(o.events_out),
            _fmt(o.lost),
            f"{o.duplicated} (<= {o.duplicate_bound})",
            _fmt(o.dead_lettered),
            f"{o.enriched_missing}/{o.enriched_duplicates}",
            f"{o.dlq_missing}/{o.dlq_duplicates}",
            _fmt(o.recovery_s),
            _fmt(o.duration_s),
        )
        for o in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for o in rows:
        for note in o.notes + [f"PROBLEM: {p}" for p in o.problems]:
            lines.append(f"  {o.scenario} ({o.guarantee}): {note}")
    return lines


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    rows = config.stash.get(OUTCOMES, [])
    if not rows:
        return
    terminalreporter.section("fault scenarios")
    for line in summary_lines(rows):
        terminalreporter.write_line(line)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(
        json.dumps({"scenarios": [o.to_json() for o in rows]}, indent=2, ensure_ascii=False) + "\n"
    )
    terminalreporter.write_line(f"written to {ARTIFACT}")
