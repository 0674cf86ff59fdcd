"""Tenants and their API keys in PostgreSQL (courier.tenancy owns the key format)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from courier.store.queries import query
from courier.store.rows import Row, fetch_one, fetch_one_sync


def insert_tenant(conn: psycopg.Connection[Any], name: str) -> uuid.UUID:
    row = fetch_one_sync(conn, "create_tenant", {"name": name})
    assert row is not None
    tenant_id: uuid.UUID = row["id"]
    return tenant_id


def insert_api_key(
    conn: psycopg.Connection[Any],
    *,
    tenant_id: uuid.UUID,
    key_id: uuid.UUID,
    key_hash: bytes,
    prefix: str,
    name: str | None,
) -> None:
    params = {
        "tenant_id": tenant_id,
        "id": key_id,
        "key_hash": key_hash,
        "prefix": prefix,
        "name": name,
    }
    conn.execute(query("create_api_key"), params)


def api_keys(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """(id, name, prefix, created_at, revoked_at) of a tenant's keys, oldest first."""
    return conn.execute(query("list_api_keys"), {"tenant_id": tenant_id}).fetchall()


def revoke_api_key(conn: psycopg.Connection[Any], key_id: uuid.UUID) -> bool:
    """Whether a live key was revoked now."""
    return conn.execute(query("revoke_api_key"), {"id": key_id}).fetchone() is not None


def tenants_by_ref(conn: psycopg.Connection[Any], refs: list[str]) -> list[tuple[uuid.UUID, str]]:
    """(id, name) of the tenants whose id or name is among `refs`."""
    rows = conn.execute(query("tenant_ids_by_id_or_name"), {"refs": refs}).fetchall()
    return [(row[0], row[1]) for row in rows]


async def live_key(
    conn: psycopg.AsyncConnection[Any], tenant_id: uuid.UUID, key_hash: bytes
) -> Row | None:
    """The live key (tenant_id, key_id, key_hash) with this hash, if any."""
    return await fetch_one(conn, "api_key_for_auth", {"tenant_id": tenant_id, "key_hash": key_hash})


async def key_is_live(
    conn: psycopg.AsyncConnection[Any], tenant_id: uuid.UUID, key_id: uuid.UUID
) -> bool:
    params = {"tenant_id": tenant_id, "key_id": key_id}
    return await fetch_one(conn, "api_key_live", params) is not None
