"""The worker's image, built by deploy/image/build.sh and run with podman on the host network."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("KARROT_IMAGE", "localhost/karrot-streams:test")
#: The Debian base made here (no image registry on the machines CI runs on); on a machine that
#: reaches one, KARROT_IMAGE_BASE=docker.io/library/python:3.11-slim-bookworm tests that one.
BASE = os.environ.get("KARROT_IMAGE_BASE", "mmdebstrap")
#: This machine's podman settings: runc (crun fails on hybrid cgroups), cgroupfs, ulimits
#: within the hard limits.
CONF = ROOT / "deploy" / "image" / "containers.conf"
#: The image's user (Containerfile's UID) and where it keeps its data.
DATA_DIR = "/var/lib/karrot-streams"


def env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONF))}


def build() -> str:
    """Build (podman's layer cache makes an unchanged tree a matter of seconds) and tag IMAGE."""
    result = subprocess.run(
        ["bash", str(ROOT / "deploy/image/build.sh")],
        env={**env(), "KARROT_IMAGE": IMAGE, "KARROT_IMAGE_BASE": BASE},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"image build failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    print(result.stdout.strip())
    return IMAGE


def podman(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    path = shutil.which("podman")
    assert path is not None, "podman is missing: deploy/image/build.sh installs it"
    return subprocess.run(
        [path, *args], env=env(), capture_output=True, text=True, timeout=timeout_s, check=False
    )


def run_args(
    name: str,
    data_dir: Path,
    environment: Mapping[str, str],
    command: Sequence[str],
    *,
    detach: bool = False,
) -> list[str]:
    """``podman run`` as the contract says: read-only root without even a tmpfs (so any write
    outside the data volume fails), host network (the local stack), only the data dir mounted."""
    # The image's user (10001) writes here, whatever the host's owner: the container's view only.
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o777)
    flags = [f"--env={key}={value}" for key, value in environment.items()]
    return [
        "run",
        *(["--detach"] if detach else []),
        f"--name={name}",
        "--network=host",
        "--read-only",
        "--read-only-tmpfs=false",
        f"--volume={data_dir}:{DATA_DIR}",
        *flags,
        IMAGE,
        *command,
    ]
