"""Static group membership and standby replicas are settings that reach Faust, and static
membership keeps Faust's table-aware assignor (faust-streaming#658: a round-robin assignor would
scatter a table's partitions away from their changelogs' standbys and active copies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from karrot_streams.app import create_app
from karrot_streams.settings import Settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("KARROT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KARROT_GROUP_INSTANCE_ID", "karrot-streams-2")
    monkeypatch.setenv("KARROT_TABLE_STANDBY_REPLICAS", "2")
    return Settings()


def test_the_settings_reach_faust(settings: Settings) -> None:
    app = create_app(settings)
    assert app.conf.consumer_group_instance_id == "karrot-streams-2"
    assert app.conf.table_standby_replicas == 2


def test_dynamic_membership_and_one_standby_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KARROT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("KARROT_GROUP_INSTANCE_ID", raising=False)
    monkeypatch.delenv("KARROT_TABLE_STANDBY_REPLICAS", raising=False)
    conf: Any = create_app(Settings()).conf  # Faust types the instance id as a str
    assert conf.consumer_group_instance_id is None
    assert conf.table_standby_replicas == 1


def worker_consumer(app: Any) -> Any:
    """The aiokafka consumer Faust's consumer thread would start (built, not started)."""
    thread = app.consumer._thread
    return thread._create_worker_consumer(app.transport)


@pytest.mark.parametrize("standbys", ["0", "1"])
async def test_static_membership_keeps_fausts_assignor_for_tables(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, standbys: str
) -> None:
    monkeypatch.setenv("KARROT_TABLE_STANDBY_REPLICAS", standbys)
    app = create_app(Settings())
    consumer = worker_consumer(app)
    assert consumer._group_instance_id == "karrot-streams-2"
    assert consumer._partition_assignment_strategy == [app.assignor]


async def test_the_pipeline_role_alone_gets_round_robin(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No tables to keep together: Faust's fallback (with no standbys) is harmless there.
    monkeypatch.setenv("KARROT_ROLE", "pipeline")
    monkeypatch.setenv("KARROT_TABLE_STANDBY_REPLICAS", "0")
    app = create_app(Settings())
    assert worker_consumer(app)._partition_assignment_strategy == [RoundRobinPartitionAssignor]
