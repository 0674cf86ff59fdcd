"""Group commit of finished attempts, in the manner of River's batch completer.

Delivery tasks hand their results here and move on; this writes them in one fenced
statement once `batch_target` have gathered or the oldest has waited `interval_s`,
whichever comes first: a statement's fixed cost is far above a row's, so a trickle of
results (a slow receiver) is not written one row per statement. A database error keeps
the batch and retries it: completion is fenced on (worker, attempt), so a batch
that did commit before the error was seen matches nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from courier.store.deliveries import Completed, Completion, complete_attempts

logger = logging.getLogger("courier.worker")

MAX_BATCH = 1000  # completions per statement


class Completer:
    def __init__(
        self,
        *,
        worker_id: str,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        interval_s: float,
        max_pending: int,
        batch_target: int = 64,
        on_committed: Callable[[list[Completion], list[Completed]], None],
        on_db_error: Callable[[BaseException], Awaitable[None]],
        pooled: bool = False,
    ) -> None:
        self._worker_id = worker_id
        self._pooled = pooled
        self._connect = connect
        self._interval_s = interval_s
        self._pending: list[Completion] = []
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()  # batch_target results are waiting
        self._batch_target = max(1, min(batch_target, MAX_BATCH))
        self._space = asyncio.Condition()
        self._max_pending = max_pending
        self._on_committed = on_committed
        self._on_db_error = on_db_error
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def submit(self, completion: Completion) -> None:
        """Queue a result; waits (backpressure) while too many are unwritten."""
        if len(self._pending) >= self._max_pending:
            async with self._space:
                await self._space.wait_for(lambda: len(self._pending) < self._max_pending)
        self._pending.append(completion)
        self._has_items.set()
        if len(self._pending) >= self._batch_target:
            self._full.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until stopped and nothing is left to write."""
        while True:
            if not self._pending:
                if stop.is_set():
                    break
                self._has_items.clear()
                waiter = asyncio.ensure_future(self._has_items.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            if self._interval_s > 0 and len(self._pending) < self._batch_target:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval_s):
                        await self._full.wait()
            await self._flush_once(stop)
        await self.close()

    async def _flush_once(self, stop: asyncio.Event) -> None:
        batch = self._pending[:MAX_BATCH]
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await self._connect()
            written = await complete_attempts(
                self._conn, worker_id=self._worker_id, completions=batch, pooled=self._pooled
            )
        except (psycopg.Error, OSError) as exc:
            await self._drop_connection()
            await self._on_db_error(exc)
            return
        del self._pending[: len(batch)]
        async with self._space:
            self._space.notify_all()
        self._on_committed(batch, written)

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:  # already broken; nothing more to learn from it
                logger.debug("closing a broken completion connection failed", exc_info=True)

    async def close(self) -> None:
        await self._drop_connection()
