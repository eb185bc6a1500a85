"""What a worker's local state holds, marked on disk: a clean stop, and the transactional id.

Under exactly-once a table store is written during a step, before the transaction that holds the
step's changelog records commits. A worker that stops without committing (a crash, a fenced
zombie, a failed transaction) may leave values whose changelog records were aborted, so its
next run must not trust its stores: they are removed and restored from the committed changelogs
(Kafka Streams does the same with its state under EOS after an unclean stop). A clean stop, after
the last transaction committed, leaves a mark that lets the next run keep them.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CLEAN_MARK = "clean-stop"
TRANSACTIONAL_ID = "transactional-id"


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
    return f"karrot-tx-{app_id}-{suffix}"


def take_clean_mark(data_dir: Path, table_dir: Path) -> bool:
    """At start: keep the table stores when the last run stopped cleanly, else remove them.

    The mark is taken away either way: this run must leave its own. Returns whether the
    stores were removed.
    """
    mark = data_dir / CLEAN_MARK
    if mark.exists():
        mark.unlink()
        return False
    if not table_dir.exists() or not any(table_dir.iterdir()):
        return False
    log.warning(
        "The last run did not stop cleanly under exactly-once: its table stores may hold"
        " uncommitted writes. Removing %s; the tables are restored from their changelogs.",
        table_dir,
    )
    shutil.rmtree(table_dir)
    return True


def leave_clean_mark(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / CLEAN_MARK).write_text("the last transaction committed before this stop\n")
