"""Local state under exactly-once: kept after a clean stop, restored after any other."""

from __future__ import annotations

from pathlib import Path

from karrot_streams.runtime import state_marks


def tables_in(data_dir: Path) -> Path:
    tables = data_dir / "app-data" / "v1" / "tables"
    (tables / "app-sellers.db").mkdir(parents=True)
    (tables / "app-sellers.db" / "000001.sst").write_bytes(b"values")
    return tables


def test_after_a_clean_stop_the_stores_stay(tmp_path: Path) -> None:
    tables = tables_in(tmp_path)
    state_marks.leave_clean_mark(tmp_path)
    assert not state_marks.take_clean_mark(tmp_path, tables)
    assert (tables / "app-sellers.db" / "000001.sst").exists()
    # The mark is taken: a crash of this run must not be mistaken for a clean stop.
    assert not (tmp_path / state_marks.CLEAN_MARK).exists()


def test_after_a_crash_the_stores_go(tmp_path: Path) -> None:
    tables = tables_in(tmp_path)
    assert state_marks.take_clean_mark(tmp_path, tables)
    assert not tables.exists()


def test_a_first_start_removes_nothing(tmp_path: Path) -> None:
    assert not state_marks.take_clean_mark(tmp_path, tmp_path / "tables")


def test_the_transactional_id_is_stable_per_data_directory(tmp_path: Path) -> None:
    first = state_marks.transactional_id(tmp_path / "a", "app")
    assert first.startswith("karrot-tx-app-")
    assert state_marks.transactional_id(tmp_path / "a", "app") == first
    assert state_marks.transactional_id(tmp_path / "b", "app") != first
