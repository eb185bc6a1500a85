"""What the event store raises: the database is down, or it refused what it was given.

Above ``store/`` nothing catches a psycopg2 error: these two say what a caller needs to know.
"""

from __future__ import annotations

import psycopg2

from karrot_streams.events.failures import TransientFailure

#: Errors that say the database is unreachable, not that a row is bad.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    TimeoutError,
    OSError,
)

#: Every error PostgreSQL answers a statement with (a bad row, a missing table).
DATABASE_ERROR = psycopg2.Error


class StoreUnavailable(TransientFailure):
    """PostgreSQL cannot be reached now: wait it out, the rows are not at fault."""


class RowsRefused(Exception):
    """PostgreSQL answered the statement with an error: something in the rows, not an outage."""
