from __future__ import annotations

from karrot_streams.monitoring.liveness import Observation, Watchdog


def test_healthy_is_not_stuck() -> None:
    assert Observation().reasons() == []


def test_dead_agent_is_stuck_whatever_else() -> None:
    seen = Observation(dead_agents=("pipeline.item-events",), outages=("database",), settling=True)
    assert seen.reasons() == ["agent pipeline.item-events has no running actor"]


def test_stalled_commits_during_an_outage_are_not_stuck() -> None:
    assert Observation(commits_stalled=True, outages=("database",)).reasons() == []


def test_stalled_commits_while_settling_are_not_stuck() -> None:
    assert Observation(commits_stalled=True, settling=True).reasons() == []


def test_stalled_commits_with_every_dependency_answering_are_stuck() -> None:
    # The pipeline reports a wait (a query timing out on a lock) but the probe answers.
    seen = Observation(commits_stalled=True, waiting=("database",), commit_details={"lag": 3})
    (reason,) = seen.reasons()
    assert "commits stalled with every dependency answering" in reason
    assert "the pipeline waits for database" in reason


def test_watchdog_stops_only_after_the_grace_period() -> None:
    dog = Watchdog(grace_s=30)
    assert not dog.observe(100.0, ["stuck"])
    assert not dog.observe(129.0, ["stuck"])
    assert dog.observe(130.0, ["stuck"])


def test_progress_resets_the_grace_period() -> None:
    dog = Watchdog(grace_s=30)
    dog.observe(100.0, ["stuck"])
    assert not dog.observe(120.0, [])
    assert not dog.observe(140.0, ["stuck"])
    assert dog.observe(170.0, ["stuck"])
