"""Retention's statements: where kept history ends, and the batched deletes of what is
older, one tenant and one short batch at a time (the policy: courier.worker.cleaner)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from courier.store.queries import query

Cursor = psycopg.AsyncCursor[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    delivered_before: datetime  # delivered deliveries that ended before this go
    dead_before: datetime  # failed and dead-lettered ones that ended before this go


@dataclass(frozen=True, slots=True)
class DeletedDeliveries:
    deliveries: int
    attempts: int
    lifecycle_events: int


async def retention_cutoffs(cur: Cursor, delivered_seconds: float, dead_seconds: float) -> Cutoffs:
    """The database clock's now, less each keeping time (seconds)."""
    await cur.execute(
        query("retention_cutoffs"),
        {"delivered_seconds": delivered_seconds, "dead_seconds": dead_seconds},
    )
    row = await cur.fetchone()
    assert row is not None
    return Cutoffs(delivered_before=row["delivered_before"], dead_before=row["dead_before"])


async def tenants_due(
    cur: Cursor,
    *,
    delivered_before: datetime,
    dead_before: datetime,
    events_before: datetime,
    destination_events_before: datetime,
) -> list[uuid.UUID]:
    """The tenants with anything the batched deletes would remove at these cutoffs
    (delivered and failed/dead-lettered deliveries, events left without a delivery,
    destination lifecycle events), in one statement."""
    await cur.execute(
        query("retention_tenants_due"),
        {
            "delivered_before": delivered_before,
            "dead_before": dead_before,
            "events_before": events_before,
            "destination_events_before": destination_events_before,
        },
    )
    return [row["id"] for row in await cur.fetchall()]


async def delete_deliveries(
    cur: Cursor,
    *,
    tenant_id: uuid.UUID,
    states: Sequence[str],
    before: datetime,
    lifecycle_before: datetime | None,
    batch: int,
) -> DeletedDeliveries:
    """One batch: up to `batch` of the tenant's deliveries in `states` that ended before
    `before` and that no replay names, with their attempts, and their lifecycle events
    from before `lifecycle_before` (None: all of them)."""
    await cur.execute(
        query("retention_delete_deliveries"),
        {
            "tenant_id": tenant_id,
            "states": list(states),
            "before": before,
            "lifecycle_before": lifecycle_before,
            "batch": batch,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return DeletedDeliveries(
        deliveries=int(row["deliveries"]),
        attempts=int(row["attempts"]),
        lifecycle_events=int(row["lifecycle_events"]),
    )


async def delete_events(cur: Cursor, tenant_id: uuid.UUID, before: datetime, batch: int) -> int:
    """One batch of the tenant's events from before `before` with no delivery left;
    returns how many went."""
    return await _count(cur, "retention_delete_events", "events", tenant_id, before, batch)


async def delete_destination_events(
    cur: Cursor, tenant_id: uuid.UUID, before: datetime, batch: int
) -> int:
    """One batch of the tenant's destination lifecycle events (no delivery to go with)
    from before `before`; returns how many went."""
    return await _count(
        cur, "retention_delete_destination_events", "lifecycle_events", tenant_id, before, batch
    )


async def _count(
    cur: Cursor, name: str, column: str, tenant_id: uuid.UUID, before: datetime, batch: int
) -> int:
    await cur.execute(query(name), {"tenant_id": tenant_id, "before": before, "batch": batch})
    row = await cur.fetchone()
    assert row is not None
    return int(row[column])
