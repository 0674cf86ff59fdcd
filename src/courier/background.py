"""A loop that runs beside other work for as long as a block lasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

STOP_TIMEOUT_S = 10.0  # seconds a loop gets to finish once asked to stop


@contextlib.asynccontextmanager
async def running(
    loop: Callable[[asyncio.Event], Awaitable[None]], name: str
) -> AsyncIterator[asyncio.Task[None]]:
    """Start `loop(stop)` as a task; at the end of the block set `stop` and wait for it
    (bounded), so a stuck loop cannot hold up a shutdown."""
    stop = asyncio.Event()
    task = asyncio.create_task(_run(loop, stop), name=name)
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)


async def _run(loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
    await loop(stop)
