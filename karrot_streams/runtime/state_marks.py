"""What a worker keeps in its data directory besides its tables: its transactional id.

Its table stores need no mark: under exactly-once they hold committed writes only
(:mod:`karrot_streams.runtime.transactional_store`), each partition's database with the offset of
its changelog it is written up to. Whatever way the last run ended (a clean stop, SIGKILL, a
crash, a fenced zombie's abort), the next run keeps them and reads only the changelog records
after that offset.
"""

from __future__ import annotations

import uuid
from pathlib import Path

TRANSACTIONAL_ID = "transactional-id"
#: What every worker's transactional id begins with: the only ids a partition's new owner
#: fences (runtime/internals.py, ``fetch_stable_offsets``).
TRANSACTIONAL_ID_PREFIX = "karrot-tx-"


def transactional_id(data_dir: Path, app_id: str) -> str:
    """``karrot-tx-<app id>-<id of this data directory>``: the same for every run of a worker
    that keeps its data directory, so each run fences the one before and aborts what it left
    open; different for two workers, which must not fence each other."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TRANSACTIONAL_ID
    try:
        suffix = path.read_text().strip()
    except FileNotFoundError:
        suffix = ""
    if not suffix:
        suffix = uuid.uuid4().hex[:16]
        path.write_text(suffix + "\n")
    return f"{TRANSACTIONAL_ID_PREFIX}{app_id}-{suffix}"
