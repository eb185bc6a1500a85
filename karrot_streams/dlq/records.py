"""The ``dlq_redrive`` table: which dead letters were redriven, where to, by which request.

A redrive claims its letters before producing them (``INSERT ... ON CONFLICT``), so two requests
running at once never both produce a letter: the second finds the claim and leaves the letter
alone. Once Kafka has acknowledged the redriven message, and before its transaction is known to
have committed, the claim gets a *pending* target (``pending_partition``/``pending_offset``);
once the commit is known it becomes a record (``target_*``, ``redriven_at``). A claim whose
request died (``redriven_at`` still NULL) is taken over by the next request once it is older
than the lease; if it has a pending target, the claim returns it, and the redrive asks Kafka
whether that record committed before producing again. A request that failed to produce releases
its claims at once (a claim with a pending target is kept, its lease ended), so no letter is
left unredrivable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiopg

from karrot_streams.dlq.dead_letters import Position
from karrot_streams.store.errors import UNAVAILABLE, StoreUnavailable

#: A claim older than this, never produced, belongs to a request that died: it may be taken over.
CLAIM_LEASE_S = 120.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where a redriven letter was written."""

    topic: str
    partition: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class RedriveRecord:
    position: Position
    request_id: str
    claimed_at: datetime
    #: None while the letter is only claimed (not yet known to be committed in Kafka).
    target: Target | None
    redriven_at: datetime | None
    #: Where it was produced, acknowledged but not (yet) known to be committed.
    pending: Target | None = None

    @property
    def redriven(self) -> bool:
        return self.redriven_at is not None


_LOOKUP = """
SELECT r.dlq_partition, r.dlq_offset, r.request_id, r.claimed_at, r.target_topic,
       r.target_partition, r.target_offset, r.redriven_at, r.pending_partition, r.pending_offset
FROM dlq_redrive r
JOIN unnest(%s::int[], %s::bigint[]) AS w(p, o) ON r.dlq_partition = w.p AND r.dlq_offset = w.o
WHERE r.dlq_topic = %s
"""

# A new letter is claimed; a letter already known is left alone (DO NOTHING in effect), unless
# its claim was never confirmed and is older than the lease: then this request takes it over,
# and learns the pending target (if any) that the request before it left.
_CLAIM = """
INSERT INTO dlq_redrive AS r (dlq_topic, dlq_partition, dlq_offset, target_topic, request_id)
SELECT %s, w.p, w.o, w.t, %s FROM unnest(%s::int[], %s::bigint[], %s::varchar[]) AS w(p, o, t)
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET
    request_id = EXCLUDED.request_id,
    -- A pending record went to the topic named then.
    target_topic = CASE WHEN r.pending_offset IS NULL THEN EXCLUDED.target_topic
                        ELSE r.target_topic END,
    claimed_at = now()
WHERE r.redriven_at IS NULL AND r.claimed_at < now() - make_interval(secs => %s)
RETURNING r.dlq_partition, r.dlq_offset, r.target_topic, r.pending_partition, r.pending_offset
"""

# Only this request's claims: a claim taken over since is the new owner's.
_PENDING = """
UPDATE dlq_redrive AS r SET
    target_topic = w.t, pending_partition = w.tp, pending_offset = w.tof
FROM unnest(%s::int[], %s::bigint[], %s::varchar[], %s::int[], %s::bigint[]) AS w(p, o, t, tp, tof)
WHERE r.dlq_topic = %s AND r.dlq_partition = w.p AND r.dlq_offset = w.o
  AND r.request_id = %s AND r.redriven_at IS NULL
"""

_MARK = """
UPDATE dlq_redrive AS r SET
    target_topic = w.t, target_partition = w.tp, target_offset = w.tof, redriven_at = now(),
    pending_partition = NULL, pending_offset = NULL
FROM unnest(%s::int[], %s::bigint[], %s::varchar[], %s::int[], %s::bigint[]) AS w(p, o, t, tp, tof)
WHERE r.dlq_topic = %s AND r.dlq_partition = w.p AND r.dlq_offset = w.o
  AND r.redriven_at IS NULL
"""

