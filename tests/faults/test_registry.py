"""The schema registry away: at start, while running (frozen), and restarted with its memory lost.

*Unavailable* is a frozen registry (SIGSTOP): it keeps its port and its state and answers nothing,
as a hung or partitioned one would. Messages whose schema id the worker has cached keep flowing;
a message with an id it has never seen waits (its agent waits, the others go on), and nothing is
dead-lettered for it.

*Restarted* is the local Apicurio in memory: it comes back empty and numbers schemas from 1 again,
so an id can name one schema in old messages and another in new ones. Upstream producers register
again (here in another order, so the ids collide) and produce with the new ids. The worker must
read both the old backlog and the new messages, and frame its own output with ids the new
registry resolves to the right schema.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Mapping
from dataclasses import replace

import fastavro
import httpx
import pytest
from schema_registry.client import AsyncSchemaRegistryClient

from karrot_streams.avro import schemas
from karrot_streams.avro.codec import encode
from karrot_streams.avro.framing import unframe
from karrot_streams.avro.registry import SchemaRegistry, WriterSchema
from karrot_streams.events.types import INPUT_TOPICS
from karrot_streams.settings import Settings
from karrot_streams.traffic import Record
from tests.faults.conftest import Workers
from tests.faults.probes import health
from tests.faults.scenario import BOTH, Scenario, Size
from tests.faults.stackctl import FaultStack
from tests.support import kafka, store

pytestmark = pytest.mark.faults

SIZE = Size(count=1200, rate=300)


async def new_item_writer(settings: Settings) -> WriterSchema:
    """The item envelope plus an optional field, under a subject of its own: an id never cached."""
    raw = json.loads(json.dumps(schemas.load("item-events-value").raw))
    raw["fields"].append({"name": "faultProbe", "type": ["null", "string"], "default": None})
    client = AsyncSchemaRegistryClient(url=settings.schema_registry_url)
    schema_id = await client.register("fault-probe-item-events-value", raw)
    return WriterSchema(schema_id, str(raw["name"]), fastavro.parse_schema(raw))


def reencoded(batch: list[Record], writer: WriterSchema) -> list[Record]:
    out = []
    for record in batch:
        if record.topic != "item-events" or record.poison or record.event is None:
            continue
        avro = {**record.event.to_avro(), "faultProbe": "new"}
        out.append(replace(record, raw=encode(writer.schema_id, writer.parsed, avro)))
    return out


def rows_for(batch: list[Record]) -> dict[str, str]:
    return {r.event.event_id: "PROCESSED" for r in batch if r.event is not None and not r.poison}


async def dead_letters_of(bootstrap: str, tag: str) -> int:
    count = 0
    for topic in INPUT_TOPICS:
        for m in await kafka.read_all(bootstrap, f"dlq.{topic}"):
            count += m.key is not None and m.key.startswith(tag.encode())
    return count


@pytest.mark.parametrize("guarantee", BOTH)
async def test_registry_unavailable_at_start(
    guarantee: str,
    scenario: Callable[[str], Scenario],
    workers: Workers,
    fault_stack: FaultStack,
    fault_settings: Settings,
) -> None:
    run = scenario("registry down at worker start")
    run.watch_commits()
    fault_stack.freeze("registry")
    run.fault()
    try:
        worker = workers.start("worker")
        await worker.wait_ready(healthy=False)
        run.produce(run.traffic(SIZE), SIZE.rate)
        await asyncio.sleep(8)
        status, body = await health(worker.url)
        assert status == 503 and body["components"]["schema_registry"]["status"] == "DOWN", body
        assert await dead_letters_of(fault_settings.kafka_bootstrap, run.tag) == 0
    finally:
        fault_stack.thaw("registry")
    run.fault_over()
    await run.verdict([worker.url])


@pytest.mark.parametrize("guarantee", BOTH)
async def test_registry_unavailable_while_running(
    guarantee: str,
    scenario: Callable[[str], Scenario],
    workers: Workers,
    fault_stack: FaultStack,
    fault_settings: Settings,
) -> None:
    run = scenario("registry frozen while running")
    worker = workers.start("worker")
    await worker.wait_ready()
    run.watch_commits()
    warmup = run.traffic(Size(count=200, rate=400), seed=31)
    await run.produce(warmup, 400)  # every input id is cached now
    found = await store.wait_for_statuses(fault_settings.database_dsn, rows_for(warmup), 60)
    assert all(s == "PROCESSED" for s, _ in found.values())

    probe_writer = await new_item_writer(fault_settings)
    # Poison of the kind "unknown-schema" has an id the worker never cached: it waits too.
    cached = [r for r in run.traffic(SIZE, seed=32) if r.poison != "unknown-schema"]
    uncached = reencoded(run.traffic(Size(count=100, rate=100), seed=33), probe_writer)
    flowing = [r for r in cached if r.topic != "item-events"]
    fault_stack.freeze("registry")
    run.fault()
    try:
        await run.produce(cached, SIZE.rate)
        await run.produce(uncached, 200)
        # Cached ids flow on the topics the new id does not hold up.
        found = await store.wait_for_statuses(
            fault_settings.database_dsn, rows_for(flowing), timeout_s=60
        )
        stuck = [i for i, s in rows_for(flowing).items() if found.get(i, ("",))[0] != s]
        assert not stuck, f"{len(stuck)} events with cached schema ids did not flow"
        waiting = await store.statuses(fault_settings.database_dsn, rows_for(uncached))
        assert not waiting, "an event with an uncached schema id was handled without its schema"
        status, body = await health(worker.url)
        assert status == 503, body
        dead = await dead_letters_of(fault_settings.kafka_bootstrap, run.tag)
        assert dead == sum(1 for r in run.batch if r.poison), "a good event was dead-lettered"
    finally:
        fault_stack.thaw("registry")
    run.fault_over()
    result = await run.verdict([worker.url])
    result.notes.append(
        f"{len(flowing)} cached-id events flowed during the freeze; "
        f"{len(uncached)} with a new id waited"
    )


def _strangers_for_collision(old: Mapping[str, int]) -> int:
    """How many unrelated schemas to register first so that a new input id hits an old id of
    another subject (``old``: every subject of ours, inputs and outputs, as the worker cached).

    An empty Apicurio numbers content from 1 in registration order; our subjects go in reverse
    order after ``n`` strangers, so the j-th of them gets ``n + 1 + j``.
    """
    order = list(reversed(list(schemas.load_all())))
    inputs = [f"{topic}-value" for topic in INPUT_TOPICS]
    for n in range(64):
        new = {subject: n + 1 + j for j, subject in enumerate(order)}
        if any(new[s] in {i for t, i in old.items() if t != s} for s in inputs):
            return n
    raise AssertionError(f"no registration order makes {old} collide")


async def _register_in_another_order(
    settings: Settings, old: Mapping[str, int]
) -> dict[str, WriterSchema]:
    """As upstream services would after the registry lost everything: register, get new ids,
    in an order that makes an old id name another schema now."""
    registry = SchemaRegistry(settings.schema_registry_url)
    client = AsyncSchemaRegistryClient(url=settings.schema_registry_url)
    for n in range(_strangers_for_collision(old)):
        fields = [{"name": "x", "type": "long"}]
        stranger = {"type": "record", "name": f"Stranger{n}", "fields": fields}
        await client.register(f"fault-stranger-{n}-value", stranger)
    subjects = dict(reversed(list(schemas.load_all().items())))
    ids = await registry.ensure(subjects)
    out = {}
    for topic in INPUT_TOPICS:
        writer = registry.cached(ids[f"{topic}-value"])
        assert writer is not None
        out[topic] = writer
    return out


async def _enriched_ids_resolve(settings: Settings, tag: str) -> list[str]:
    """Enriched records of ``tag`` whose framing id names another schema in the registry now."""
    wrong = []
    names: dict[int, str] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for topic in INPUT_TOPICS:
            want = schemas.load(f"enriched.{topic}-value").record_name.rsplit(".", 1)[-1]
            for m in await kafka.read_all(settings.kafka_bootstrap, f"enriched.{topic}"):
                if m.key is None or not m.key.startswith(tag.encode()) or m.value is None:
                    continue
                schema_id, _ = unframe(m.value)
                if schema_id not in names:
                    answer = await client.get(
                        f"{settings.schema_registry_url}/schemas/ids/{schema_id}"
                    )
                    names[schema_id] = (
                        json.loads(answer.json()["schema"])["name"].rsplit(".", 1)[-1]
                        if answer.status_code == 200
                        else f"HTTP {answer.status_code}"
                    )
                if names[schema_id] != want:
                    wrong.append(f"{topic}: id {schema_id} is {names[schema_id]}, not {want}")
    return sorted(set(wrong))


@pytest.mark.parametrize("guarantee", BOTH)
async def test_registry_restarted_empty(
    guarantee: str,
    scenario: Callable[[str], Scenario],
    workers: Workers,
    fault_stack: FaultStack,
    fault_settings: Settings,
    writers: Mapping[str, WriterSchema],
) -> None:
    run = scenario("registry restarted empty")
    worker = workers.start("worker", KARROT_REGISTRY_CHECK_S="3")
    await worker.wait_ready()
    run.watch_commits()
    await run.produce(run.traffic(SIZE, seed=41), SIZE.rate)
    before = await SchemaRegistry(fault_settings.schema_registry_url).registered_ids(
        schemas.load_all()
    )
    old = {subject: schema_id for subject, schema_id in before.items() if schema_id is not None}
    run.fault()
    await fault_stack.run("stop", "registry")
    # The worker is frozen while the registry comes back and upstream registers again, so that
    # upstream's ids (shifted by one, colliding with the old ones) are the registry's, not the
    # worker's own re-registration.
    assert worker.process is not None
    worker.process.send_signal(signal.SIGSTOP)
    try:
        await fault_stack.run("start", "registry")
        fresh = await _register_in_another_order(fault_settings, old)
    finally:
        worker.process.send_signal(signal.SIGCONT)
    run.fault_over()
    new_ids = {t: fresh[t].schema_id for t in INPUT_TOPICS}
    collisions = [t for t in INPUT_TOPICS if new_ids[t] in set(old.values()) - {old[f"{t}-value"]}]
    assert collisions, f"nothing collides: {old} -> {new_ids}"
    run.tag = run.tag + "n"
    after = run.traffic(SIZE, seed=42)
    run.tag = run.tag[:-1]
    # Three quarters from upstream services that registered again (new ids), one quarter a
    # backlog written before the reset (old ids, which now name other schemas).
    after = [
        replace(r, raw=encode(fresh[r.topic].schema_id, fresh[r.topic].parsed, r.event.to_avro()))
        if r.event is not None and not r.poison and n % 4
        else r
        for n, r in enumerate(after)
    ]
    await asyncio.sleep(5)  # the worker's registration check runs every 3 s here
    await run.produce(after, SIZE.rate)
    # Frozen for longer than its session (8 s), the worker may be dropped from the group and
    # rejoin: offsets acked in the last second before the freeze are read again (at-least-once,
    # as after a SIGKILL).
    result = await run.verdict([worker.url], duplicate_bound=int(SIZE.rate * 2) + 100)
    wrong = await _enriched_ids_resolve(fault_settings, run.tag + "n")
    assert not wrong, wrong
    result.notes.append(
        "ids after the restart: "
        + ", ".join(f"{t} {writers[t].schema_id}->{fresh[t].schema_id}" for t in INPUT_TOPICS)
    )
