"""Destinations: create with a fresh signing secret (encrypted at rest), enable, delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from courier.crypto import SecretBox
from courier.signing import generate_secret
from courier.store.queries import query
from courier.store.rows import fetch_one_sync


def secret_entry(box: SecretBox, secret: str, expires_at: datetime | None = None) -> dict[str, Any]:
    return {
        "token": box.encrypt(secret),
        "created_at": datetime.now(UTC).isoformat(),
        "expires_at": expires_at.isoformat() if expires_at else None,
    }


def create_destination(
    conn: psycopg.Connection[Any],
    box: SecretBox,
    tenant_id: uuid.UUID,
    *,
    name: str,
    url: str,
    enabled: bool = True,
    event_types: Sequence[str] = (),
    max_attempts: int = 8,
    max_age_seconds: int = 259_200,
    timeout_ms: int = 10_000,
    backoff_initial_ms: int = 5_000,
    backoff_max_ms: int = 36_000_000,
    max_in_flight: int = 16,
    ordering: str = "unordered",
    rate_limit_per_second: float | None = None,
    secret: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Returns the stored row and the plaintext signing secret (shown to the caller once)."""
    secret = secret or generate_secret()
    params = {
        "tenant_id": tenant_id,
        "name": name,
        "url": url,
        "enabled": enabled,
        "event_types": list(event_types),
        "max_attempts": max_attempts,
        "max_age_seconds": max_age_seconds,
        "timeout_ms": timeout_ms,
        "backoff_initial_ms": backoff_initial_ms,
        "backoff_max_ms": backoff_max_ms,
        "max_in_flight": max_in_flight,
        "ordering": ordering,
        "rate_limit_per_second": rate_limit_per_second,
        "signing_secrets": Jsonb([secret_entry(box, secret)], dumps=_dumps),
        "actor": None,  # no audit record (the API's create writes one)
    }
    row = fetch_one_sync(conn, "api_create_destination", params)
    assert row is not None
    return row, secret


def set_enabled(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, destination_id: uuid.UUID, enabled: bool
) -> bool:
    params = {"tenant_id": tenant_id, "id": destination_id, "enabled": enabled}
    return conn.execute(query("set_destination_enabled"), params).fetchone() is not None


def soft_delete(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, destination_id: uuid.UUID
) -> bool:
    params = {"tenant_id": tenant_id, "id": destination_id}
    return conn.execute(query("soft_delete_destination"), params).fetchone() is not None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")
