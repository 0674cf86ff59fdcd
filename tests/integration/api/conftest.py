"""The API under test: create_app on a fresh database, its lifespan run, an httpx client
on the ASGI transport, and tenants with real API keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from courier.asgi import create_app
from courier.settings import Settings
from courier.tenancy import create_tenant

BASE_URL = "http://courier.test"


@dataclass
class Tenant:
    id: uuid.UUID
    key: str
    key_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def api_settings(secret_key: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": secret_key,
        "allow_private_destinations": True,
        "allowed_networks": "",
        "max_payload_bytes": 262_144,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client on its ASGI transport."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


@pytest.fixture
def make_tenant(conn: psycopg.Connection[Any]) -> Callable[[], Tenant]:
    def make() -> Tenant:
        tenant_id, issued = create_tenant(conn, f"api-{uuid.uuid4().hex[:8]}")
        return Tenant(tenant_id, issued.key, issued.id)

    return make


@pytest.fixture
def tenant_a(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
def tenant_b(make_tenant: Callable[[], Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
async def client(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that admits private (loopback) destinations, like `courier up`."""
    async with serving(create_app(api_settings(secret_key), db_url)) as c:
        yield c


async def create_destination(
    client: httpx.AsyncClient, tenant: Tenant, url: str = "https://example.com/hook", **body: Any
) -> dict[str, Any]:
    body.setdefault("name", f"dest-{uuid.uuid4().hex[:6]}")
    response = await client.post(
        "/v1/destinations", json={"url": url, **body}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def send_event(
    client: httpx.AsyncClient,
    tenant: Tenant,
    event_type: str = "order.created",
    payload: Any = None,
    **body: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/events",
        json={"type": event_type, "payload": payload if payload is not None else {"n": 1}, **body},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted
