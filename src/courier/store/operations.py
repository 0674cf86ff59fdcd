"""Operator actions in PostgreSQL: replays, bulk replays, outage recovery (the rules that
decide what each may do live in courier.replay and courier.recovery)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from courier.store.queries import query
from courier.store.rows import Row, fetch_one


async def replay_attempt(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Row | None:
    """Try to replay one delivery: the new delivery, or why not (original state, usable
    destination); None when the delivery does not exist for the tenant."""
    return await fetch_one(conn, "replay_delivery", params)


async def replay_by_key(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Row | None:
    """The replay an Idempotency-Key already made, if any."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("replay_by_key"), params)
        return await cur.fetchone()


async def replay_selected(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Row:
    """Replay (or, dry, list) the deliveries a bulk filter selects."""
    row = await fetch_one(conn, "replay_dead_letters", params)
    assert row is not None
    return row


async def destination_outage(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> Row | None:
    return await fetch_one(conn, "destination_outage", params)


async def recover_destination(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
) -> Row | None:
    return await fetch_one(conn, "recover_destination", params)
