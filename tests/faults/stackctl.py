"""The stack the fault suite breaks: its own folder and ports, so other tests keep theirs.

By default the suite starts (and afterwards stops) a private stack in ``<repo>/.stack-faults`` on
ports 29092/29093 (Kafka), 28081/29081 (registry) and 25432 (PostgreSQL). The same variables as
``stack/stack.sh`` choose another one: ``KARROT_STACK_DIR``, ``KARROT_KAFKA_PORT``,
``KARROT_KAFKA_CONTROLLER_PORT``, ``KARROT_REGISTRY_PORT``, ``KARROT_REGISTRY_MGMT_PORT``,
``KARROT_PG_PORT``. The worker and the test clients are pointed at that stack through
``KARROT_KAFKA_BOOTSTRAP``, ``KARROT_SCHEMA_REGISTRY_URL`` and ``KARROT_DATABASE_URL``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.stack import stack

REPO = Path(__file__).resolve().parents[2]


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class FaultStack:
    stack_dir: Path
    kafka_port: int
    controller_port: int
    registry_port: int
    registry_mgmt_port: int
    pg_port: int

    @classmethod
    def from_env(cls) -> FaultStack:
        registry_port = _port("KARROT_REGISTRY_PORT", 28081)
        return cls(
            stack_dir=Path(os.environ.get("KARROT_STACK_DIR", REPO / ".stack-faults")),
            kafka_port=_port("KARROT_KAFKA_PORT", 29092),
            controller_port=_port("KARROT_KAFKA_CONTROLLER_PORT", 29093),
            registry_port=registry_port,
            registry_mgmt_port=_port("KARROT_REGISTRY_MGMT_PORT", registry_port + 1000),
            pg_port=_port("KARROT_PG_PORT", 25432),
        )

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        return f"http://localhost:{self.registry_port}/apis/ccompat/v7"

    @property
    def dsn(self) -> str:
        return f"postgresql://karrot:karrot@localhost:{self.pg_port}/karrot"

    def stack_env(self) -> dict[str, str]:
        return {
            "KARROT_STACK_DIR": str(self.stack_dir),
            "KARROT_KAFKA_PORT": str(self.kafka_port),
            "KARROT_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KARROT_REGISTRY_PORT": str(self.registry_port),
            "KARROT_REGISTRY_MGMT_PORT": str(self.registry_mgmt_port),
            "KARROT_PG_PORT": str(self.pg_port),
        }

    def app_env(self) -> dict[str, str]:
        """What a worker or a test client needs to use this stack."""
        return {
            "KARROT_KAFKA_BOOTSTRAP": self.bootstrap,
            "KARROT_SCHEMA_REGISTRY_URL": self.registry_url,
            "KARROT_DATABASE_URL": self.dsn,
        }

    async def run(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return await stack(*args, env={**self.stack_env(), **(env or {})})

    async def is_up(self) -> bool:
        try:
            await self.run("status")
        except RuntimeError:
            return False
        return True

    def pid(self, service: str) -> int:
        return int((self.stack_dir / "run" / f"{service}.pid").read_text().strip())

    def freeze(self, service: str) -> None:
        """SIGSTOP: the service keeps its state and its port but answers nothing."""
        os.kill(self.pid(service), signal.SIGSTOP)

    def thaw(self, service: str) -> None:
        os.kill(self.pid(service), signal.SIGCONT)


@dataclass(frozen=True)
class ClusterStack:
    """A three-broker Kafka cluster of its own (``KARROT_KAFKA_BROKERS=3``), beside a FaultStack.

    Its brokers listen on ``first_port``, +2 and +4 (controllers one above each): 39092 unless
    ``KARROT_FAULTS_CLUSTER_PORT`` says otherwise (when a fault stack of its own uses 39092).
    """

    stack_dir: Path
    first_port: int = field(default_factory=lambda: _port("KARROT_FAULTS_CLUSTER_PORT", 39092))

    @property
    def ports(self) -> tuple[int, int, int]:
        return (self.first_port, self.first_port + 2, self.first_port + 4)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"localhost:{port}" for port in self.ports)

    def env(self) -> dict[str, str]:
        return {
            "KARROT_STACK_DIR": str(self.stack_dir),
            "KARROT_KAFKA_PORT": str(self.first_port),
            "KARROT_KAFKA_CONTROLLER_PORT": str(self.first_port + 1),
            "KARROT_KAFKA_BROKERS": "3",
        }

    async def run(self, *args: str) -> str:
        return await stack(*args, env=self.env())
