"""CPU accounting for a measured window: the process under test, and everything else.

Two cores are shared with whoever else works on this machine. A window where the process under
test got close to one full core was CPU-bound on itself; ``stack_cores`` is what the broker, the
registry and the database used meanwhile (much of it serving the process under test), and
``others_cores`` what everything else took (other people's tests and workers).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of ``pid`` (and its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


#: Command-line fragments of the local stack's processes (stack/stack.sh).
STACK = ("kafka.Kafka", "postgres", "apicurio", "quarkus")


def stack_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if any(s.encode() in command for s in STACK):
                found.append(int(entry.name))
    return found


def _stack_cpu() -> dict[int, float]:
    return {pid: cpu for pid in stack_pids() if (cpu := process_cpu_s(pid)) is not None}


def machine_busy_s() -> float:
    """CPU seconds all cores have spent not idle since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICK


@dataclass(frozen=True)
class CpuShare:
    wall_s: float
    process_cores: float  # CPU of the process under test / wall time
    stack_cores: float  # CPU of Kafka, the registry and PostgreSQL / wall time
    others_cores: float  # CPU of every other process / wall time


class CpuWindow:
    """CPU of the process(es) under test; several pids (a split layout) are summed."""

    def __init__(self, pid: int, *more: int) -> None:
        self._pids = (pid, *more)
        self._wall = time.monotonic()
        self._process = self._processes() or 0.0
        self._machine = machine_busy_s()
        self._stack = _stack_cpu()

    def _processes(self) -> float | None:
        total = 0.0
        for pid in self._pids:
            cpu = process_cpu_s(pid)
            if cpu is None:
                return None
            total += cpu
        return total

    def close(self) -> CpuShare | None:
        process = self._processes()
        wall = time.monotonic() - self._wall
        if process is None or wall <= 0:
            return None
        used = process - self._process
        stack = sum(cpu - self._stack.get(pid, 0.0) for pid, cpu in _stack_cpu().items())
        others = machine_busy_s() - self._machine - used - stack
        return CpuShare(wall, used / wall, stack / wall, max(0.0, others) / wall)
