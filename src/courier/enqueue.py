"""Enqueue an event inside the caller's transaction (the transactional outbox).

    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("INSERT INTO orders ...")
        enqueue_event(conn, tenant_id, "order.created", {"id": 42})

The event and its fan-out deliveries commit or roll back with the caller's own rows.
Workers are woken by a NOTIFY that PostgreSQL delivers only on commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from courier.store.queries import query

NOTIFY_CHANNEL = "courier_deliveries"


@dataclass(frozen=True, slots=True)
class EnqueuedDelivery:
    id: uuid.UUID
    destination_id: uuid.UUID
    state: str


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    event_id: uuid.UUID
    created_at: datetime
    created: bool  # False: the idempotency key was seen before and nothing was written
    deliveries: list[EnqueuedDelivery] = field(default_factory=list)


def _params(
    tenant_id: uuid.UUID | str, event_type: str, payload: Any, idempotency_key: str | None
) -> dict[str, Any]:
    body = payload if isinstance(payload, bytes | bytearray) else orjson.dumps(payload)
    return {
        "tenant_id": uuid.UUID(str(tenant_id)),
        "type": event_type,
        "payload": bytes(body).decode("utf-8"),
        "idempotency_key": idempotency_key,
    }


def _result(rows: Sequence[dict[str, Any]], created: bool) -> EnqueueResult:
    first = rows[0]
    return EnqueueResult(
        event_id=first["event_id"],
        created_at=first["created_at"],
        created=created,
        deliveries=[
            EnqueuedDelivery(r["delivery_id"], r["destination_id"], r["state"])
            for r in rows
            if r["delivery_id"] is not None
        ],
    )


def enqueue_event(
    conn: psycopg.Connection[Any],
    tenant_id: uuid.UUID | str,
    event_type: str,
    payload: Any,
    idempotency_key: str | None = None,
) -> EnqueueResult:
    """Write an event and its deliveries on `conn`, in whatever transaction it is in."""
    params = _params(tenant_id, event_type, payload, idempotency_key)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("enqueue_event"), params).fetchall()
        if rows:
            return _result(rows, created=True)
        rows = cur.execute(query("event_by_idempotency_key"), params).fetchall()
        if not rows:  # the competing writer rolled back; try once more as the first
            rows = cur.execute(query("enqueue_event"), params).fetchall()
            return _result(rows, created=True)
        return _result(rows, created=False)


async def enqueue_event_async(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: uuid.UUID | str,
    event_type: str,
    payload: Any,
    idempotency_key: str | None = None,
) -> EnqueueResult:
    """The same as enqueue_event, on an asyncio connection."""
    params = _params(tenant_id, event_type, payload, idempotency_key)
    async with conn.cursor(row_factory=dict_row) as cur:
        rows = await (await cur.execute(query("enqueue_event"), params)).fetchall()
        if rows:
            return _result(rows, created=True)
        rows = await (await cur.execute(query("event_by_idempotency_key"), params)).fetchall()
        if not rows:
            rows = await (await cur.execute(query("enqueue_event"), params)).fetchall()
            return _result(rows, created=True)
        return _result(rows, created=False)
