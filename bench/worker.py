"""A karrot-streams worker subprocess with its own app id, data dir, port and log."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

#: Faust's log prefix: ``[2026-11-25 00:31:55,123] [pid] [LEVEL] ...`` in local time.
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
READY = "Worker ready"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int | None:
    """Resident set size from ``/proc/<pid>/status`` (VmRSS), or None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


@dataclass
class Worker:
    app_id: str
    data_dir: Path
    log_path: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None  # noqa: S101  only asked of a started worker
        return self.process.pid

    def start(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KARROT_APP_ID": self.app_id,
            "KARROT_WEB_PORT": str(self.port),
            "KARROT_WEB_HOST": "127.0.0.1",
            "KARROT_DATA_DIR": str(self.data_dir),
            "KARROT_API_TOKENS": "test-token",
            # The figures in docs/performance.md are of the batch-delivery consumer (opt-in).
            "KARROT_BATCH_DELIVERY": os.environ.get("KARROT_BATCH_DELIVERY", "true"),
            **self.extra_env,
        }
        command = [sys.executable, "-m", "faust", "-A", "karrot_streams.app", "worker"]
        command += ["-l", "info", "--web-port", str(self.port), "--web-host", "127.0.0.1"]
        with self.log_path.open("wb") as log:
            self.started_at = time.time()
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_time(self, text: str) -> float | None:
        """When ``text`` first appeared in the log (Faust's own timestamp), if it has."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            if text in line:
                stamp = _STAMP.match(line)
                if stamp is None:
                    return time.time()
                return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007  Faust logs local time
        return None

    async def wait_for_log(self, text: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.log_time(text)
            if found is not None:
                return found
            if not self.alive():
                raise RuntimeError(f"worker {self.app_id} exited: {self.tail()}")
            await asyncio.sleep(0.05)
        raise TimeoutError(f"worker {self.app_id}: no {text!r} after {timeout_s}s: {self.tail()}")

    def rss(self) -> int | None:
        return rss_bytes(self.pid) if self.alive() else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
