"""Runs a built worker: signals, uvloop, the collector's tuning, and the start-up check of
the secret key (one clear line when it opens nothing). Building a worker from Settings
is courier.worker_setup's: nothing in worker/ reads Settings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import uuid

import psycopg

from courier.crypto import SecretBox, SecretKeyError
from courier.errors import CourierError
from courier.keycheck import check_secret_key
from courier.store.database import check_reachable, unreachable
from courier.worker.metrics_server import serving_metrics
from courier.worker.worker import Worker

logger = logging.getLogger("courier.worker")


# How long a starting worker waits for a database that is starting, restarting or not yet
# listening (a wrong URL, role or password fails at once).
START_WAIT_S = 60.0


class WorkerConfigError(CourierError, ValueError):
    pass


async def run_until_signalled(
    worker: Worker,
    stop: asyncio.Event | None = None,
    *,
    metrics_port: int | None = None,
    metrics_token: str | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    logger.info(
        "worker %s started: concurrency %d, batch %d, tenants %s",
        worker.config.worker_id,
        worker.config.concurrency,
        worker.config.batch_size,
        "all" if worker.config.tenant_ids is None else len(worker.config.tenant_ids),
    )
    async with serving_metrics(
        worker.metrics,
        database_url=worker.config.database_url,
        port=metrics_port,
        token=metrics_token,
        dead_loops=worker.dead_loops,
    ):
        await worker.run(stop)
    logger.info("worker %s stopped", worker.config.worker_id)


GC_THRESHOLDS = (50_000, 50, 100)  # allocations before a young collection; then 50, 100


def _tune_gc() -> None:
    """Collect less often than CPython's default (every 700 allocations).

    A busy worker allocates a few hundred short-lived objects per delivery (tasks,
    futures, requests, rows), so the default spends about a fifth of the worker's CPU
    per delivery in the collector (measured side by side, docs/benchmarks.md), though
    almost none of it is cyclic garbage. What exists at start (modules, settings) is
    frozen out of every collection. Cycles are still collected, only in larger, rarer
    passes: resident memory did not change measurably.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def verify_secret_key(
    database_url: str, box: SecretBox, tenant_ids: list[uuid.UUID] | None
) -> None:
    """Refuse to start (WorkerConfigError, one line) when the key opens no secret it must."""
    check_reachable(database_url, START_WAIT_S)  # the server may be restarting right now
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            check_secret_key(conn, box, tenant_ids)
    except psycopg.OperationalError as exc:
        raise unreachable(database_url, exc) from None
    except SecretKeyError as exc:
        raise WorkerConfigError(str(exc)) from None


def run(worker: Worker, *, metrics_port: int | None, metrics_token: str | None) -> None:
    """Run a built worker in this process until SIGTERM or SIGINT, on uvloop when present."""
    main = run_until_signalled(worker, metrics_port=metrics_port, metrics_token=metrics_token)
    _tune_gc()
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        asyncio.run(main)
