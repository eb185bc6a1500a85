"""A real worker process (``faust -A karrot_streams.app worker``) for integration tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerProcess:
    """One worker of a test app; several may share an app id (a consumer group)."""

    app_id: str
    data_dir: Path
    log_path: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KARROT_APP_ID": self.app_id,
                "KARROT_WEB_PORT": str(self.port),
                "KARROT_WEB_HOST": "127.0.0.1",
                "KARROT_DATA_DIR": str(self.data_dir),
                "KARROT_API_TOKENS": "test-token",
                "KARROT_ADMIN_TOKENS": "test-admin-token",
                **self.extra_env,
            }
        )
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "karrot_streams.app",
                "worker",
                "-l",
                "info",
                "--web-port",
                str(self.port),
                "--web-host",
                "127.0.0.1",
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"worker exited with {self.process.returncode}: {self.tail()}"
                    )
                try:
                    await client.get(self.url + "/")
                except httpx.HTTPError:
                    await asyncio.sleep(0.3)
                    continue
                return
        raise TimeoutError(f"worker not ready after {timeout_s}s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is committed on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def new_app_id(prefix: str = "karrot-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
