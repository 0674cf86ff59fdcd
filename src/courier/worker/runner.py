"""Builds and runs a worker from Settings: signals, uvloop, one clear line on bad config."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import uuid

import psycopg

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox, SecretKeyError
from courier.errors import CourierError
from courier.keycheck import check_secret_key
from courier.metrics import CourierMetrics
from courier.settings import Settings
from courier.store.database import check_reachable, unreachable
from courier.store.pooler import direct_url
from courier.tenancy import resolve_tenants
from courier.worker.cleaner import Cleaner, CleanerConfig
from courier.worker.health import HealthConfig, HealthService
from courier.worker.maintenance import Service
from courier.worker.metrics_server import serving_metrics
from courier.worker.partitions import HistoryPartitions
from courier.worker.worker import Worker, WorkerConfig

logger = logging.getLogger("courier.worker")


# How long a starting worker waits for a database that is starting, restarting or not yet
# listening (a wrong URL, role or password fails at once).
START_WAIT_S = 60.0


class WorkerConfigError(CourierError, ValueError):
    pass


def build_config(settings: Settings, database_url: str) -> WorkerConfig:
    refs = settings.worker_tenant_refs()  # raises a clear ValueError when unset
    tenant_ids: list[uuid.UUID] | None = None
    if refs is not None:
        try:
            with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
                tenant_ids = resolve_tenants(conn, refs)
        except psycopg.OperationalError as exc:
            raise unreachable(database_url, exc) from None
    return WorkerConfig(
        database_url=database_url,
        direct_url=direct_url(settings, database_url),
        worker_id=settings.worker_id,
        tenant_ids=tenant_ids,
        concurrency=settings.worker_concurrency,
        batch_size=settings.worker_batch_size,
        poll_interval_s=settings.worker_poll_interval,
        lease_seconds=settings.worker_lease_seconds,
        shutdown_grace_s=settings.worker_shutdown_grace_seconds,
        completion_interval_s=settings.worker_completion_interval_ms / 1000,
    )


def build_worker(
    settings: Settings, database_url: str, metrics: CourierMetrics | None = None
) -> Worker:
    if settings.secret_key is None:
        raise WorkerConfigError(
            "COURIER_SECRET_KEY is not set: the worker needs it to decrypt signing secrets"
        )
    config = build_config(settings, database_url)
    webhook = WebhookAdapter(
        allow_private=settings.allow_private_destinations,
        allowed_networks=settings.allowed_network_list(),
        dns_servers=settings.dns_server_list(),
        egress_proxy=settings.egress_proxy,
    )
    adapter = KindRouter(
        webhook,
        allow_private=settings.allow_private_destinations,
        allowed_networks=settings.allowed_network_list(),
        dns_servers=settings.dns_server_list(),
        database_url=database_url,
        pooled=config.pooled,
        egress_proxy=settings.egress_proxy,
    )
    # History partitions, retention and destination health run on a ticker in every
    # worker; each pass takes an advisory lock, so many workers still run one pass at a
    # time. The lock is a
    # session's and spans many transactions: the passes connect past any pooler.
    direct = direct_url(settings, database_url)
    maintenance: list[Service] = [
        HistoryPartitions(direct),
        Cleaner(direct, CleanerConfig.from_settings(settings)),
        HealthService(direct, HealthConfig.from_settings(settings)),
    ]
    return Worker(
        config,
        adapter,
        SecretBox(settings.secret_key.get_secret_value()),
        metrics,
        maintenance=maintenance,
        maintenance_interval_s=settings.maintenance_interval_seconds,
    )


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


def run_worker(settings: Settings, database_url: str) -> None:
    worker = build_worker(settings, database_url)
    tenant_ids = worker.config.tenant_ids
    verify_secret_key(
        database_url, worker.secret_box, None if tenant_ids is None else list(tenant_ids)
    )
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    main = run_until_signalled(
        worker, metrics_port=settings.worker_metrics_port, metrics_token=token
    )
    _tune_gc()
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        asyncio.run(main)
