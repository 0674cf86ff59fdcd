"""Retention: the cleaner drops whole days of history and deletes what is older than its
keeping time, in small batches.

- `delivered` deliveries that ended more than `retention_days` ago (default 30),
- `failed` and `dead_lettered` ones that ended more than `dead_letter_retention_days`
  ago (default 90: they are the evidence operators replay from),
- with their attempts, and then
- events older than `retention_days` that have no delivery left, and
- destinations' own lifecycle events (`destination.disabled` / `.enabled`) older than
  `dead_letter_retention_days`.

History is partitioned by UTC day (courier.store.history). A day of attempts (the
attempts of the deliveries made that day) is dropped whole once the day ended more than
`retention_days` ago; the attempts of its deliveries that are kept longer (not ended,
failed or dead-lettered within their retention, named by a replay) are copied to the
default partition first. Only then are that day's deliveries deleted, so a delivery may
outlive its retention by up to a day. A day of lifecycle events is dropped whole once it
ended more than the longer of the two retention times ago: lifecycle events are a
stream (the feed) and no longer go row by row with their delivery, except those from
before the conversion to partitions and those in the default partition.

Audit records are kept. A delivery that a remaining replay names (`replay_of`) waits
for that replay to go first. Each batch (`batch_size` rows, default 1,000) is its own
short transaction that skips rows others hold, so the cleaner never blocks the
delivery engine for long. One run at a time (a session advisory lock); a run does at
most `max_batches` batches per tenant and table, and the next run continues.
Its statements are courier.store.retention's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from courier.store import history, retention
from courier.store.maintenance import exclusive_pass

Cursor = psycopg.AsyncCursor[dict[str, Any]]

CLEANER_LOCK_KEY = 7_240_314_161  # pg_try_advisory_lock key of the cleaner
DAY = 86_400.0  # seconds

logger = logging.getLogger("courier.cleaner")


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    retention_days: float = 30.0
    dead_letter_retention_days: float = 90.0
    batch_size: int = 1_000  # rows per statement
    max_batches: int = 1_000  # per tenant and kind of row, per run


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
    dropped: list[str] = field(default_factory=list)  # partitions dropped whole
    kept_attempts: int = 0  # attempts moved to the default partition before a drop


class Cleaner:
    def __init__(self, database_url: str, config: CleanerConfig | None = None) -> None:
        self.database_url = database_url
        self.config = config or CleanerConfig()

    async def run_once(self) -> CleanerRun:
        """One pass over the tenants with anything past its keeping time (found in one
        statement, so many tenants with nothing to remove cost one round trip); returns
        how many rows of each kind it deleted."""
        async with exclusive_pass(self.database_url, CLEANER_LOCK_KEY) as cur:
            return CleanerRun(ran=False) if cur is None else await self._clean(cur)

    async def _clean(self, cur: Cursor) -> CleanerRun:
        cfg = self.config
        run = CleanerRun(ran=True)
        cutoffs = await retention.retention_cutoffs(
            cur, cfg.retention_days * DAY, cfg.dead_letter_retention_days * DAY
        )
        floors = await self._drop_days(cur, cutoffs.delivered_before, cutoffs.dead_before, run)
        # deliveries go only once their day of attempts is gone (history's floor)
        delivered_before = _earlier(cutoffs.delivered_before, floors["delivery_attempts"])
        dead_before = _earlier(cutoffs.dead_before, floors["delivery_attempts"])
        passes = ((["delivered"], delivered_before), (["failed", "dead_lettered"], dead_before))
        due = await retention.tenants_due(
            cur,
            delivered_before=delivered_before,
            dead_before=dead_before,
            events_before=cutoffs.delivered_before,
            destination_events_before=cutoffs.dead_before,
        )
        for tenant_id in due:
            for states, before in passes:
                for _ in range(cfg.max_batches):
                    gone = await retention.delete_deliveries(
                        cur,
                        tenant_id=tenant_id,
                        states=states,
                        before=before,
                        lifecycle_before=floors["lifecycle_events"],
                        batch=cfg.batch_size,
                    )
                    run.deleted["deliveries"] += gone.deliveries
                    run.deleted["attempts"] += gone.attempts
                    run.deleted["lifecycle_events"] += gone.lifecycle_events
                    if gone.deliveries < cfg.batch_size:
                        break
            await self._drain(
                retention.delete_events, cur, tenant_id, cutoffs.delivered_before, run, "events"
            )
            await self._drain(
                retention.delete_destination_events,
                cur,
                tenant_id,
                cutoffs.dead_before,
                run,
                "lifecycle_events",
            )
        return run

    async def _drop_days(
        self,
        cur: Cursor,
        delivered_before: datetime,
        dead_before: datetime,
        run: CleanerRun,
    ) -> dict[str, datetime | None]:
        """Drop the days of history past retention; returns, per table, where its
        oldest remaining day starts (None: no day partitions), below which rows go one
        by one."""
        lifecycle_before = min(delivered_before, dead_before)
        floors: dict[str, datetime | None] = dict.fromkeys(history.HISTORY_TABLES)
        for part in await history.partitions(cur):
            due = part.ends_at <= (
                delivered_before if part.parent == "delivery_attempts" else lifecycle_before
            )
            if due:
                try:
                    if part.parent == "delivery_attempts":
                        run.kept_attempts += await history.drop_attempts_partition(
                            cur, part, delivered_before, dead_before
                        )
                    else:
                        await history.drop_lifecycle_partition(cur, part)
                    run.dropped.append(part.name)
                    continue
                except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                    # a long transaction on the table: the next pass tries again
                    logger.warning("retention: %s is busy; dropping it next pass", part.name)
            if part.starts_at is not None and floors[part.parent] is None:
                floors[part.parent] = part.starts_at
        return floors

    async def _drain(
        self,
        delete: Callable[[Cursor, uuid.UUID, datetime, int], Awaitable[int]],
        cur: Cursor,
        tenant_id: uuid.UUID,
        before: datetime,
        run: CleanerRun,
        counted: str,
    ) -> None:
        """Run a batched delete until a batch comes back short (or max_batches ran)."""
        cfg = self.config
        for _ in range(cfg.max_batches):
            gone = await delete(cur, tenant_id, before, cfg.batch_size)
            run.deleted[counted] += gone
            if gone < cfg.batch_size:
                break


def _earlier(cutoff: datetime, floor: datetime | None) -> datetime:
    return cutoff if floor is None else min(cutoff, floor)
