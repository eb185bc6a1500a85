"""The worker's garbage-collector setting: the young generation's threshold, the rest kept."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from karrot_streams.app import collect_garbage_every
from karrot_streams.settings import Settings


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_young_threshold_is_set_and_the_older_ones_kept(
    thresholds: tuple[int, int, int],
) -> None:
    collect_garbage_every(12_345)
    assert gc.get_threshold() == (12_345, thresholds[1], thresholds[2])


def test_the_default_and_its_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_allocations == 20_000
    monkeypatch.setenv("KARROT_GC_ALLOCATIONS", "10")
    with pytest.raises(ValueError, match="gc_allocations"):
        Settings()
