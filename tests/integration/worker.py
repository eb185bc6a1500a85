"""A real worker for integration tests: ``faust -A karrot_streams.app worker`` in a subprocess.

Configured only through ``KARROT_*`` variables, as in production. ``running_worker`` yields the
base URL once ``/api/v1/monitoring/health`` answers, and stops the worker (SIGTERM, then SIGKILL)
on the way out; its log is kept in the data directory and shown when start-up fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
FAUST = Path(sys.executable).with_name("faust")
HEALTH = "/api/v1/monitoring/health"
API_TOKEN = "test-api-token"
ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """``KARROT_*`` settings for a worker of its own: app id, web port, data directory."""
    settings = {
        "KARROT_APP_ID": f"karrot-test-{uuid.uuid4().hex[:12]}",
        "KARROT_WEB_PORT": str(free_port()),
        "KARROT_WEB_HOST": "127.0.0.1",
        "KARROT_DATA_DIR": str(data_dir),
        "KARROT_API_TOKENS": API_TOKEN,
        "KARROT_ADMIN_TOKENS": ADMIN_TOKEN,
        "KARROT_LOG_LEVEL": "info",
    }
    settings.update(overrides)
    return settings


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_healthy(base_url: str, timeout_s: float, *, require_up: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(base_url + HEALTH, timeout=5.0)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code == 200 or (not require_up and answer.status_code == 503):
                return
            last = f"{answer.status_code} {answer.text[:2000]}"
        time.sleep(0.5)
    raise TimeoutError(f"worker not healthy after {timeout_s:g}s; last health answer: {last}")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@contextmanager
def running_worker(
    settings_env: Mapping[str, str], *, start_timeout_s: float = 180.0, require_up: bool = True
) -> Iterator[str]:
    """Start a worker with ``settings_env`` (``KARROT_*``); yield its base URL; stop it."""
    data_dir = Path(settings_env["KARROT_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "worker.log"
    env = {**os.environ, **settings_env, "PYTHONUNBUFFERED": "1"}
    command = [str(FAUST), "-A", "karrot_streams.app", "worker", "-l", "info"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{settings_env['KARROT_WEB_PORT']}"
    try:
        try:
            wait_until_healthy(base_url, start_timeout_s, require_up=require_up)
        except TimeoutError as exc:
            state = "running" if process.poll() is None else f"exited {process.returncode}"
            raise RuntimeError(f"{exc}\nworker {state}; log tail:\n{_tail(log_path)}") from None
        yield base_url
    finally:
        stop(process)
