"""The console embedded in another site's page: a portal link in an iframe.

courier serves on http://127.0.0.1:<port> with COURIER_CONSOLE_FRAME_ANCESTORS naming a
page served on http://localhost:<other port> (another site, so the console's cookie is a
third-party cookie there). The page frames a one-time link; inside the frame the holder is
signed in, reads the scoped console and replays a dead letter through a CSRF-protected form.
A page on a site the setting does not name cannot frame the console.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
from aiohttp import web
from playwright.async_api import Page, expect
from pydantic import SecretStr

from courier.asgi import create_app
from courier.settings import Settings
from tests.e2e.console.conftest import Tenant
from tests.integration.observability.conftest import uvicorn_serving
from tests.support.ports import free_port


@asynccontextmanager
async def _courier(db_url: str, secret_key: str, frame_ancestors: str) -> AsyncIterator[str]:
    settings = Settings(
        database_url=db_url,
        secret_key=SecretStr(secret_key),
        allow_private_destinations=True,
        console_frame_ancestors=frame_ancestors,
    )
    async with uvicorn_serving(create_app(settings, db_url)) as base:
        yield base


@asynccontextmanager
async def _platform(port: int, frames: dict[str, str]) -> AsyncIterator[str]:
    """The embedding site: `/<name>` is a page framing `frames[name]`."""

    async def handler(request: web.Request) -> web.Response:
        src = frames.get(request.match_info["name"])
        if src is None:
            raise web.HTTPNotFound()
        html = f'<!doctype html><h1>Platform</h1><iframe src="{src}" width="1100" height="700">'
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        await runner.cleanup()


def _destination(conn: psycopg.Connection[Any], tenant: Tenant, name: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url) VALUES (%s, %s, 'http://127.0.0.1:9/x')"
        " RETURNING id",
        (tenant.id, name),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _dead_letter(conn: psycopg.Connection[Any], tenant: Tenant, dest: uuid.UUID) -> uuid.UUID:
    row = conn.execute(
        "WITH e AS (INSERT INTO events (tenant_id, type, payload)"
        "  VALUES (%(t)s, 'order.created', '{}') RETURNING id)"
        " INSERT INTO deliveries (tenant_id, event_id, destination_id, state, attempt_count,"
        "   next_attempt_at, dead_letter_reason, dead_lettered_at)"
        " SELECT %(t)s, id, %(d)s, 'dead_lettered', 3, NULL, 'max_attempts_exhausted', now()"
        " FROM e RETURNING id",
        {"t": tenant.id, "d": dest},
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


async def _link(base: str, tenant: Tenant, **body: Any) -> str:
    async with httpx.AsyncClient() as client:
        created = await client.post(
            f"{base}/v1/portal-sessions",
            json=body,
            headers={"Authorization": f"Bearer {tenant.key}"},
        )
    assert created.status_code == 201, created.text
    url: str = created.json()["url"]
    return url


async def test_a_portal_link_works_inside_another_sites_iframe(
    db_url: str,
    secret_key: str,
    conn: psycopg.Connection[Any],
    page: Page,
    make_tenant: Callable[[str], Tenant],
) -> None:
    acme = make_tenant("embed")
    shown = _destination(conn, acme, "shown-ledger")
    _destination(conn, acme, "hidden-crm")
    dead = _dead_letter(conn, acme, shown)
    platform_port, stranger_port = free_port(), free_port()
    allowed = f"http://localhost:{platform_port}"
    async with _courier(db_url, secret_key, allowed) as base:
        operator = await _link(base, acme, role="operator", destination_ids=[str(shown)])
        refused = await _link(base, acme, role="viewer")
        async with (
            _platform(platform_port, {"app": operator}) as platform,
            _platform(stranger_port, {"app": refused}) as stranger,
        ):
            await page.goto(f"{platform}/app")
            frame = page.frame_locator("iframe")
            await expect(frame.locator("#destinations")).to_contain_text("shown-ledger")
            await expect(frame.locator("#destinations")).not_to_contain_text("hidden-crm")
            # Navigating inside the frame keeps the (third-party) session cookie.
            await frame.locator("nav >> text=Dead letters").click()
            row = frame.locator(f'tr[data-delivery="{dead}"]')
            await expect(row).to_contain_text("shown-ledger")
            await row.locator("button[type=submit]").click()  # a POST with its CSRF token
            await expect(frame.locator("#replay-of")).to_have_text(str(dead))
            replays = conn.execute("SELECT count(*) FROM deliveries WHERE replay_of = %s", (dead,))
            assert replays.fetchone() == (1,)

            # A site the setting does not name: the browser refuses to show the console.
            await page.goto(f"{stranger}/app")
            await page.wait_for_timeout(1000)
            inner = page.frames[-1]
            assert "Integrations" not in await inner.content()
