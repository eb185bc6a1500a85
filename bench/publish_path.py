"""The publish path, before and after a change: interleaved rounds.

``--live``: a worker of each tree on the local stack (``KARROT_*`` from the environment), and
rounds of ``POST /api/v1/events`` for ``--seconds`` with ``--concurrency`` clients, alternating
between them: publishes per second and the worker's CPU per publish (/proc).

Without ``--live``, the request checking alone, in-process:
``python -m bench.publish_path --before <tree>`` runs, in turn, a child on ``<tree>`` (a checkout
of the package as it was: ``git archive <commit> | tar -x -C <tree>``) and one on this tree, for
``--rounds`` rounds, each child timing ``--requests`` publish bodies through ``parse_publish``
(read the JSON, check it, build the Event: everything the API does to a body before Kafka) and
the same payloads through the stream's ``validate_payload``. Rate is requests per CPU second of
the child; CPU per request is the child's process time over the requests (one core, no I/O).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

BODIES: list[dict[str, Any]] = [
    {
        "eventType": "ITEM_CREATED",
        "aggregateId": "item-1",
        "payload": {
            "itemId": "item-1",
            "sellerId": "seller-1",
            "title": "아이폰 15",
            "price": 850000,
            "category": "디지털기기",
            "region": "서울 마포구",
        },
    },
    {
        "eventType": "PAYMENT_COMPLETED",
        "aggregateId": "pay-1",
        "correlationId": "c-1",
        "payload": {
            "paymentId": "pay-1",
            "buyerId": "b-1",
            "sellerId": "seller-1",
            "itemId": "item-1",
            "amount": 850000,
        },
    },
    {
        "eventType": "USER_CREATED",
        "aggregateId": "user-1",
        "payload": {"userId": "user-1", "email": "a@karrot.kr", "nickname": "당근", "region": None},
    },
    {
        "eventType": "CHAT_MESSAGE_SENT",
        "aggregateId": "room-1",
        "payload": {"chatRoomId": "room-1", "senderId": "user-1", "message": "안녕하세요" * 20},
    },
]


def child(requests: int) -> dict[str, float | str]:
    """Time ``requests`` bodies through the API's and the stream's checks of this tree."""
    from karrot_streams.events.types import PAYLOAD_RECORD_OF, EventType  # noqa: PLC0415
    from karrot_streams.events.validation import validate_payload  # noqa: PLC0415
    from karrot_streams.web.http import requests as parsing  # noqa: PLC0415

    raws = [json.dumps(body, ensure_ascii=False).encode() for body in BODIES]
    records = [PAYLOAD_RECORD_OF[EventType(body["eventType"])] for body in BODIES]
    event_id, now = str(uuid.uuid4()), datetime.now(UTC)
    for raw in raws * 200:  # warm up
        parsing.parse_publish(raw, event_id=event_id, now=now)
    started = time.process_time()
    for n in range(requests):
        parsing.parse_publish(raws[n % len(raws)], event_id=event_id, now=now)
    api_s = time.process_time() - started
    started = time.process_time()
    for n in range(requests):
        validate_payload(records[n % len(records)], BODIES[n % len(BODIES)]["payload"])
    stream_s = time.process_time() - started
    return {
        "module": parsing.__file__ or "",
        "api_us": api_s / requests * 1e6,
        "stream_us": stream_s / requests * 1e6,
    }


def run_child(tree: str, requests: int) -> dict[str, Any]:
    # The child's working folder comes first in its path: the tree's package, not this one's.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, here])}
    out = subprocess.run(
        [sys.executable, "-m", "bench.publish_path", "--child", str(requests)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    assert result["module"].startswith(tree), (result["module"], tree)  # noqa: S101
    return result


async def start_at_end(app_id: str) -> None:
    """Commit the input topics' ends for a new app's group: the worker reads only what the
    bench publishes, not every record the shared topics ever had."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    from karrot_streams.connections import kafka_connection  # noqa: PLC0415
    from karrot_streams.events.types import INPUT_TOPICS  # noqa: PLC0415
    from karrot_streams.settings import Settings  # noqa: PLC0415

    settings = Settings()
    consumer = AIOKafkaConsumer(
        **kafka_connection(settings).client_kwargs(), group_id=app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        # The input topics have the settings' partitions (provision.py creates them so).
        tps = [
            TopicPartition(topic, p)
            for topic in INPUT_TOPICS
            for p in range(settings.topic_partitions)
        ]
        consumer.assign(tps)
        await consumer.commit(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def start_worker(tree: str, folder: str, port: int) -> subprocess.Popen[bytes]:
    """A worker of its own app running ``tree``'s package (its folder first in the path)."""
    import asyncio  # noqa: PLC0415

    os.makedirs(folder, exist_ok=True)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app_id = f"bench-publish-{uuid.uuid4().hex[:8]}"
    asyncio.run(start_at_end(app_id))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([tree, here]),
        "KARROT_APP_ID": app_id,
        "KARROT_WEB_PORT": str(port),
        "KARROT_DATA_DIR": folder,
    }
    log = open(os.path.join(folder, "worker.log"), "ab")  # noqa: SIM115  the worker's, for its life
    return subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "karrot_streams.app", "worker", "-l", "warn"],
        env=env,
        cwd=tree,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 180.0) -> None:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/monitoring/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy")


