"""The built wheel works on its own: installed in a fresh venv outside the checkout, with its
dependencies resolved by pip, the CLI starts and every schema loads from the package data.

The checkout's editable install hides a missing data file (it reads the source tree), so only an
install from the wheel, run from elsewhere, shows what a deployed worker would find.
Slow (about a minute: it resolves every dependency, from pip's cache when it is warm), so it is
marked ``packaging`` and stays out of ``make check``; ``make test`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

CHECKOUT = Path(__file__).resolve().parents[2]

LOAD_EVERY_SCHEMA = """
from pathlib import Path
from karrot_streams.avro import schemas
loaded = schemas.load_all()
assert set(loaded) == set(schemas.owned_subjects()), sorted(loaded)
assert all(s.record_name for s in loaded.values())
print(Path(str(schemas.SCHEMAS_DIR)).resolve())
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    # Build from a copy: setuptools reuses an in-tree build/ directory, whose leftovers could
    # put files in the wheel that the source no longer has.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(CHECKOUT / "karrot_streams", source / "karrot_streams", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), "."],
        cwd=source,
        env=env,
    )
    (wheel,) = wheels.glob("karrot_streams-*.whl")

    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    help_text = _run([str(target / "bin" / "karrot-streams"), "init", "--help"], elsewhere, env)
    assert "usage: karrot-streams init" in help_text

    directory = _run([str(python), "-c", LOAD_EVERY_SCHEMA], elsewhere, env).strip()
    assert Path(directory).is_relative_to(target.resolve()), directory
