"""The pool's check before handing out a connection: skipped for one a request gave
back whole a moment ago, asked of one that sat idle, so a connection that died while
idle is replaced instead of failing the request it was handed to."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from courier.api.app import FRESH_S
from courier.asgi import create_app
from courier.web.state import state_of
from tests.integration.api.conftest import Tenant, api_settings, serving

EVENT = {"type": "order.created", "payload": {"n": 1}}


def _terminate_api_sessions(conn: psycopg.Connection[Any]) -> int:
    """End every pooled API connection (not the LISTEN ones); how many ended."""
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND application_name NOT LIKE 'courier-api-%%'"
        " AND backend_type = 'client backend'"
    ).fetchall()
    return len(rows)


async def test_a_connection_that_died_while_idle_is_replaced(
    db_url: str, secret_key: str, tenant_a: Tenant, conn: psycopg.Connection[Any]
) -> None:
    app = create_app(api_settings(secret_key), db_url)
    async with serving(app) as client:
        first = await client.post("/v1/events", json=EVENT, headers=tenant_a.headers)
        assert first.status_code == 202
        returned = state_of(app).conn_returned_at
        assert len(returned) >= 1  # the request stamped the connection it gave back
        await asyncio.sleep(FRESH_S + 0.2)
        assert await asyncio.to_thread(_terminate_api_sessions, conn) >= 1
        again = await client.post("/v1/events", json=EVENT, headers=tenant_a.headers)
        assert again.status_code == 202, again.text


async def test_a_connection_just_given_back_is_not_asked_again(
    db_url: str, secret_key: str, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    original = AsyncConnectionPool.check_connection

    async def spy(conn: Any) -> None:  # the real check, counted
        asked.append(conn)
        await original(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(spy))
    app = create_app(api_settings(secret_key), db_url)
    async with serving(app) as client:
        for _ in range(8):  # one after another, each on a connection given back just now
            answer = await client.post("/v1/events", json=EVENT, headers=tenant_a.headers)
            assert answer.status_code == 202
        # Only a connection no request had given back yet (new to the pool) was asked.
        assert len({id(c) for c in asked}) == len(asked) < 8
        before = len(asked)
        await asyncio.sleep(FRESH_S + 0.2)
        answer = await client.post("/v1/events", json=EVENT, headers=tenant_a.headers)
        assert answer.status_code == 202
        assert len(asked) == before + 1  # idle for a while: asked again
        assert id(asked[-1]) in {id(c) for c in asked[:-1]}
