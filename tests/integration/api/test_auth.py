"""Bearer authentication: one 401 for every kind of bad key, the tenant from a good one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg

from courier.asgi import create_app
from courier.tenancy import create_api_key, revoke_api_key
from tests.integration.api.conftest import Tenant, api_settings, serving

REVOCATION_WAIT_S = 5.0  # a NOTIFY arrives in milliseconds; this bounds a loaded machine


async def test_every_bad_key_gets_the_same_401(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    revoked = create_api_key(conn, tenant_a.id, name="to revoke")
    assert revoke_api_key(conn, revoked.id)
    unknown = f"ck_{tenant_a.id.hex}_{'x' * 43}"
    other_tenant = f"ck_{'0' * 32}_{tenant_a.key.rsplit('_', 1)[1]}"
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "wrong scheme": {"Authorization": f"Basic {tenant_a.key}"},
        "empty bearer": {"Authorization": "Bearer "},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "unknown": {"Authorization": f"Bearer {unknown}"},
        "secret under another tenant id": {"Authorization": f"Bearer {other_tenant}"},
        "revoked": {"Authorization": f"Bearer {revoked.key}"},
    }
    answers = {}
    for label, headers in cases.items():
        response = await client.get("/v1/destinations", headers=headers)
        assert response.status_code == 401, label
        assert response.headers["content-type"] == "application/problem+json", label
        assert response.headers["www-authenticate"] == "Bearer", label
        answers[label] = response.json()
    first = answers["missing"]
    assert first["status"] == 401 and first["type"].endswith("/unauthorized")
    assert all(body == first for body in answers.values()), answers


async def test_a_valid_key_works_and_revoking_it_ends_access(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    """The key was just used, so this process holds it; the revocation's NOTIFY ends it.
    The cache's TTL is set far beyond the wait, so only the NOTIFY can explain the 401,
    and the wait bounds the NOTIFY's delivery (it commits in another session)."""
    app = create_app(api_settings(secret_key, api_key_cache_seconds=300), db_url)
    async with serving(app) as client:
        extra = create_api_key(conn, tenant_a.id, name="second")
        headers = {"Authorization": f"Bearer {extra.key}"}
        assert (await client.get("/v1/destinations", headers=headers)).status_code == 200
        revoke_api_key(conn, extra.id)
        deadline = time.monotonic() + REVOCATION_WAIT_S
        while (
            status := (await client.get("/v1/destinations", headers=headers)).status_code
        ) == 200:
            assert time.monotonic() < deadline, "the revoked key is still accepted"
            await asyncio.sleep(0.02)
        assert status == 401
        assert (await client.get("/v1/destinations", headers=tenant_a.headers)).status_code == 200


async def test_keys_are_stored_only_as_hashes(
    conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    rows = conn.execute("SELECT key_hash, prefix FROM api_keys").fetchall()
    assert rows
    for key_hash, prefix in rows:
        assert tenant_a.key.encode() not in bytes(key_hash)
        assert len(prefix) < 16
