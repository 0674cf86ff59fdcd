"""Destination rows written outside the HTTP API: the synchronous create (CLI, demo,
bench), the rekey walk and the demo's re-pointing (statements in
`sql/destinations.sql`, beside the API's own, which courier.store.resources runs).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from courier.store.queries import query
from courier.store.rows import Row, fetch_one_sync

Conn = psycopg.Connection[Any]


def insert_destination(conn: Conn, fields: dict[str, Any]) -> Row:
    """`fields` holds every column of the insert, secrets already encrypted, and `actor`
    (None: no audit record)."""
    row = fetch_one_sync(conn, "api_create_destination", fields)
    assert row is not None
    return row


def destination_ids_by_name(conn: Conn, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """{name: id} of a tenant's live destinations."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query("demo_destinations"), {"tenant_id": tenant_id})
        return {row["name"]: row["id"] for row in cur.fetchall()}


def point_destination(
    conn: Conn, tenant_id: uuid.UUID, destination_id: uuid.UUID, url: str
) -> None:
    params = {"tenant_id": tenant_id, "id": destination_id, "url": url}
    conn.execute(query("demo_point_destination"), params)


def secrets_batch(
    conn: Conn, after: tuple[uuid.UUID, uuid.UUID], limit: int
) -> list[tuple[Any, ...]]:
    """(tenant_id, id, signing_secrets, config_secrets, option_secrets) of the next
    `limit` destinations after `after` in key order, deleted ones too, locked (call
    inside a transaction)."""
    params = {"after_tenant": after[0], "after_id": after[1], "limit": limit}
    return conn.execute(query("secrets_rekey_batch"), params).fetchall()


def secrets_total(conn: Conn) -> int:
    """How many destinations `secrets_batch` walks through, deleted ones too."""
    row = conn.execute(query("secrets_rekey_total")).fetchone()
    return int(row[0]) if row else 0


def store_secrets(
    conn: Conn,
    tenant_id: uuid.UUID,
    destination_id: uuid.UUID,
    *,
    signing_secrets: Any,
    config_secrets: Any,
    option_secrets: Any,
) -> None:
    """Write re-encrypted secrets of a row `secrets_batch` locked."""
    params = {
        "tenant_id": tenant_id,
        "id": destination_id,
        "signing_secrets": signing_secrets,
        "config_secrets": config_secrets,
        "option_secrets": option_secrets,
    }
    conn.execute(query("secrets_rekey_update"), params)
