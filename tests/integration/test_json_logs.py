"""KARROT_LOG_FORMAT=json: a live worker's log is JSON lines, Faust's and aiokafka's included."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.integration.conftest import StartWorker
from tests.support.worker import API_TOKEN

#: Faust prints its start-up banner (a table) straight to the terminal, not through logging.
BANNER_START = ("+", "|", "┌", "│", "├", "└")


def records(log: str) -> tuple[list[dict[str, Any]], list[str]]:
    parsed: list[dict[str, Any]] = []
    other: list[str] = []
    for line in log.splitlines():
        if not line.strip() or line.startswith(BANNER_START):
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            other.append(line)
    return parsed, other


async def test_a_json_worker_logs_only_json_lines(
    start_worker: StartWorker, input_writers: object
) -> None:
    worker = await start_worker(KARROT_LOG_FORMAT="json")
    async with httpx.AsyncClient(timeout=10.0) as client:
        # A request error the middleware logs nothing for, and a publish: more of the project's
        # code runs, whatever it logs goes through the same handler.
        answer = await client.get(
            worker.url + "/api/v1/events/none", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert answer.status_code == 404
    worker.stop()
    parsed, other = records(worker.log_path.read_text(errors="replace"))
    assert not other, f"lines that are not JSON: {other[:5]}"
    assert len(parsed) >= 20
    for record in parsed:
        assert {"time", "level", "logger", "message", "pid"} <= set(record), record
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    loggers = {record["logger"].split(".")[0] for record in parsed}
    assert {"faust", "aiokafka", "karrot_streams"} <= loggers, loggers
