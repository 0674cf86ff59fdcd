"""Tenants and API keys: create, look up, revoke. Keys are shown once; only a hash is kept.

A key reads `ck_<tenant id, 32 hex>_<43 url-safe random characters>`. The tenant id in
the key lets every lookup lead with tenant_id; the random part carries 256 bits.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from courier.store import tenants as store

KEY_PREFIX = "ck_"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    key: str  # shown once, never stored


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_key(key: str) -> uuid.UUID | None:
    """The tenant id a well-formed key names, or None (malformed keys are refused alike)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    tenant_hex, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(tenant_hex) != 32 or len(secret) < 32:
        return None
    try:
        return uuid.UUID(hex=tenant_hex)
    except ValueError:
        return None


def new_key(tenant_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def create_tenant(conn: psycopg.Connection[Any], name: str) -> tuple[uuid.UUID, IssuedKey]:
    tenant_id = store.insert_tenant(conn, name)
    return tenant_id, create_api_key(conn, tenant_id, name="initial")


def create_api_key(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, name: str | None = None
) -> IssuedKey:
    key = new_key(tenant_id)
    key_id = uuid.uuid4()
    store.insert_api_key(
        conn, tenant_id=tenant_id, key_id=key_id, key_hash=hash_key(key), prefix=key[:12], name=name
    )
    return IssuedKey(key_id, tenant_id, key)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the key or its hash."""

    id: uuid.UUID
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def list_api_keys(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> list[KeyInfo]:
    return [KeyInfo(*row) for row in store.api_keys(conn, tenant_id)]


def revoke_api_key(conn: psycopg.Connection[Any], key_id: uuid.UUID) -> bool:
    return store.revoke_api_key(conn, key_id)


def resolve_tenants(conn: psycopg.Connection[Any], refs: list[str]) -> list[uuid.UUID]:
    """Map tenant ids or names to ids; raises ValueError naming any that do not exist."""
    rows = store.tenants_by_ref(conn, refs)
    known = {str(r[0]) for r in rows} | {str(r[1]) for r in rows}
    missing = [r for r in refs if r not in known]
    if missing:
        raise ValueError(f"unknown tenant(s): {', '.join(missing)}")
    return [r[0] for r in rows]
