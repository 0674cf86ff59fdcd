"""Retention: the cleaner deletes what is older than its keeping time, in small batches.

- `delivered` deliveries that ended more than `retention_days` ago (default 30),
- `failed` and `dead_lettered` ones that ended more than `dead_letter_retention_days`
  ago (default 90: they are the evidence operators replay from),
- with their attempts and lifecycle events, and then
- events older than `retention_days` that have no delivery left.

Audit records are kept. A delivery that a remaining replay names (`replay_of`) waits
for that replay to go first. Each batch (`batch_size` rows, default 1,000) is its own
short transaction that skips rows others hold, so the cleaner never blocks the
delivery engine for long. One run at a time (a session advisory lock); a run does at
most `max_batches` batches per tenant and table, and the next run continues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from courier.settings import Settings
from courier.store.queries import query

CLEANER_LOCK_KEY = 7_240_314_161  # pg_try_advisory_lock key of the cleaner
DAY = 86_400.0  # seconds


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    retention_days: float = 30.0
    dead_letter_retention_days: float = 90.0
    batch_size: int = 1_000  # rows per statement
    max_batches: int = 1_000  # per tenant and kind of row, per run

    @classmethod
    def from_settings(cls, settings: Settings) -> CleanerConfig:
        return cls(
            retention_days=settings.retention_days,
            dead_letter_retention_days=settings.dead_letter_retention_days,
        )


@dataclass(slots=True)
class CleanerRun:
    ran: bool  # False: another process holds the lock
    deleted: dict[str, int] = field(
        default_factory=lambda: {
            "deliveries": 0,
            "attempts": 0,
            "lifecycle_events": 0,
            "events": 0,
        }
    )


class Cleaner:
    def __init__(self, database_url: str, config: CleanerConfig | None = None) -> None:
        self.database_url = database_url
        self.config = config or CleanerConfig()

    async def run_once(self) -> CleanerRun:
        """One pass over every tenant; returns how many rows of each kind it deleted."""
        async with (
            await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(query("maintenance_try_lock"), {"key": CLEANER_LOCK_KEY})
            locked = await cur.fetchone()
            if not locked or not locked["locked"]:
                return CleanerRun(ran=False)
            try:
                return await self._clean(cur)
            finally:
                await cur.execute(query("maintenance_unlock"), {"key": CLEANER_LOCK_KEY})

    async def _clean(self, cur: psycopg.AsyncCursor[dict[str, Any]]) -> CleanerRun:
        cfg = self.config
        run = CleanerRun(ran=True)
        await cur.execute(
            query("cleaner_cutoffs"),
            {
                "delivered_seconds": cfg.retention_days * DAY,
                "dead_seconds": cfg.dead_letter_retention_days * DAY,
            },
        )
        cutoffs = await cur.fetchone()
        assert cutoffs is not None
        await cur.execute(query("maintenance_tenants"))
        tenants = [r["id"] for r in await cur.fetchall()]
        passes = (
            (["delivered"], cutoffs["delivered_before"]),
            (["failed", "dead_lettered"], cutoffs["dead_before"]),
        )
        for tenant_id in tenants:
            for states, before in passes:
                for _ in range(cfg.max_batches):
                    await cur.execute(
                        query("cleaner_delete_deliveries"),
                        {
                            "tenant_id": tenant_id,
                            "states": states,
                            "before": before,
                            "batch": cfg.batch_size,
                        },
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    for key in ("deliveries", "attempts", "lifecycle_events"):
                        run.deleted[key] += int(row[key])
                    if row["deliveries"] < cfg.batch_size:
                        break
            for _ in range(cfg.max_batches):
                await cur.execute(
                    query("cleaner_delete_events"),
                    {
                        "tenant_id": tenant_id,
                        "before": cutoffs["delivered_before"],
                        "batch": cfg.batch_size,
                    },
                )
                row = await cur.fetchone()
                assert row is not None
                run.deleted["events"] += int(row["events"])
                if row["events"] < cfg.batch_size:
                    break
        return run
