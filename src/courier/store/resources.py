"""What the HTTP API reads and writes, tenant by tenant (statements grouped by
noun: `sql/delivery_reads.sql`, `sql/destinations.sql`, `sql/events.sql`, `sql/audit.sql`).

Every function takes the tenant id and passes it to its statement; none can reach
another tenant's rows. Lists return up to `limit + 1` rows: the caller pages with them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from courier.store import tickets
from courier.store.rows import AsyncConn, Row, fetch_all, fetch_one

__all__ = ["AsyncConn", "Row"]


async def list_destinations(
    conn: AsyncConn, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Row]:
    params = {"tenant_id": tenant_id, "after": after, "limit": limit + 1}
    return await fetch_all(conn, "api_list_destinations", params)


async def get_destination(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID
) -> Row | None:
    return await fetch_one(
        conn, "api_get_destination", {"tenant_id": tenant_id, "id": destination_id}
    )


async def create_destination(
    conn: AsyncConn, tenant_id: uuid.UUID, actor: str, fields: dict[str, Any]
) -> Row:
    """`fields` holds every column of the insert, `signing_secrets` already encrypted."""
    row = await fetch_one(
        conn, "api_create_destination", {**fields, "tenant_id": tenant_id, "actor": actor}
    )
    assert row is not None
    return row


async def lock_destination(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID
) -> Row | None:
    """The live row, locked for update (call inside a transaction)."""
    return await fetch_one(
        conn, "api_lock_destination", {"tenant_id": tenant_id, "id": destination_id}
    )


async def update_destination(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    actor: str,
    merged: Row,
    changed: list[str],
) -> Row | None:
    params = {
        key: merged[key]
        for key in (
            "name",
            "url",
            "enabled",
            "event_types",
            "max_attempts",
            "max_age_seconds",
            "timeout_ms",
            "backoff_initial_ms",
            "backoff_max_ms",
            "max_in_flight",
            "ordering",
            "rate_limit_per_second",
            "kind",
            "config",
            "config_secrets",
            "filter",
            "options",
            "option_secrets",
            "payload_format",
            "capture_response_body",
        )
    }
    params.update(tenant_id=tenant_id, id=destination_id, actor=actor, changed=changed)
    return await fetch_one(conn, "api_update_destination", params)


async def delete_destination(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID, actor: str
) -> bool:
    params = {"tenant_id": tenant_id, "id": destination_id, "actor": actor}
    return await fetch_one(conn, "api_delete_destination", params) is not None


async def read_destination_secrets(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID, actor: str
) -> list[dict[str, Any]] | None:
    """The stored (encrypted) secret entries, newest first; None when there is no such row."""
    params = {"tenant_id": tenant_id, "id": destination_id, "actor": actor}
    row = await fetch_one(conn, "api_destination_secrets_read", params)
    if row is None:
        return None
    entries: list[dict[str, Any]] = row["signing_secrets"]
    return entries


async def rotate_destination_secret(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    actor: str,
    signing_secrets: Any,
    *,
    grace_period_seconds: int,
    previous_expires_at: datetime | None,
) -> bool:
    """Store the rotated entries (already encrypted) of a row the caller locked."""
    params = {
        "tenant_id": tenant_id,
        "id": destination_id,
        "actor": actor,
        "signing_secrets": signing_secrets,
        "grace_period_seconds": grace_period_seconds,
        "previous_expires_at": previous_expires_at,
    }
    return await fetch_one(conn, "api_rotate_destination_secret", params) is not None


async def list_deliveries(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    *,
    state: str | None,
    destination_id: uuid.UUID | None,
    event_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    params = {
        "tenant_id": tenant_id,
        "state": state,
        "destination_id": destination_id,
        "event_id": event_id,
        "after": after,
        "limit": limit + 1,
    }
    return await fetch_all(conn, "api_list_deliveries", params)


async def get_delivery(conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> Row | None:
    return await fetch_one(conn, "api_get_delivery", {"tenant_id": tenant_id, "id": delivery_id})


async def get_delivery_ticket(
    conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> Row | None:
    """The ticket a ticketing delivery wrote to, or None."""
    return await tickets.ticket_of_delivery(conn, tenant_id, delivery_id)


async def list_attempts(
    conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID, *, after: int, limit: int
) -> list[Row]:
    params = {
        "tenant_id": tenant_id,
        "delivery_id": delivery_id,
        "after": after,
        "limit": limit + 1,
    }
    return await fetch_all(conn, "api_list_attempts", params)


async def list_audit_records(
    conn: AsyncConn, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Row]:
    params = {"tenant_id": tenant_id, "after": after, "limit": limit + 1}
    return await fetch_all(conn, "api_list_audit_records", params)


async def get_event(conn: AsyncConn, tenant_id: uuid.UUID, event_id: uuid.UUID) -> Row | None:
    return await fetch_one(conn, "api_get_event", {"tenant_id": tenant_id, "id": event_id})


async def list_events(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    *,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    params = {
        "tenant_id": tenant_id,
        "type": event_type,
        "since": since,
        "until": until,
        "after": after,
        "limit": limit + 1,
    }
    return await fetch_all(conn, "api_list_events", params)
