"""Revoking portal links: one by id or every live one of a tenant. A revoked link cannot
be opened (a 410 page saying so), and the console sessions it started end at their next
request, the live stream included; another tenant's links are untouched."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from courier.asgi import create_app
from courier.metrics import CourierMetrics
from courier.tenancy import create_tenant
from courier.web.event_stream import StreamConfig
from courier.web.state import state_of
from tests.integration.api.conftest import BASE_URL, Tenant, api_settings, serving
from tests.integration.observability.conftest import uvicorn_serving

WAIT_S = 20.0


@pytest.fixture
def app(db_url: str, secret_key: str) -> FastAPI:
    return create_app(api_settings(secret_key), db_url)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as client:
        yield client


def _tenant(conn: psycopg.Connection[Any]) -> Tenant:
    tenant_id, issued = create_tenant(conn, f"acme-{uuid.uuid4().hex[:6]}")
    return Tenant(tenant_id, issued.key, issued.id)


async def _link(api: httpx.AsyncClient, tenant: Tenant, role: str = "operator") -> dict[str, Any]:
    created = await api.post("/v1/portal-sessions", json={"role": role}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    body["path"] = body["url"][len(BASE_URL) :]
    return body


async def _open(api: httpx.AsyncClient, path: str) -> httpx.Response:
    api.cookies.clear()
    return await api.get(path)


async def test_revoking_a_link_ends_its_console_session_at_the_next_request(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    link = await _link(api, acme)
    assert (await _open(api, link["path"])).status_code == 303
    assert (await api.get("/console/integrations")).status_code == 200

    revoked = await api.delete(f"/v1/portal-sessions/{link['id']}", headers=acme.headers)
    assert revoked.status_code == 204
    page = await api.get("/console/integrations")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/sign-in")
    # idempotent; another tenant's link, or none, is a 404 alike
    again = await api.delete(f"/v1/portal-sessions/{link['id']}", headers=acme.headers)
    assert again.status_code == 204
    other = _tenant(conn)
    foreign = await api.delete(f"/v1/portal-sessions/{link['id']}", headers=other.headers)
    missing = await api.delete(f"/v1/portal-sessions/{uuid.uuid4()}", headers=other.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()

    audit = conn.execute(
        "SELECT actor, data FROM audit_records WHERE action = 'portal_session.revoked'"
    ).fetchall()
    assert audit == [(f"api_key:{acme.key_id}", {"portal_session_ids": [link["id"]]})]


async def test_a_revoked_link_cannot_be_opened(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    link = await _link(api, acme)
    await api.delete(f"/v1/portal-sessions/{link['id']}", headers=acme.headers)
    opened = await _open(api, link["path"])
    assert opened.status_code == 410 and "revoked" in opened.text
    assert "courier_console=" not in opened.headers.get("set-cookie", "")
    assert (await api.get("/console/integrations")).status_code == 303


async def test_revoking_every_link_of_a_tenant(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme, other = _tenant(conn), _tenant(conn)
    opened, unopened = await _link(api, acme), await _link(api, acme, "viewer")
    theirs = await _link(api, other)
    assert (await _open(api, opened["path"])).status_code == 303

    answer = await api.delete("/v1/portal-sessions", headers=acme.headers)
    assert answer.status_code == 200 and answer.json() == {"revoked": 2}
    assert (await api.get("/console/integrations")).status_code == 303
    assert (await _open(api, unopened["path"])).status_code == 410
    again = await api.delete("/v1/portal-sessions", headers=acme.headers)
    assert again.json() == {"revoked": 0}

    assert (await _open(api, theirs["path"])).status_code == 303  # untouched
    assert (await api.get("/console/integrations")).status_code == 200


async def test_revoking_a_link_ends_its_live_stream(
    conn: psycopg.Connection[Any], db_url: str, secret_key: str
) -> None:
    acme = _tenant(conn)
    app = create_app(api_settings(secret_key), db_url)
    state_of(app).event_stream_config = StreamConfig(
        poll_interval_s=0.05, heartbeat_s=0.2, auth_recheck_s=0.2
    )
    state_of(app).metrics = CourierMetrics()
    async with uvicorn_serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        created = await client.post(
            "/v1/portal-sessions", json={"role": "viewer"}, headers=acme.headers
        )
        link = created.json()
        assert (await client.get(link["url"].split(base, 1)[1])).status_code == 303
        async with client.stream("GET", "/console/events") as stream:
            assert stream.status_code == 200
            revoked = await client.delete(f"/v1/portal-sessions/{link['id']}", headers=acme.headers)
            assert revoked.status_code == 204

            async def drain() -> None:
                async for _ in stream.aiter_text():
                    pass

            await asyncio.wait_for(drain(), timeout=WAIT_S)  # the server ends it


async def test_links_are_listed_newest_first_without_their_tokens(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme, other = _tenant(conn), _tenant(conn)
    first = await _link(api, acme, "viewer")
    await asyncio.sleep(0.01)  # ids order by the millisecond they were made in
    second = await _link(api, acme)
    await _link(api, other)
    assert (await _open(api, second["path"])).status_code == 303
    await api.delete(f"/v1/portal-sessions/{first['id']}", headers=acme.headers)

    page = await api.get("/v1/portal-sessions", params={"limit": 1}, headers=acme.headers)
    assert page.status_code == 200
    (newest,) = page.json()["items"]
    assert newest["id"] == second["id"] and newest["role"] == "operator"
    assert newest["redeemed_at"] is not None and newest["revoked_at"] is None
    assert newest["created_by"] == f"api_key:{acme.key_id}"
    rest = await api.get(
        "/v1/portal-sessions", params={"cursor": page.json()["next_cursor"]}, headers=acme.headers
    )
    (oldest,) = rest.json()["items"]
    assert oldest["id"] == first["id"] and oldest["revoked_at"] is not None
    assert oldest["redeemed_at"] is None and oldest["destination_ids"] is None
    assert rest.json()["next_cursor"] is None
    for link in (first, second):
        token = link["path"].rsplit("/", 1)[1]
        assert token not in page.text and token not in rest.text