# A claim without a pending target is dropped; one with a pending target is kept (its record
# may yet commit) with its lease ended, so the next request checks Kafka at once.
_RELEASE = """
WITH w AS (SELECT * FROM unnest(%s::int[], %s::bigint[]) AS w(p, o)),
dropped AS (
    DELETE FROM dlq_redrive AS r USING w
    WHERE r.dlq_topic = %s AND r.dlq_partition = w.p AND r.dlq_offset = w.o
      AND r.request_id = %s AND r.redriven_at IS NULL AND r.pending_offset IS NULL
)
UPDATE dlq_redrive AS r SET claimed_at = '-infinity'
FROM w
WHERE r.dlq_topic = %s AND r.dlq_partition = w.p AND r.dlq_offset = w.o
  AND r.request_id = %s AND r.redriven_at IS NULL AND r.pending_offset IS NOT NULL
"""


class RedriveRecords:
    """The table through one connection (redrives are rare, admin-driven operations)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    @asynccontextmanager
    async def connect(cls, dsn: str, timeout_s: float = 10.0) -> AsyncIterator[RedriveRecords]:
        try:
            connection = await aiopg.connect(dsn, timeout=timeout_s)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}".strip()) from exc
        try:
            yield cls(connection)
        finally:
            await connection.close()

    async def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._connection.cursor() as cur:
                await cur.execute(sql, params)
                if cur.description is None:
                    return []
                return list(await cur.fetchall())
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}".strip()) from exc

    async def lookup(
        self, dlq_topic: str, positions: Collection[Position]
    ) -> dict[Position, RedriveRecord]:
        """The records (claims included) of the letters at ``positions``."""
        if not positions:
            return {}
        partitions, offsets = _columns(positions)
        rows = await self._execute(_LOOKUP, (partitions, offsets, dlq_topic))
        found: dict[Position, RedriveRecord] = {}
        for p, o, request_id, claimed_at, t, tp, tof, redriven_at, pp, po in rows:
            target = Target(t, tp, tof) if redriven_at is not None else None
            pending = Target(t, pp, po) if po is not None and redriven_at is None else None
            found[(p, o)] = RedriveRecord(
                (p, o), request_id, claimed_at, target, redriven_at, pending
            )
        return found

    async def claim(
        self,
        dlq_topic: str,
        wanted: Mapping[Position, str],
        request_id: str,
        lease_s: float = CLAIM_LEASE_S,
    ) -> dict[Position, Target | None]:
        """Claim the letters at ``wanted`` (position -> target topic); return those claimed,
        each with the pending target a request before left on it (None: never acknowledged)."""
        if not wanted:
            return {}
        partitions, offsets = _columns(wanted)
        topics = [wanted[(p, o)] for p, o in zip(partitions, offsets, strict=True)]
        rows = await self._execute(
            _CLAIM, (dlq_topic, request_id, partitions, offsets, topics, float(lease_s))
        )
        return {
            (int(p), int(o)): None if po is None else Target(str(t), int(pp), int(po))
            for p, o, t, pp, po in rows
        }

    async def set_pending(
        self, dlq_topic: str, targets: Mapping[Position, Target], request_id: str
    ) -> None:
        """Note where this request's letters were produced, before their commit is known."""
        if targets:
            await self._execute(_PENDING, (*_target_columns(targets), dlq_topic, request_id))

    async def mark_redriven(self, dlq_topic: str, targets: Mapping[Position, Target]) -> None:
        """Confirm: the letters' records at ``targets`` are committed."""
        if targets:
            await self._execute(_MARK, (*_target_columns(targets), dlq_topic))

    async def release(
        self, dlq_topic: str, positions: Collection[Position], request_id: str
    ) -> None:
        """Drop this request's unproduced claims, so the next request may redrive them."""
        if not positions:
            return
        partitions, offsets = _columns(positions)
        await self._execute(
            _RELEASE, (partitions, offsets, dlq_topic, request_id, dlq_topic, request_id)
        )


def _columns(positions: Collection[Position]) -> tuple[list[int], list[int]]:
    ordered = sorted(set(positions))
    return [p for p, _ in ordered], [o for _, o in ordered]


def _target_columns(targets: Mapping[Position, Target]) -> tuple[list[Any], ...]:
    partitions, offsets = _columns(targets)
    chosen = [targets[(p, o)] for p, o in zip(partitions, offsets, strict=True)]
    return (
        partitions,
        offsets,
        [t.topic for t in chosen],
        [t.partition for t in chosen],
        [t.offset for t in chosen],
    )