def live_round(url: str, pid: int, seconds: float, concurrency: int) -> tuple[float, float]:
    """Publish for ``seconds`` with ``concurrency`` clients: (requests/s, worker CPU ms/request)."""
    import asyncio  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from bench.cpu import process_cpu_s  # noqa: PLC0415

    raws = [json.dumps(body, ensure_ascii=False).encode() for body in BODIES]
    headers = {"Authorization": "Bearer local-dev-token", "Content-Type": "application/json"}

    async def clients() -> int:
        done = 0
        end = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

            async def one(n: int) -> None:
                nonlocal done
                while time.monotonic() < end:
                    answer = await client.post("/api/v1/events", content=raws[n % len(raws)])
                    assert answer.status_code == 201, answer.text  # noqa: S101
                    done += 1
                    n += 1

            await asyncio.gather(*(one(n) for n in range(concurrency)))
        return done

    cpu_before, started = process_cpu_s(pid) or 0.0, time.monotonic()
    done = asyncio.run(clients())
    elapsed, cpu = time.monotonic() - started, (process_cpu_s(pid) or 0.0) - cpu_before
    return done / elapsed, cpu / done * 1000


def live(options: argparse.Namespace) -> None:
    trees = {"before": options.before, "after": options.after}
    ports = {"before": free_port(), "after": free_port()}
    base = tempfile.mkdtemp(prefix="bench-publish-")
    workers = {
        name: start_worker(tree, os.path.join(base, name), ports[name])
        for name, tree in trees.items()
    }
    try:
        for name in trees:
            wait_healthy(f"http://127.0.0.1:{ports[name]}")
        results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for n in range(options.rounds):
            for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
                url = f"http://127.0.0.1:{ports[name]}"
                results[name].append(
                    live_round(url, workers[name].pid, options.seconds, options.concurrency)
                )
                rate, cpu_ms = results[name][-1]
                print(
                    f"live round {n + 1} {name:6}: {rate:7.1f} publishes/s,"
                    f" worker CPU {cpu_ms:5.2f} ms/publish",
                    file=sys.stderr,
                )
        for name, runs in results.items():
            rate = statistics.median(r for r, _ in runs)
            cpu_ms = statistics.median(c for _, c in runs)
            print(
                f"{name:6}: live median {rate:.1f} publishes/s, worker CPU {cpu_ms:.2f} ms/publish"
                f" ({options.concurrency} clients, {options.seconds:.0f} s x {len(runs)} rounds)"
            )
    finally:
        for worker in workers.values():
            worker.terminate()
        for worker in workers.values():
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="a checkout of the package before the change")
    parser.add_argument("--after", default=os.getcwd(), help="this tree (default: cwd)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--live", action="store_true", help="publish over HTTP to a worker of each tree instead"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(options.child)))
        return
    if options.live:
        live(options)
        return
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for n in range(options.rounds):
        order = ("before", "after") if n % 2 == 0 else ("after", "before")
        for name in order:
            tree = options.before if name == "before" else options.after
            results[name].append(run_child(tree, options.requests))
            last = results[name][-1]
            print(
                f"round {n + 1} {name:6}: API {last['api_us']:6.1f} µs/request"
                f" ({1e6 / last['api_us']:8,.0f}/s), stream {last['stream_us']:5.1f} µs/payload",
                file=sys.stderr,
            )
    for name, runs in results.items():
        api = statistics.median(r["api_us"] for r in runs)
        stream = statistics.median(r["stream_us"] for r in runs)
        print(
            f"{name:6}: median API {api:.1f} µs CPU/request ({1e6 / api:,.0f} requests/s per"
            f" core), stream validation {stream:.1f} µs/payload, {len(runs)} rounds"
        )


if __name__ == "__main__":
    main()
