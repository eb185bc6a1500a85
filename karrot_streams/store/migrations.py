"""Apply the SQL files in ``migrations/`` once each, in version order, under an advisory lock."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import aiopg

from karrot_streams.store.errors import UNAVAILABLE, StoreUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_VERSION = re.compile(r"^V(\d+)__.+\.sql$")
_LOCK_KEY = 0x6B617272  # any constant: serialises workers migrating at the same time


def pending_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        match = _VERSION.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


async def migrate(dsn: str) -> list[int]:
    """Apply what is missing; return the versions applied now.

    Raises StoreUnavailable, with the driver's message, while PostgreSQL cannot be reached.
    """
    try:
        return await _migrate(dsn)
    except UNAVAILABLE as exc:
        raise StoreUnavailable(str(exc)) from exc


async def _migrate(dsn: str) -> list[int]:
    applied_now: list[int] = []
    async with aiopg.connect(dsn, timeout=30) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INT PRIMARY KEY,"
                " name TEXT NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            await cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, path in pending_files():
                if version in done:
                    continue
                # aiopg runs in autocommit: wrap each file so it applies whole or not at all.
                await cur.execute("BEGIN")
                try:
                    await cur.execute(path.read_text(encoding="utf-8"))
                    await cur.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, path.name),
                    )
                    await cur.execute("COMMIT")
                except BaseException:
                    await cur.execute("ROLLBACK")
                    raise
                log.info("Applied migration %s", path.name)
                applied_now.append(version)
        finally:
            await cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
