"""QueueStatsCollector: refreshes the queue gauges from one periodic query.

`courier_queue_depth{state}` and `courier_oldest_due_seconds` describe the whole queue
(every tenant), so one small service per process reads them every few seconds and a
scrape only reads the gauges: a scrape never touches the database, and many scrapers or
tenants cost nothing more. The API runs one; a worker runs one when it serves metrics.
Every process reports the same global numbers, so dashboards take `max`, not `sum`.

Shaped like the other maintenance services: a config with defaults, a ticker loop, and
`run_once()`, which tests call directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from courier.metrics import CourierMetrics
from courier.redact import summarize
from courier.store.pooler import local_settings
from courier.store.stats import QueueStats, read_queue_stats

logger = logging.getLogger("courier.metrics")

QUEUE_STATS_INTERVAL_S = 10.0  # seconds between refreshes
STATEMENT_TIMEOUT_MS = 5_000  # the stats query gives up rather than pile up


@dataclass(frozen=True, slots=True)
class QueueStatsConfig:
    database_url: str
    interval_s: float = QUEUE_STATS_INTERVAL_S


class QueueStatsCollector:
    def __init__(self, config: QueueStatsConfig, metrics: CourierMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # One refresh at a time: the ticker's and a direct call (start-up, tests) share
        # the connection, and its per-transaction settings are sent as one pipeline.
        self._lock = asyncio.Lock()

    async def run_once(self) -> QueueStats:
        """Read the queue once and set the gauges; returns what it read."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> QueueStats:
        if self._conn is None or self._conn.closed:
            # Nothing kept in the session, so the URL may be a transaction-mode pooler's:
            # no prepared statement (one query every few seconds gains nothing from one)
            # and the timeout set per transaction rather than in the startup packet.
            self._conn = await psycopg.AsyncConnection.connect(
                self.config.database_url,
                autocommit=True,
                application_name="courier-queue-stats",
                prepare_threshold=None,
            )
        try:
            async with local_settings(
                self._conn, [("statement_timeout", str(STATEMENT_TIMEOUT_MS))]
            ):
                stats = await read_queue_stats(self._conn)
        except (psycopg.Error, OSError):
            await self.close()
            raise
        for state, depth in stats.depth().items():
            self.metrics.queue_depth.labels(state).set(depth)
        self.metrics.oldest_due_seconds.set(stats.oldest_due_seconds)
        return stats

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until stopped; a failed refresh keeps the last values and logs one line."""
        try:
            while not stop.is_set():
                try:
                    await self.run_once()
                except (psycopg.Error, OSError) as exc:
                    logger.warning(
                        "queue stats refresh failed (%s: %s)",
                        type(exc).__name__,
                        summarize(str(exc).strip().splitlines()[0] if str(exc).strip() else ""),
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
