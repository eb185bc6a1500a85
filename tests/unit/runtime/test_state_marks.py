"""The worker's data directory: its transactional id, stable per directory."""

from __future__ import annotations

from pathlib import Path

from karrot_streams.runtime import state_marks


def test_the_transactional_id_is_stable_per_data_directory(tmp_path: Path) -> None:
    first = state_marks.transactional_id(tmp_path / "a", "app")
    assert first.startswith("karrot-tx-app-")
    assert state_marks.transactional_id(tmp_path / "a", "app") == first
    assert state_marks.transactional_id(tmp_path / "b", "app") != first
