"""Runs the maintenance services (retention cleaner, destination health) on a ticker
inside each worker. Each service takes its own advisory lock in run_once(), so however
many workers run, one pass of each happens at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Sequence
from typing import Protocol

import psycopg

logger = logging.getLogger("courier.maintenance")

FIRST_RUN_DELAY_S = 5.0  # let a starting worker settle before its first pass


class Service(Protocol):
    def run_once(self) -> Awaitable[object]: ...


async def run_maintenance(
    services: Sequence[Service], interval_s: float, stop: asyncio.Event
) -> None:
    """Call each service's run_once() every `interval_s` (jittered) until `stop`."""
    delay = min(FIRST_RUN_DELAY_S, interval_s)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        for service in services:
            try:
                result = await service.run_once()
                logger.debug("maintenance %s: %s", type(service).__name__, result)
            except (psycopg.Error, OSError) as exc:
                # The next tick tries again; a database outage is the worker's to report.
                logger.warning(
                    "maintenance %s failed (%s); retrying next tick",
                    type(service).__name__,
                    type(exc).__name__,
                )
        delay = interval_s * (0.9 + 0.2 * random.random())
