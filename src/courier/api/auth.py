"""Bearer authentication: the API key decides the tenant.

A key reads `ck_<tenant id hex>_<secret>` (courier.tenancy). The tenant id inside it
lets the lookup lead with tenant_id; the stored value is a SHA-256 of the whole key,
found through the unique (tenant_id, key_hash) index and compared again in constant
time. Missing, malformed, unknown and revoked keys all get the same 401.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from courier.api.deps import ConnDep
from courier.api.problems import Unauthorized
from courier.store.rows import fetch_one
from courier.tenancy import hash_key, parse_key

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
    row = await fetch_one(conn, "api_key_for_auth", {"tenant_id": tenant_id, "key_hash": digest})
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        raise Unauthorized()
    return Caller(tenant_id=row["tenant_id"], key_id=row["key_id"])


CallerDep = Annotated[Caller, Depends(authenticate)]
