"""The command line: each command reaches its implementation with the process's settings; a
Kafka listener that refuses our security settings ends the process with status 2 at once."""

from __future__ import annotations

import argparse
import os
from typing import Any

import pytest

from karrot_streams import cli, traffic
from karrot_streams.avro.registry import WriterSchema
from karrot_streams.connections import KafkaConnection, KafkaMisconfigured
from karrot_streams.dlq import commands as dlq_commands
from karrot_streams.events.topics import TopicNames
from karrot_streams.monitoring import logs
from karrot_streams.resources import Resources
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record
from tests.unit.pipeline.fakes import INPUT_SCHEMA_IDS, writer_of


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the commands reached; logging set-up left alone (it is process-wide)."""
    reached: list[str] = []

    async def check_kafka(kafka: KafkaConnection, timeout_s: float = 10.0) -> None:
        reached.append("check_kafka")

    async def provision(settings: Settings) -> None:
        reached.append("provision")

    monkeypatch.setattr(cli, "check_kafka", check_kafka)
    monkeypatch.setattr(cli, "provision", provision)
    monkeypatch.setattr(logs, "configure_process", lambda settings: None)
    monkeypatch.setattr(cli, "install_log_redaction", lambda: None)
    return reached


def test_init_provisions_after_checking_kafka(calls: list[str]) -> None:
    cli.main(["init"])
    assert calls == ["check_kafka", "provision"]


def test_a_misconfigured_kafka_listener_exits_2_before_anything_runs(
    calls: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def refuse(kafka: KafkaConnection, timeout_s: float = 10.0) -> None:
        raise KafkaMisconfigured("SASL authentication failed: set KARROT_KAFKA_PASSWORD")

    monkeypatch.setattr(cli, "check_kafka", refuse)
    with pytest.raises(SystemExit) as exited:
        cli.main(["init"])
    assert exited.value.code == 2
    assert "KARROT_KAFKA_PASSWORD" in capsys.readouterr().err
    assert calls == []


class StartedResources:
    def __init__(self) -> None:
        self.writers: dict[str, WriterSchema] = {
            t: writer_of(f"{t}-value", n) for t, n in INPUT_SCHEMA_IDS.items()
        }
        self.closed = False

    async def ready(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


def test_generate_produces_the_traffic_asked_for(
    calls: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    produced: list[list[Record]] = []

    async def produce(
        kafka: Any, batch: list[Record], rate: float | None = None, names: Any = None
    ) -> float:
        produced.append(batch)
        assert rate == 50.0
        assert names == TopicNames()  # no KARROT_TOPIC_PREFIX: the contract's topics
        return 0.5

    monkeypatch.setattr(Resources, "create", lambda settings: StartedResources())
    monkeypatch.setattr(traffic, "produce", produce)

    cli.main(["generate", "--count", "20", "--poison", "0", "--seed", "5", "--rate", "50"])

    [batch] = produced
    assert len(batch) == 20
    assert not any(record.poison for record in batch)
    assert "produced 20 records (0 poison) in 0.50s = 40/s" in capsys.readouterr().out


def test_dlq_commands_exit_with_their_status(
    calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run(settings: Settings, args: argparse.Namespace, write: Any) -> int:
        assert (args.command, args.dlq_command) == ("dlq", "list")
        return 3

    monkeypatch.setattr(dlq_commands, "run", run)
    with pytest.raises(SystemExit) as exited:
        cli.main(["dlq", "list", "dlq.item-events"])
    assert exited.value.code == 3


def test_worker_execs_faust_with_its_arguments(
    monkeypatch: pytest.MonkeyPatch, calls: list[str]
) -> None:
    executed: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execv", lambda path, args: executed.append((path, list(args))))
    cli.main(["worker", "-l", "info", "--without-web"])
    assert calls == []  # no settings, no Kafka check: faust's worker does its own
    [(path, args)] = executed
    assert args[0] == path
    faust = ["-m", "faust", "-A", "karrot_streams.app", "worker"]
    assert args[1:] == [*faust, "-l", "info", "--without-web"]
