"""What the operator console reads, tenant by tenant (statements grouped by
noun: `sql/delivery_reads.sql`, `sql/destinations.sql`, `sql/audit.sql`, `sql/feed.sql`).

Every function takes the tenant id and passes it to its statement. Lists return up to
`limit + 1` rows, which tells the caller whether another page follows.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from courier.store.feed import START, FeedPosition
from courier.store.rows import AsyncConn, Row, fetch_all, fetch_one

__all__ = ["AsyncConn", "Row"]
MAX_DESTINATIONS = 500  # destinations shown on the integrations page
PAYLOAD_CHARS = 4096  # how much of an event's payload the timeline shows
# A portal session limited to some destinations reads only theirs; None reads them all.
Scope = Collection[uuid.UUID] | None


def _scope(scope: Scope) -> list[uuid.UUID] | None:
    return None if scope is None else list(scope)


def uuid7_floor(when: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `when`'s millisecond: `id >= it` ⇔ created at or after `when`."""
    ms = int(when.timestamp() * 1000)
    return uuid.UUID(hex=f"{ms:012x}" + "0" * 20)


async def session_key(conn: AsyncConn, tenant_id: uuid.UUID, key_id: uuid.UUID) -> Row | None:
    """The live API key a session names (None when revoked or unknown), with the tenant name."""
    return await fetch_one(conn, "console_session_key", {"tenant_id": tenant_id, "key_id": key_id})


async def key_for_sign_in(conn: AsyncConn, tenant_id: uuid.UUID, key_hash: bytes) -> Row | None:
    return await fetch_one(conn, "api_key_for_auth", {"tenant_id": tenant_id, "key_hash": key_hash})


async def destinations(conn: AsyncConn, tenant_id: uuid.UUID, scope: Scope = None) -> list[Row]:
    params = {"tenant_id": tenant_id, "limit": MAX_DESTINATIONS, "scope": _scope(scope)}
    return await fetch_all(conn, "console_destinations", params)


async def destination(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID
) -> Row | None:
    return await fetch_one(
        conn, "console_destination", {"tenant_id": tenant_id, "id": destination_id}
    )


async def state_counts(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID | None,
    scope: Scope = None,
) -> list[Row]:
    """Deliveries by destination and state."""
    which = {"tenant_id": tenant_id, "destination_id": destination_id, "scope": _scope(scope)}
    return await fetch_all(conn, "console_state_counts", which)


async def attempts_by_hour(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID | None,
    now: datetime,
    scope: Scope = None,
) -> list[Row]:
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    params = {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "scope": _scope(scope),
        "since": since,
        "since_id": uuid7_floor(since),
    }
    return await fetch_all(conn, "console_attempts_by_hour", params)


async def list_deliveries(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    *,
    state: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    params = {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "state": state,
        "after": after,
        "limit": limit + 1,
    }
    return await fetch_all(conn, "console_list_deliveries", params)


async def delivery(conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> Row | None:
    params = {"tenant_id": tenant_id, "id": delivery_id, "payload_chars": PAYLOAD_CHARS}
    return await fetch_one(conn, "console_get_delivery", params)


async def replays_of(conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> list[Row]:
    return await fetch_all(conn, "console_replays_of", {"tenant_id": tenant_id, "id": delivery_id})


async def delivery_audit(
    conn: AsyncConn, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> list[Row]:
    return await fetch_all(
        conn, "console_delivery_audit", {"tenant_id": tenant_id, "id": delivery_id}
    )


async def dead_letters(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    *,
    destination_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    after: uuid.UUID | None,
    limit: int,
    scope: Scope = None,
) -> list[Row]:
    params = {
        "tenant_id": tenant_id,
        "destination_id": destination_id,
        "scope": _scope(scope),
        "since": since,
        "until": until,
        "after": after,
        "limit": limit + 1,
    }
    return await fetch_all(conn, "console_dead_letters", params)


async def feed_head(conn: AsyncConn, tenant_id: uuid.UUID) -> FeedPosition:
    """The newest lifecycle-event position visible now (the feed's start when none)."""
    row = await fetch_one(conn, "console_feed_head", {"tenant_id": tenant_id})
    if row is None:
        return START
    return FeedPosition(int(row["txid"]), int(row["seq"]))
