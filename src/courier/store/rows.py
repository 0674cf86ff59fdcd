"""Run a named statement (see `courier.store.queries`) and read its rows as dicts.

Every row comes back as a `dict_row`: {column name: value}.
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from courier.store.queries import query

Row = dict[str, Any]
AsyncConn = psycopg.AsyncConnection[Any]
Params = dict[str, Any] | None


async def fetch_all(conn: AsyncConn, name: LiteralString, params: Params = None) -> list[Row]:
    """Every row the statement `name` answers."""
    return await fetch_all_of(conn, query(name), params)


async def fetch_all_of(conn: AsyncConn, statement: LiteralString, params: Params) -> list[Row]:
    """Every row `statement` answers: for a text derived from a named one."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        return await cur.fetchall()


async def fetch_one(conn: AsyncConn, name: LiteralString, params: Params = None) -> Row | None:
    """The first row the statement `name` answers, or None when it answers none."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)
        return await cur.fetchone()


async def execute(conn: AsyncConn, name: LiteralString, params: Params = None) -> int:
    """Run the statement `name` for its effect; the number of rows it touched."""
    async with conn.cursor() as cur:
        await cur.execute(query(name), params)
        return cur.rowcount


def fetch_one_sync(
    conn: psycopg.Connection[Any], name: LiteralString, params: Params = None
) -> Row | None:
    """`fetch_one` on a synchronous connection (the CLI's)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query(name), params).fetchone()
