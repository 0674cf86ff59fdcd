"""Running behind a transaction-pooling PgBouncer: which connections bypass it.

In transaction mode each transaction may run on a different server session, so nothing
may outlive one. What courier keeps in a session goes to COURIER_DATABASE_DIRECT_URL
(PostgreSQL itself); everything else goes through COURIER_DATABASE_URL (the pooler):

- direct: LISTEN (a worker's wake-ups, the API's lifecycle stream), migrations and the
  maintenance passes (each holds a session advisory lock across many transactions), and
  the CLI's one-off commands.
- pooled: every other statement. On pooled connections psycopg never prepares a
  statement (a prepared statement lives in one server session; PgBouncer before 1.21
  cannot carry it across), and planner settings go in with `set_config(..., true)`
  inside the transaction, never in the startup packet (PgBouncer refuses `options`).

Without a direct URL both are the same URL and nothing changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import psycopg

from courier.store.database import DatabaseSettings, database_url
from courier.store.queries import query


def direct_url(settings: DatabaseSettings, url: str) -> str:
    """Where session-bound work connects, given the (possibly pooled) URL in use."""
    if settings.database_url and settings.database_direct_url:
        return settings.database_direct_url
    return url


def is_pooled(url: str, direct: str | None) -> bool:
    """Whether `url` goes through a pooler: a different direct URL is configured."""
    return direct is not None and direct != url


def pooled_kwargs(pooled: bool) -> dict[str, Any]:
    """psycopg connect() keywords for a connection that may go through the pooler."""
    return {"prepare_threshold": None} if pooled else {}


@contextmanager
def direct_database_url(settings: DatabaseSettings) -> Iterator[str]:
    """`database_url`, but the direct URL when one is configured (the CLI's commands)."""
    with database_url(settings) as url:
        yield direct_url(settings, url)


@asynccontextmanager
async def local_settings(
    conn: psycopg.AsyncConnection[Any], settings: Sequence[tuple[str, str]]
) -> AsyncIterator[None]:
    """One transaction that starts by setting `settings` for itself alone.

    BEGIN and the settings go as one simple-protocol message, so a block of one statement
    costs three round trips (BEGIN with the settings, the statement, COMMIT). Not
    pipelined: PgBouncer before 1.21 loses track of a pipelined client's Sync and Flush
    messages in transaction mode and can leave its server session stuck, which with a small
    pool stalls every client (seen: two leases held past a 90 s wait).
    """
    binder = psycopg.AsyncClientCursor(conn)
    parts = ["BEGIN"] + [
        binder.mogrify(query("set_local"), {"name": name, "value": value}).strip().rstrip(";")
        for name, value in settings
    ]
    await conn.execute("; ".join(parts))
    try:
        yield
    except BaseException:
        if not conn.closed:
            with suppress(psycopg.Error, OSError):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
