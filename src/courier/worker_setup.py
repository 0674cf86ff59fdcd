"""A worker built from Settings: the one place that turns configuration into the worker's
plain config objects (WorkerConfig, CleanerConfig, HealthConfig) and its adapters, so
worker/ and store/ never read Settings themselves."""

from __future__ import annotations

import uuid

import psycopg

from courier.adapters.router import KindRouter
from courier.adapters.webhook import WebhookAdapter
from courier.crypto import SecretBox
from courier.metrics import CourierMetrics
from courier.settings import Settings
from courier.store.database import unreachable
from courier.store.pooler import direct_url
from courier.tenancy import resolve_tenants
from courier.worker import runner
from courier.worker.cleaner import Cleaner, CleanerConfig
from courier.worker.health import HealthConfig, HealthService
from courier.worker.maintenance import Service
from courier.worker.partitions import HistoryPartitions
from courier.worker.runner import WorkerConfigError
from courier.worker.worker import Worker, WorkerConfig


def cleaner_config(settings: Settings) -> CleanerConfig:
    return CleanerConfig(
        retention_days=settings.retention_days,
        dead_letter_retention_days=settings.dead_letter_retention_days,
    )


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
        Cleaner(direct, cleaner_config(settings)),
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


def run_worker(settings: Settings, database_url: str) -> None:
    """Build, check the secret key against the database, and run until signalled."""
    worker = build_worker(settings, database_url)
    tenant_ids = worker.config.tenant_ids
    runner.verify_secret_key(
        database_url, worker.secret_box, None if tenant_ids is None else list(tenant_ids)
    )
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    runner.run(worker, metrics_port=settings.worker_metrics_port, metrics_token=token)
