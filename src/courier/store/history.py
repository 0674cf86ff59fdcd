"""The history tables' time partitions: one per UTC day, made ahead, dropped whole.

`delivery_attempts` is partitioned by `delivery_id` (uuid7, so a day of deliveries is a
range of ids: a delivery's attempts all live in its creation day), `lifecycle_events`
by `occurred_at`. Each also has a default partition, so an insert never fails for want
of a partition, and a first partition (`<table>_before`) holding everything from before
the conversion (db/postgres/024_history_partitions.sql).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from courier.store.queries import query

logger = logging.getLogger("courier.history")

HISTORY_TABLES = ("delivery_attempts", "lifecycle_events")
CREATE_TRIES = 5  # per day and pass, each waiting at most history_lock_timeout
CREATE_PAUSE_S = 0.25  # between tries (jittered up to twice that): the engine moves on
FIRST_KEY = "00000000-0000-0000-0000-000000000000"  # below every uuid


@dataclass(frozen=True, slots=True)
class Partition:
    parent: str
    name: str
    lower_key: str | None  # None: the first partition, from MINVALUE
    upper_key: str
    starts_at: datetime | None  # None: the first partition
    ends_at: datetime


async def partitions(cur: psycopg.AsyncCursor[dict[str, Any]]) -> list[Partition]:
    """Every partition but the default ones, oldest first per table."""
    await cur.execute(query("history_partitions"))
    return [
        Partition(
            parent=row["parent"],
            name=row["partition"],
            lower_key=row["lower_key"],
            upper_key=row["upper_key"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
        )
        for row in await cur.fetchall()
    ]


async def create_ahead(cur: psycopg.AsyncCursor[dict[str, Any]], days_ahead: int) -> list[str]:
    """Make the partitions of today and the next `days_ahead` UTC days where missing;
    returns the names made. A day whose locks stay busy is left to the next pass (days
    are made a week ahead, so a pass that misses one costs nothing)."""
    await cur.execute(query("history_today"))
    row = await cur.fetchone()
    assert row is not None
    today: date = row["today"]
    made: list[str] = []
    for parent in HISTORY_TABLES:
        for offset in range(days_ahead + 1):
            day = today + timedelta(days=offset)
            if await _create_partition(cur, parent, day):
                made.append(f"{parent}_p{day:%Y%m%d}")
    return made


async def _create_partition(
    cur: psycopg.AsyncCursor[dict[str, Any]], parent: str, day: date
) -> bool:
    """One day's partition, under the short lock timeout, tried a few times; False when
    it exists already or its locks stayed busy."""
    for attempt in range(CREATE_TRIES):
        try:
            async with _short_locks(cur):
                await cur.execute(query("history_create_partition"), {"parent": parent, "day": day})
                created = await cur.fetchone()
            return created is not None and bool(created["created"])
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            # DeadlockDetected: a server whose deadlock_timeout is below our lock
            # timeout picked the pass as the victim of the cycle; it gives way all the same
            if attempt + 1 < CREATE_TRIES:
                await asyncio.sleep(CREATE_PAUSE_S * (1 + random.random()))
    logger.warning("history: %s of %s is busy; making it next pass", day, parent)
    return False


async def drop_lifecycle_partition(
    cur: psycopg.AsyncCursor[dict[str, Any]], partition: Partition
) -> None:
    """Drop a day of lifecycle events whole."""
    async with _short_locks(cur):
        await cur.execute(_named("history_drop_partition", partition.name))


async def drop_attempts_partition(
    cur: psycopg.AsyncCursor[dict[str, Any]],
    partition: Partition,
    delivered_before: datetime,
    dead_before: datetime,
) -> int:
    """Drop a day of attempts whole, keeping (in the default partition) the attempts of
    that day's deliveries that retention does not remove yet; returns how many were kept."""
    params = {
        "lower_key": partition.lower_key or FIRST_KEY,
        "upper_key": partition.upper_key,
        "delivered_before": delivered_before,
        "dead_before": dead_before,
    }
    async with _short_locks(cur):
        await cur.execute(_named("history_hold_partition", partition.name))
        await cur.execute(_named("history_keep_attempts", partition.name), params)
        await cur.execute(_named("history_drop_partition", partition.name))
        await cur.execute(query("history_restore_attempts"))
        row = await cur.fetchone()
    return int(row["kept"]) if row is not None else 0


@asynccontextmanager
async def _short_locks(cur: psycopg.AsyncCursor[dict[str, Any]]) -> AsyncIterator[None]:
    """A transaction whose lock waits end at history_lock_timeout (see its comment)."""
    async with cur.connection.transaction():
        await cur.execute(query("history_lock_timeout"))
        yield


def _named(name: str, partition: str) -> sql.Composed:
    # Only this module's own statements, with a partition name read from the catalog.
    return sql.SQL(query(name)).format(partition=sql.Identifier(partition))
