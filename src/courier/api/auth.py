"""Bearer authentication: the API key decides the tenant.

A key reads `ck_<tenant id hex>_<secret>` (courier.tenancy). The tenant id inside it
lets the lookup lead with tenant_id; the stored value is a SHA-256 of the whole key,
found through the unique (tenant_id, key_hash) index and compared again in constant
time. Missing, malformed, unknown and revoked keys all get the same 401.

A key found live is kept for a few seconds in this process's KeyCache
(courier.api.key_cache), which a revocation empties at once through NOTIFY: most
requests are authenticated without a round trip.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from courier.api.key_cache import CachedKey, app_key_cache
from courier.store import tenants as store
from courier.tenancy import hash_key, parse_key
from courier.web.deps import ConnDep
from courier.web.problems import Unauthorized

_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="an API key: `ck_…`")


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: uuid.UUID
    key_id: uuid.UUID

    @property
    def actor(self) -> str:
        """How audit records name this caller (the key id, never the key)."""
        return f"api_key:{self.key_id}"


async def authenticate(
    request: Request,
    conn: ConnDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthorized()
    key = credentials.credentials.strip()
    tenant_id = parse_key(key)
    if tenant_id is None:
        raise Unauthorized()
    digest = hash_key(key)
    cache = app_key_cache(request.app)
    hit = cache.get(tenant_id, digest)
    if hit is not None:
        return Caller(tenant_id=hit.tenant_id, key_id=hit.key_id)
    generation = cache.generation(tenant_id)
    row = await store.live_key(conn, tenant_id, digest)
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        raise Unauthorized()
    caller = Caller(tenant_id=row["tenant_id"], key_id=row["key_id"])
    cache.put(digest, CachedKey(caller.tenant_id, caller.key_id), generation)
    return caller


async def still_live(conn: psycopg.AsyncConnection[Any], caller: Caller) -> bool:
    """Whether the caller's key is still live (a stream asks again while it runs)."""
    return await store.key_is_live(conn, caller.tenant_id, caller.key_id)


CallerDep = Annotated[Caller, Depends(authenticate)]
