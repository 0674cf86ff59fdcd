"""Settings from COURIER_* environment variables, built once in the CLI and passed down."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COURIER_", extra="ignore")

    database_url: str | None = None  # unset: embedded PostgreSQL in data_dir
    data_dir: Path = Path(".courier")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    worker_tenants: str | None = None  # comma-separated ids or names; "*" for all
    worker_concurrency: int = Field(default=64, ge=1, le=10_000)  # deliveries in flight
    worker_batch_size: int = Field(default=64, ge=1, le=10_000)  # rows per claim
    worker_poll_interval: float = Field(default=1.0, gt=0, le=3600)  # seconds
    worker_lease_seconds: float = Field(default=60.0, ge=1, le=86_400)
    worker_id: str = Field(default_factory=default_worker_id)
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    worker_completion_interval_ms: float = Field(default=20.0, ge=0, le=1000)

    secret_key: SecretStr | None = None  # comma-separated; the first one encrypts
    allow_private_destinations: bool = False
    allowed_networks: str = ""  # comma-separated CIDRs admitted despite the SSRF guard

    # largest API request body accepted (bytes); larger answers 413
    max_payload_bytes: int = Field(default=262_144, ge=1024, le=64 * 1024 * 1024)

    log_format: str = Field(default="json", pattern="^(json|human)$")

    # Observability: `/metrics` asks for `Authorization: Bearer <token>` when this is set;
    # a worker serves its own `/metrics` on this port when set (unset: no metrics server).
    metrics_token: SecretStr | None = None
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)

    # Operations (docs/operations.md): destination health and retention.
    # disable a destination whose every attempt failed this long (with a dead letter)
    auto_disable_after_seconds: float = Field(default=432_000.0, gt=0)  # 5 days
    # disable a destination that answered only 410 Gone this long
    gone_confirm_seconds: float = Field(default=86_400.0, gt=0)  # 1 day
    retention_days: float = Field(default=30.0, gt=0)  # delivered deliveries kept
    dead_letter_retention_days: float = Field(default=90.0, gt=0)  # failed / dead-lettered
    # seconds between the worker's maintenance passes (retention, destination health); 0: off
    maintenance_interval_seconds: float = Field(default=300.0, ge=0)

    def worker_tenant_refs(self) -> list[str] | None:
        """The tenants a worker serves; None means all (written out as `*`)."""
        if not self.worker_tenants or not self.worker_tenants.strip():
            raise ValueError(
                "COURIER_WORKER_TENANTS is not set: list the tenant ids or names this worker "
                "serves (comma-separated), or `*` for all tenants"
            )
        refs = [r.strip() for r in self.worker_tenants.split(",") if r.strip()]
        if "*" in refs:
            return None
        return refs

    def allowed_network_list(self) -> list[str]:
        return [n.strip() for n in self.allowed_networks.split(",") if n.strip()]
