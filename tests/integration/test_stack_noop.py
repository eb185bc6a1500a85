"""With every service up, ``stack/stack.sh start`` is a no-op: nothing fetched, prepared or started.

Run with an empty stack folder and no ``mvn`` (nor Java, nor PostgreSQL's programs) on PATH, as
after ``docker compose up``: fetching or preparing anything would fail, so exit 0 proves it
skipped them all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from karrot_streams.settings import Settings
from tests.support.stack import STACK
from tests.support.worker import free_port

pytestmark = pytest.mark.integration

#: What a Docker-only machine lacks.
HIDDEN = {"mvn", "mvnDebug", "java", "initdb", "pg_ctl", "postgres", "pg_isready", "psql"}


def path_without(tmp: Path, hidden: set[str]) -> str:
    """A PATH of one folder linking every program of the current PATH except ``hidden``."""
    folder = tmp / "bin"
    folder.mkdir()
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not Path(entry).is_dir():
            continue
        for program in Path(entry).iterdir():
            target = folder / program.name
            if program.name in hidden or target.exists() or not os.access(program, os.X_OK):
                continue
            target.symlink_to(program)
    return str(folder)


def test_start_with_everything_up_is_a_no_op(settings: Settings, tmp_path: Path) -> None:
    kafka_port = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1]
    registry_port = str(urlsplit(settings.schema_registry_url).port)
    pg_port = str(urlsplit(settings.database_dsn).port or 5432)
    path = path_without(tmp_path, HIDDEN)
    assert shutil.which("mvn", path=path) is None
    assert shutil.which("bash", path=path) is not None
    stack_dir = tmp_path / "empty-stack"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KARROT_", "JAVA_HOME"))},
        "PATH": path,
        "KARROT_STACK_DIR": str(stack_dir),
        "KARROT_KAFKA_PORT": kafka_port,
        "KARROT_REGISTRY_PORT": registry_port,
        "KARROT_PG_PORT": pg_port,
    }
    result = subprocess.run(
        ["bash", str(STACK), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "nothing to start: everything already answers" in output
    for service in ("kafka", "registry", "postgres"):
        assert f"{service} already answers" in output, output
    for word in ("[stack] fetching", "launched", "initdb", "formatting", "installing"):
        assert word not in output, output
    # Nothing was downloaded or created but the folders' skeleton.
    assert not any(p.is_file() for p in stack_dir.rglob("*")), list(stack_dir.rglob("*"))


def test_without_mvn_a_missing_service_is_an_error(settings: Settings, tmp_path: Path) -> None:
    """The opposite case, so the test above cannot pass by never looking: a port with nothing
    on it must be fetched, which fails without Maven."""
    path = path_without(tmp_path, HIDDEN)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KARROT_")},
        "PATH": path,
        "KARROT_STACK_DIR": str(tmp_path / "empty-stack"),
        "KARROT_REGISTRY_PORT": str(free_port()),
        "KARROT_REGISTRY_MGMT_PORT": str(free_port()),
    }
    result = subprocess.run(
        ["bash", str(STACK), "start", "registry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "mvn not found" in result.stdout + result.stderr
