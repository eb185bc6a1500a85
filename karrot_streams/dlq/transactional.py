"""A Redriver's ``send`` and ``hold`` through a transactional producer of its own (the CLI's).

Each ``hold`` block is one transaction: begun on entry, committed when the block ends (aborted
if it raised). So the Redriver notes its pending targets inside the block, before the records
can commit; what ``send`` returns resolves once that transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from karrot_streams.dlq.dead_letters import HeaderList
from karrot_streams.dlq.redrive import Produced

log = logging.getLogger(__name__)


class TransactionAborted(Exception):
    """The redrive's transaction did not commit: none of its records were written."""


class TransactionalSend:
    def __init__(self, producer: Any) -> None:
        """``producer``: a started aiokafka producer with a ``transactional_id``."""
        self._producer = producer
        self._commit: asyncio.Future[None] | None = None

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        commit: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        commit.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._commit = commit
        await self._producer.begin_transaction()
        try:
            yield
        except BaseException as exc:
            await self._abort(commit, f"aborted: {type(exc).__name__}")
            raise
        finally:
            self._commit = None
        try:
            await self.commit()
        except Exception as exc:  # noqa: BLE001  told through each send's awaitable
            await self._abort(commit, f"commit failed: {exc!r}")
        else:
            commit.set_result(None)

    async def commit(self) -> None:
        await self._producer.commit_transaction()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: HeaderList
    ) -> Produced:
        commit = self._commit
        if commit is None:
            raise RuntimeError("TransactionalSend.send outside hold()")
        acknowledged = await self._producer.send(topic, value, key=key, headers=headers)

        async def committed() -> Any:
            metadata = await acknowledged
            await asyncio.shield(commit)
            return metadata

        return Produced(acknowledged, committed())

    async def _abort(self, commit: asyncio.Future[None], reason: str) -> None:
        if not commit.done():
            commit.set_exception(TransactionAborted(reason))
        try:
            await self._producer.abort_transaction()
        except Exception as exc:  # noqa: BLE001  the broker aborts it at its timeout
            log.warning("Aborting the redrive's transaction failed: %r", exc)
