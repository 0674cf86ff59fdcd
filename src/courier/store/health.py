"""Destination health rows and the auto-disable write (rules: courier.destination_health)."""

from __future__ import annotations

from typing import Any

import psycopg

from courier.store.queries import query
from courier.store.rows import Row, fetch_all, fetch_one

Cursor = psycopg.AsyncCursor[dict[str, Any]]


async def destination_health(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> Row | None:
    return await fetch_one(conn, "destination_health", params)


async def destination_healths(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> list[Row]:
    return await fetch_all(conn, "destination_health", params)


async def health_rows(cur: Cursor, params: dict[str, Any]) -> list[Row]:
    await cur.execute(query("destination_health"), params)
    return await cur.fetchall()


async def disable_destination(cur: Cursor, params: dict[str, Any]) -> bool:
    """Disable a destination the verdict condemned, unless it was re-enabled meanwhile."""
    await cur.execute(query("health_disable_destination"), params)
    return await cur.fetchone() is not None
