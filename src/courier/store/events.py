"""Events written outside the fan-out: the test send (statements in `sql/events.sql`)."""

from __future__ import annotations

import uuid
from typing import Any

from courier.store.rows import AsyncConn, Row, fetch_one


async def insert_test_event(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    *,
    actor: str,
    event_type: str,
    payload: str,
) -> Row | None:
    """A test event with one delivery to this destination, its audit record and the NOTIFY;
    None when there is no such destination, a null `delivery_id` when it is disabled."""
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "actor": actor,
        "type": event_type,
        "payload": payload,
    }
    return await fetch_one(conn, "send_test_event", params)
