"""What the customer portal reads and writes (statements in `sql/portal.sql`): one-time
console links, the tenant's event-type catalog and its branding.

Every function but `redeem` and `token_state` takes the tenant id; those two find a link
by the SHA-256 of its token, which only the link's holder knows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from courier.store.rows import AsyncConn, Row, fetch_all, fetch_one

__all__ = ["AsyncConn", "Row"]


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=lambda v: orjson.dumps(v).decode())


async def owned_destinations(
    conn: AsyncConn, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await fetch_all(
        conn, "portal_owned_destinations", {"tenant_id": tenant_id, "ids": list(ids)}
    )
    return {row["id"] for row in rows}


async def create_session(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    *,
    token_hash: bytes,
    role: str,
    destination_ids: Sequence[uuid.UUID] | None,
    actor: str,
    expires_in: int,
) -> Row:
    params = {
        "tenant_id": tenant_id,
        "token_hash": token_hash,
        "role": role,
        "destination_ids": None if destination_ids is None else list(destination_ids),
        "actor": actor,
        "expires_in": expires_in,
    }
    row = await fetch_one(conn, "portal_create_session", params)
    assert row is not None
    return row


async def redeem(conn: AsyncConn, token_hash: bytes) -> Row | None:
    """Mark the link redeemed and answer its (id, tenant_id); None when it cannot be."""
    return await fetch_one(conn, "portal_redeem", {"token_hash": token_hash})


async def token_state(conn: AsyncConn, token_hash: bytes) -> Row | None:
    return await fetch_one(conn, "portal_token_state", {"token_hash": token_hash})


async def live_session(conn: AsyncConn, tenant_id: uuid.UUID, session_id: uuid.UUID) -> Row | None:
    return await fetch_one(conn, "portal_session_live", {"tenant_id": tenant_id, "id": session_id})


async def put_event_type(
    conn: AsyncConn,
    tenant_id: uuid.UUID,
    name: str,
    *,
    description: str,
    schema: Any,
    example: Any,
) -> Row:
    params = {
        "tenant_id": tenant_id,
        "name": name,
        "description": description,
        "schema": _json(schema),
        "example": _json(example),
    }
    row = await fetch_one(conn, "event_type_put", params)
    assert row is not None
    return row


async def list_event_types(
    conn: AsyncConn, tenant_id: uuid.UUID, *, after: str | None, limit: int
) -> list[Row]:
    params = {"tenant_id": tenant_id, "after": after, "limit": limit + 1}
    return await fetch_all(conn, "event_type_list", params)


async def get_event_type(conn: AsyncConn, tenant_id: uuid.UUID, name: str) -> Row | None:
    return await fetch_one(conn, "event_type_get", {"tenant_id": tenant_id, "name": name})


async def event_type_schema(conn: AsyncConn, tenant_id: uuid.UUID, name: str) -> Row | None:
    return await fetch_one(conn, "event_type_schema", {"tenant_id": tenant_id, "name": name})


async def event_type_version(conn: AsyncConn, tenant_id: uuid.UUID, name: str) -> int | None:
    row = await fetch_one(conn, "event_type_version", {"tenant_id": tenant_id, "name": name})
    return None if row is None else int(row["version"])


async def delete_event_type(conn: AsyncConn, tenant_id: uuid.UUID, name: str) -> bool:
    row = await fetch_one(conn, "event_type_delete", {"tenant_id": tenant_id, "name": name})
    return row is not None


async def branding(conn: AsyncConn, tenant_id: uuid.UUID) -> Row | None:
    return await fetch_one(conn, "tenant_branding_get", {"tenant_id": tenant_id})


async def update_branding(conn: AsyncConn, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Row:
    row = await fetch_one(conn, "tenant_branding_update", {**fields, "tenant_id": tenant_id})
    assert row is not None
    return row


async def operations_destination(conn: AsyncConn, tenant_id: uuid.UUID) -> uuid.UUID | None:
    row = await fetch_one(conn, "tenant_operations_destination_get", {"tenant_id": tenant_id})
    return None if row is None else row["destination_id"]


async def set_operations_destination(
    conn: AsyncConn, tenant_id: uuid.UUID, destination_id: uuid.UUID | None, actor: str
) -> bool:
    """Name (None: clear) the operations destination; False when it is not the tenant's."""
    params = {"tenant_id": tenant_id, "destination_id": destination_id, "actor": actor}
    return await fetch_one(conn, "tenant_operations_destination_set", params) is not None


async def add_to_scope(
    conn: AsyncConn, tenant_id: uuid.UUID, session_id: uuid.UUID, destination_id: uuid.UUID
) -> None:
    params = {"tenant_id": tenant_id, "id": session_id, "destination_id": destination_id}
    await fetch_one(conn, "portal_session_add_destination", params)


async def revoke(
    conn: AsyncConn, tenant_id: uuid.UUID, session_id: uuid.UUID | None, actor: str
) -> list[uuid.UUID]:
    """Revoke one link (None: every live one of the tenant); answers the ids revoked."""
    params = {"tenant_id": tenant_id, "id": session_id, "actor": actor}
    return [row["id"] for row in await fetch_all(conn, "portal_revoke", params)]


async def session_exists(conn: AsyncConn, tenant_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    params = {"tenant_id": tenant_id, "id": session_id}
    return await fetch_one(conn, "portal_session_exists", params) is not None


async def list_sessions(
    conn: AsyncConn, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Row]:
    params = {"tenant_id": tenant_id, "after": after, "limit": limit + 1}
    return await fetch_all(conn, "portal_list_sessions", params)
