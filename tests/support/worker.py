"""A real worker process (``faust -A karrot_streams.app worker``) for integration tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from karrot_streams.connections import KafkaConnection
from karrot_streams.events.topics import TopicNames
from karrot_streams.events.types import INPUT_TOPICS
from tests.support.kafka import start_group_at_end

HEALTH = "/api/v1/monitoring/health"
API_TOKEN = "test-token"
ADMIN_TOKEN = "test-admin-token"


def free_port(*also_on: str) -> int:
    """A port free on 127.0.0.1 and on every address of ``also_on`` (for workers sharing one)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if all(_free_on(host, port) for host in also_on):
            return port


def _free_on(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class WorkerProcess:
    """One worker of a test app; several may share an app id (a consumer group)."""

    app_id: str
    data_dir: Path
    log_path: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    #: The address it binds and advertises (any of 127.0.0.0/8 for workers sharing a port).
    host: str = "127.0.0.1"
    #: A new app starts at the end of the shared input topics, not at their first record.
    from_end: bool = True
    #: How the test reaches Kafka to start the group at the end (default: the worker's bootstrap,
    #: plaintext); a worker on a secured listener needs the secured connection.
    group_kafka: str | KafkaConnection | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KARROT_APP_ID": self.app_id,
                "KARROT_WEB_PORT": str(self.port),
                "KARROT_WEB_HOST": self.host,
                "KARROT_DATA_DIR": str(self.data_dir),
                "KARROT_API_TOKENS": API_TOKEN,
                "KARROT_ADMIN_TOKENS": ADMIN_TOKEN,
                **self.extra_env,
            }
        )
        return env

    def input_topics(self) -> list[str]:
        """The input topics the worker reads, behind its ``KARROT_TOPIC_PREFIX`` if it has one."""
        names = TopicNames(self.env().get("KARROT_TOPIC_PREFIX", ""))
        return [names.physical(topic) for topic in INPUT_TOPICS]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.from_end:
            bootstrap = self.group_kafka or self.env().get(
                "KARROT_KAFKA_BOOTSTRAP", "localhost:9092"
            )
            # A thread of its own: start() is called from sync and async tests alike.
            thread = threading.Thread(
                target=asyncio.run,
                args=(start_group_at_end(bootstrap, self.app_id, self.input_topics()),),
            )
            thread.start()
            thread.join(timeout=60)
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
                # No --web-port/--web-host: Faust would rebuild the advertised URL from them and
                # drop KARROT_ADVERTISED_URL; the settings already carry both.
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout_s: float = 180.0, *, healthy: bool = True) -> float:
        """Wait until the health view answers 200 (any answer, without ``healthy``).

        The health view is 200 only once the tables are recovered and every dependency answers,
        so the time this returns after start is the worker's recovery time.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        last = "no answer"
        async with httpx.AsyncClient(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"worker exited with {self.process.returncode}: {self.tail()}"
                    )
                try:
                    answer = await client.get(self.url + HEALTH)
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if answer.status_code == 200 or not healthy:
                        return time.monotonic() - started
                    last = f"{answer.status_code} {answer.text[:1000]}"
                await asyncio.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout_s}s ({last}):\n{self.tail()}")

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

    def state(self, lines: int = 15) -> str:
        """Running or its exit status, and its last warnings and errors: what a failed assertion
        about this worker shows (CI keeps no worker log)."""
        running = self.process is not None and self.process.poll() is None
        status = "running" if running else f"exited with {self.process and self.process.returncode}"
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        notable = [line for line in text.splitlines() if "[WARNING]" in line or "[ERROR]" in line]
        return f"{self.url} {status}; last warnings and errors:\n" + "\n".join(notable[-lines:])

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def new_app_id(prefix: str = "karrot-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def worker_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """``KARROT_*`` settings of a worker of its own: app id, web port, data directory."""
    return {
        "KARROT_APP_ID": new_app_id(),
        "KARROT_WEB_PORT": str(free_port()),
        "KARROT_DATA_DIR": str(data_dir),
        **overrides,
    }


@contextmanager
def running_worker(settings_env: Mapping[str, str], *, timeout_s: float = 180.0) -> Iterator[str]:
    """A healthy worker configured by ``settings_env`` (see ``worker_env``); yields its URL."""
    data_dir = Path(settings_env["KARROT_DATA_DIR"])
    worker = WorkerProcess(
        app_id=settings_env["KARROT_APP_ID"],
        data_dir=data_dir,
        log_path=data_dir / "worker.log",
        extra_env=dict(settings_env),
        port=int(settings_env["KARROT_WEB_PORT"]),
        host=settings_env.get("KARROT_WEB_HOST", "127.0.0.1"),
    )
    worker.start()
    try:
        asyncio.run(worker.wait_ready(timeout_s))
        yield worker.url
    finally:
        worker.stop()


@contextmanager
def sharing_workers(
    *settings_envs: Mapping[str, str], timeout_s: float = 120.0
) -> Iterator[list[str]]:
    """Workers of one group, yielded once each owns some partitions: their base URLs."""
    with ExitStack() as stack:
        urls = [stack.enter_context(running_worker(env)) for env in settings_envs]
        deadline = time.monotonic() + timeout_s
        while not all(owns_partitions(url) for url in urls):
            assert time.monotonic() < deadline, "the workers never shared the partitions"
            time.sleep(1)
        yield urls


def owns_partitions(url: str) -> bool:
    health = httpx.get(url + "/api/v1/monitoring/health", timeout=10).json()
    return bool(
        health["status"] == "UP"
        and health["components"]["commits"]["details"].get("assignedPartitions")
    )
