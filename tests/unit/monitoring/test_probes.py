"""The dependency probes behind the health view and the liveness watchdog, over fakes: a broker,
registry and database that answer, refuse, or hang; agents whose actors are alive or dead."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from karrot_streams.monitoring import health_checks, liveness
from karrot_streams.monitoring.health import Health
from karrot_streams.monitoring.health_checks import agents_by_topic, behind
from karrot_streams.monitoring.metrics import Metrics


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_checks, "CHECK_TIMEOUT_S", 0.05)


class Probe:
    """An awaitable check that answers ``answer``, raises it, or never answers (``hang``)."""

    def __init__(self, answer: bool | BaseException = True, *, hang: bool = False) -> None:
        self.answer = answer
        self.hang = hang

    async def __call__(self, *args: Any, **kwargs: Any) -> bool:
        if self.hang:
            await asyncio.sleep(10)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def app_with_broker(probe: Probe, brokers: int = 3) -> Any:
    client = SimpleNamespace(
        force_metadata_update=probe,
        cluster=SimpleNamespace(brokers=lambda: set(range(brokers))),
    )
    return SimpleNamespace(
        producer=SimpleNamespace(_ensure_producer=lambda: SimpleNamespace(client=client))
    )


async def test_the_broker_check_counts_brokers_when_metadata_answers() -> None:
    check = await health_checks.broker(app_with_broker(Probe(True)))
    assert check.up
    assert check.details == {"brokers": 3}
    assert check.to_json() == {"status": "UP", "details": {"brokers": 3}}


async def test_the_broker_check_reports_a_producer_not_started() -> None:
    def not_started() -> Any:
        raise RuntimeError("NotReady")

    app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=not_started))
    check = await health_checks.broker(app)
    assert not check.up
    assert check.details["error"].startswith("producer not started")


@pytest.mark.parametrize(
    ("probe", "error"),
    [
        (Probe(False), "list subjects failed"),
        (Probe(ConnectionError("refused")), "list subjects: ConnectionError: refused"),
        (Probe(hang=True), "list subjects: no answer within 0.05s"),
    ],
    ids=["false", "raises", "hangs"],
)
async def test_a_check_reports_why_it_failed_and_never_raises(probe: Probe, error: str) -> None:
    check = await health_checks.schema_registry(SimpleNamespace(reachable=probe))
    assert not check.up
    assert check.details == {"error": error}
    assert check.to_json()["status"] == "DOWN"


async def test_the_database_check_pings_the_store() -> None:
    assert (await health_checks.database(SimpleNamespace(ping=Probe(True)))).up
    assert not (await health_checks.database(SimpleNamespace(ping=Probe(False)))).up


def test_behind_is_what_has_records_not_committed() -> None:
    a0, a1, a2, a3 = (TP("a", n) for n in range(4))
    highwaters = {a0: 10, a1: 10, a2: 5, a3: 0}
    committed = {a0: 10, a1: 7}
    # a2 was read but never committed; a3 is empty: nothing to commit there.
    assert behind(highwaters, committed, fetched={a2, a3}) == {a1, a2}
    assert behind(highwaters, committed, fetched=set()) == {a1}


def agent(name: str, *, started: bool = True, alive: bool | None = True, topic: str = "t") -> Any:
    actors = []
    if alive is not None:
        task = SimpleNamespace(done=lambda: not alive)
        actors.append(SimpleNamespace(actor_task=task))

    def topic_name() -> str:
        if topic == "":
            raise NotImplementedError("a channel, not a topic")
        return topic

    return SimpleNamespace(
        name=name,
        started=started,
        should_stop=False,
        _actors=actors,
        channel=SimpleNamespace(get_topic_name=topic_name),
    )


def test_dead_agents_are_those_started_with_no_running_actor() -> None:
    app = SimpleNamespace(
        agents={
            "pipeline.item-events": agent("pipeline.item-events", topic="item-events"),
            "aggregate.items": agent("aggregate.items", alive=False, topic="facts.items"),
            "aggregate.sellers": agent("aggregate.sellers", alive=None, topic=""),
            "not.started": agent("not.started", started=False, alive=False),
        }
    )
    assert liveness.dead_agents(app) == ["aggregate.items", "aggregate.sellers"]
    assert agents_by_topic(app) == {
        "item-events": "pipeline.item-events",
        "facts.items": "aggregate.items",
        "t": "not.started",
    }


async def test_observe_sees_outages_and_sets_the_dependency_gauges() -> None:
    health = Health()
    health.report("kafka", False, "NotEnoughReplicas")
    metrics = Metrics.create()
    recovered = asyncio.Event()
    recovered.set()
    app = app_with_broker(Probe(True))
    app.agents = {"pipeline.item-events": agent("pipeline.item-events")}
    app.rebalancing = False
    app.tables = SimpleNamespace(recovery=SimpleNamespace(completed=recovered))
    app.monitor = object()  # not a CommitMonitor: commits are not looked at
    app.resources = SimpleNamespace(
        is_ready=True,
        health=health,
        metrics=metrics,
        registry=SimpleNamespace(reachable=Probe(ConnectionError("refused"))),
        store=SimpleNamespace(ping=Probe(True)),
    )

    observation = await liveness.observe(app, stall_s=60)

    assert observation.outages == ("schema_registry", "kafka")
    assert observation.waiting == ("kafka",)
    assert not observation.settling
    assert observation.dead_agents == ()
    assert observation.reasons() == []
    gauge = metrics.registry.get_sample_value
    assert gauge("karrot_dependency_up", {"component": "broker"}) == 1.0
    assert gauge("karrot_dependency_up", {"component": "schema_registry"}) == 0.0
    assert gauge("karrot_dependency_up", {"component": "database"}) == 1.0

    app.resources.is_ready = False
    assert (await liveness.observe(app, stall_s=60)).settling
