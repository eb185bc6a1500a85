"""The top-level ``schemas/`` (the path the producers' contract names) and the package's copy
are one set of files: a symlink today, and this catches the day someone replaces it by a copy
that then drifts from what the worker registers."""

from __future__ import annotations

from pathlib import Path

from karrot_streams.avro import schemas

CHECKOUT = Path(__file__).resolve().parents[2]


def _contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.avsc"))}


def test_top_level_schemas_are_the_package_schemas_byte_for_byte() -> None:
    top_level = _contents(CHECKOUT / "schemas")
    packaged = _contents(CHECKOUT / "karrot_streams" / "schemas")
    assert top_level, "no .avsc under schemas/"
    assert top_level.keys() == packaged.keys()
    for name, body in top_level.items():
        assert body == packaged[name], f"schemas/{name} differs from karrot_streams/schemas/{name}"


def test_the_loader_reads_the_package_folder() -> None:
    loaded = Path(str(schemas.SCHEMAS_DIR)).resolve()
    assert loaded == (CHECKOUT / "karrot_streams" / "schemas").resolve()
    assert {f"{subject}.avsc" for subject in schemas.owned_subjects()} <= {
        path.name for path in loaded.glob("*.avsc")
    }
