"""Settings from COURIER_* environment variables, built once in the CLI and passed down."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from courier.nameservers import check_nameserver

ENV_PREFIX = "COURIER_"
# Settings whose values are never echoed in an error (a URL may carry a password).
SECRET_SETTINGS = frozenset({"secret_key", "metrics_token", "database_url", "egress_proxy"})


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str | None = None  # unset: embedded PostgreSQL in data_dir
    # PostgreSQL itself when database_url is a transaction-mode pooler (PgBouncer): LISTEN,
    # migrations and advisory-locked maintenance connect here. Unset: database_url.
    database_direct_url: str | None = None
    data_dir: Path = Path(".courier")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Proxies (comma-separated addresses or CIDRs, `*` for any; empty for none) whose
    # X-Forwarded-Proto and X-Forwarded-For are believed: the scheme decides the session
    # cookie's Secure flag, the address is what the console's sign-in limit counts.
    # Loopback by default, as uvicorn does: a proxy on the same host works unchanged.
    forwarded_allow_ips: str = "127.0.0.1"

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
    dns_servers: str = ""  # comma-separated IP[:port] the worker asks; empty: resolv.conf
    # http://host:port: every webhook and ticketing connection is a CONNECT tunnel through
    # this proxy (broker kinds connect directly)
    egress_proxy: str | None = None

    # largest API request body accepted (bytes); larger answers 413
    max_payload_bytes: int = Field(default=262_144, ge=1024, le=64 * 1024 * 1024)
    # largest POST /v1/events/batch body (bytes); each payload in it is still held to
    # max_payload_bytes
    max_batch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    # Seconds an API process answers for a key it found live without asking the database
    # again. A revocation reaches every process at once through NOTIFY; this bounds how
    # long a missed one (the LISTEN connection down) can go unnoticed. 0: no cache.
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # `courier serve` processes sharing the listen socket; unset: one per usable core
    # (at most 8)
    serve_workers: int | None = Field(default=None, ge=1, le=64)

    # Server-Sent Event streams one tenant may hold open per API process; more answer 429
    max_streams_per_tenant: int = Field(default=8, ge=1, le=10_000)

    # failed console sign-ins allowed per minute from one client address, and against one
    # tenant's keys; more answer 429 with Retry-After
    console_sign_in_failures_per_minute: int = Field(default=10, ge=1, le=10_000)

    # Who may frame the console: the CSP `frame-ancestors` sources (e.g.
    # `https://platform.example`). Anything but `'none'` lets another site embed it: the
    # session cookie becomes SameSite=None; Secure (CSRF tokens guard every form).
    console_frame_ancestors: str = Field(default="'none'", min_length=1, max_length=2000)

    log_format: Literal["json", "human"] = "json"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"

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

    @field_validator("console_frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or any(ch in value for ch in ';,"') or not value.isascii():
            raise ValueError(
                "console_frame_ancestors: space-separated CSP sources, e.g. "
                "'https://platform.example' (no `;`, `,` or quotes other than 'self'/'none')"
            )
        return value

    @property
    def console_embedded(self) -> bool:
        """Whether another site may embed the console in a frame."""
        return self.console_frame_ancestors != "'none'"

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if not entry or entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {entry!r} is not an IP address or network"
                ) from None
        return value

    @field_validator("egress_proxy")
    @classmethod
    def _egress_proxy(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        from courier.adapters.http1 import Proxy  # the HTTP client only where used

        Proxy.parse(value)  # its ValueError says what is wrong
        return value.strip()

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        """A connection string libpq can parse; its parser's message would echo the URL."""
        if not value:
            return value
        from psycopg.conninfo import conninfo_to_dict

        scheme, sep, _ = value.partition("://")
        if sep and scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"not a PostgreSQL URL (scheme {scheme[:20]!r}; expected "
                "postgresql://USER:PASSWORD@HOST:PORT/DBNAME)"
            )
        try:
            conninfo_to_dict(value)
        except Exception:
            raise ValueError(
                "not a PostgreSQL connection string "
                "(expected postgresql://USER:PASSWORD@HOST:PORT/DBNAME)"
            ) from None
        return value

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

    def dns_server_list(self) -> list[str]:
        """The configured DNS servers; ValueError naming the variable if one is malformed."""
        try:
            return [check_nameserver(n) for n in self.dns_servers.split(",") if n.strip()]
        except ValueError as exc:
            raise ValueError(f"COURIER_DNS_SERVERS: {exc}") from None


def _reason(error: Any) -> str:
    """What is wrong with one value, in the words an operator would use."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "not an integer"
    if kind in ("float_parsing", "float_type"):
        return "not a number"
    if kind in ("bool_parsing", "bool_type"):
        return "not a boolean (true or false)"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("greater than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds and bounds[kind][1] in ctx:
        words, key = bounds[kind]
        bound = ctx[key]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # `greater than 0`, not `0.0`
        return f"must be {words} {bound}"
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected'].replace(' or ', ', ')}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    message = str(error.get("msg") or kind)
    return message[:1].lower() + message[1:]


def describe_invalid(exc: ValidationError, flags: dict[str, str] | None = None) -> list[str]:
    """One line per invalid setting, naming its variable (or flag) and the reason.

    `flags` maps a field set from the command line to its flag (`port` -> `--port`).
    A secret setting's value is never repeated.
    """
    lines: list[str] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = (flags or {}).get(field) or f"{ENV_PREFIX}{field.upper()}"
        shown = "" if field in SECRET_SETTINGS else f"={str(error.get('input'))[:80]!r}"
        lines.append(f"invalid setting {name}{shown}: {_reason(error)}")
    return lines
