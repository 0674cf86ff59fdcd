"""One maintenance pass at a time across every process: a session advisory lock.

The lock lives in the session, so the connection goes straight to PostgreSQL (the
direct URL behind a transaction-mode pooler, see courier.store.pooler).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from courier.store.queries import query


@asynccontextmanager
async def exclusive_pass(
    database_url: str, key: int
) -> AsyncIterator[psycopg.AsyncCursor[dict[str, Any]] | None]:
    """A cursor on a session that holds advisory lock `key` for the block, or None when
    another session holds it (the pass is skipped; the next tick tries again)."""
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(query("maintenance_try_lock"), {"key": key})
        locked = await cur.fetchone()
        if not locked or not locked["locked"]:
            yield None
            return
        try:
            yield cur
        finally:
            await cur.execute(query("maintenance_unlock"), {"key": key})


async def tenant_ids(cur: psycopg.AsyncCursor[dict[str, Any]]) -> list[uuid.UUID]:
    """Every tenant, for a maintenance pass."""
    await cur.execute(query("maintenance_tenants"))
    return [r["id"] for r in await cur.fetchall()]
