"""The console for broker destinations: the destination page names the kind and shows
its config with the broker URL redacted, and the attempt timeline reads in the kind's
words (after real deliveries to a password-protected redis-server)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from courier import kinds
from courier.asgi import create_app
from courier.enqueue import enqueue_event
from courier.tenancy import create_tenant
from tests.integration.api.conftest import api_settings, serving
from tests.integration.brokers.conftest import RedisServer, broker_worker
from tests.support.engine import Engine, run_workers, wait_terminal

PASSWORD = "console-redis-pass-7f3a"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def console(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(api_settings(secret_key), db_url)) as client:
        yield client


@pytest.fixture
async def locked_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path, password=PASSWORD)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def _sign_in(client: httpx.AsyncClient, key: str) -> None:
    form = await client.get("/console/sign-in")
    token = TOKEN.search(form.text)
    assert token is not None
    data = {"csrf_token": token.group(1), "api_key": key, "next": ""}
    assert (await client.post("/console/sign-in", data=data)).status_code == 303


def _text(page: httpx.Response) -> str:
    """The page's text, tags dropped and entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


async def test_a_broker_destination_shows_its_kind_config_and_attempts_without_secrets(
    console: httpx.AsyncClient,
    engine: Engine,
    conn: psycopg.Connection[Any],
    locked_redis: RedisServer,
) -> None:
    tenant_id, issued = create_tenant(conn, f"console-{uuid.uuid4().hex[:6]}")
    stream = f"courier:console:{tenant_id}"
    good, _ = engine.make_destination(
        "",
        tenant_id=tenant_id,
        name="orders-stream",
        kind="redis_stream",
        config={"url": locked_redis.url, "stream": stream, "maxlen": 1000},
        event_types=["order.*"],
    )
    wrong_url = locked_redis.url.replace(PASSWORD, PASSWORD + "-wrong")
    bad, _ = engine.make_destination(
        "",
        tenant_id=tenant_id,
        name="audit-stream",
        kind="redis_stream",
        config={"url": wrong_url, "stream": stream},
        event_types=["audit.*"],
    )
    enqueue_event(conn, tenant_id, "order.created", {"n": 1})
    enqueue_event(conn, tenant_id, "audit.logged", {"n": 2})
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 2)
    await _sign_in(console, issued.key)

    listing = await console.get("/console/integrations")
    page = await console.get(f"/console/integrations/{good['id']}")
    assert listing.status_code == 200 and page.status_code == 200
    text = _text(page)
    assert f"127.0.0.1:{locked_redis.port}" in text  # the address, without credentials
    assert "kind redis_stream" in text
    assert f"url {kinds.SECRET_SHOWN}" in text
    assert f"stream {stream}" in text and "maxlen 1000" in text
    assert "redis_stream" in _text(listing)

    ((good_delivery,),) = conn.execute(
        "SELECT id FROM deliveries WHERE destination_id = %s", (good["id"],)
    ).fetchall()
    ((bad_delivery,),) = conn.execute(
        "SELECT id FROM deliveries WHERE destination_id = %s", (bad["id"],)
    ).fetchall()
    delivered = await console.get(f"/console/deliveries/{good_delivery}")
    refused = await console.get(f"/console/deliveries/{bad_delivery}")
    assert delivered.status_code == 200 and refused.status_code == 200
    assert "#1 succeeded XADD: entry added —" in _text(delivered)
    assert "no HTTP status" not in _text(delivered)
    refused_text = _text(refused)
    assert "#1 permanent failure XADD not retryable" in refused_text
    assert "access refused" in refused_text  # the broker's reason, in the timeline
    assert "Failed: 1 attempt over" in refused_text

    bad_page = await console.get(f"/console/integrations/{bad['id']}")
    for shown in (listing, page, delivered, refused, bad_page):
        assert PASSWORD not in shown.text
