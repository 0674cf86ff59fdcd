"""Ticketing destinations' state (statements in `sql/tickets.sql`): which ticket each
correlation key opened, and which ticket each delivery wrote to.

`lock_key` serializes the deliveries of one key for the length of the caller's
transaction; the caller finds or opens the ticket inside it and saves the link before
committing.
"""

from __future__ import annotations

import uuid

from courier.store.rows import AsyncConn, Row, execute, fetch_one

__all__ = ["AsyncConn", "Row"]


def _key(tenant_id: uuid.UUID, destination_id: uuid.UUID, key: str) -> dict[str, object]:
    return {"tenant_id": tenant_id, "destination_id": destination_id, "key": key}


async def lock_key(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID, key: str
) -> None:
    await fetch_one(conn, "ticket_lock_key", _key(tenant_id, destination_id, key))


async def find_link(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID, key: str
) -> Row | None:
    return await fetch_one(conn, "ticket_find_link", _key(tenant_id, destination_id, key))


async def save_link(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    key: str,
    *,
    ticket_id: str,
    ticket_url: str,
    event_id: uuid.UUID | None,
) -> None:
    params = {
        **_key(tenant_id, destination_id, key),
        "ticket_id": ticket_id,
        "ticket_url": ticket_url,
        "event_id": event_id,
    }
    await execute(conn, "ticket_save_link", params)


async def mark_closed(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID, key: str
) -> None:
    await execute(conn, "ticket_mark_closed", _key(tenant_id, destination_id, key))


async def record_delivery(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    ticket_id: str,
    ticket_url: str,
    action: str,
) -> None:
    params = {
        "tenant_id": tenant_id,
        "delivery_id": delivery_id,
        "ticket_id": ticket_id,
        "ticket_url": ticket_url,
        "action": action,
    }
    await execute(conn, "ticket_record_delivery", params)


async def ticket_of_delivery(
    conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> Row | None:
    return await fetch_one(
        conn, "ticket_of_delivery", {"tenant_id": tenant_id, "delivery_id": delivery_id}
    )
