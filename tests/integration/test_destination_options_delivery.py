"""Destination options end to end: set through the API, delivered by a real worker to
real receivers on loopback that demand them, kept on the attempt (the captured body),
and rekeyed by `courier secrets rekey` with every option secret."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from courier.asgi import create_app
from courier.crypto import SecretBox, SecretKeyError, generate_key
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.rekey import rekey_secrets
from courier.tenancy import create_tenant
from tests.integration.adapter.test_destination_auth import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAuthReceiver,
    TokenServer,
)
from tests.integration.api.conftest import Tenant, api_settings, send_event, serving
from tests.integration.api.conftest import create_destination as api_create_destination
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

API_KEY_VALUE = "hdr-5be1-api-key-value"
PASSWORD = "pw-5be1-basic-password"


def _basic_receiver(request: web.Request) -> web.Response:
    expected = "Basic " + base64.b64encode(f"courier:{PASSWORD}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return web.Response(status=401, text="who are you?")
    if request.headers.get("X-Api-Key") != API_KEY_VALUE:
        return web.Response(status=403, text="no api key")
    return web.Response(text=f"accepted; we saw X-Api-Key: {API_KEY_VALUE}")


async def test_basic_auth_headers_envelope_and_captured_body_through_a_worker(
    client: httpx.AsyncClient,
    db_url: str,
    secret_key: str,
    api_tenant: Tenant,
    receiver: Receiver,
) -> None:
    url = receiver.always("/basic", _basic_receiver)
    created = await api_create_destination(
        client,
        api_tenant,
        url=url,
        headers={"X-Api-Key": API_KEY_VALUE},
        auth={"type": "basic", "username": "courier", "password": PASSWORD},
        payload_format="envelope",
        capture_response_body=True,
    )
    accepted = await send_event(client, api_tenant, "order.paid", {"id": 7, "amount": 4200})
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    [hit] = receiver.hits("/basic")
    assert hit.headers["courier-event-type"] == "order.paid"
    envelope = json.loads(hit.body)
    assert envelope["type"] == "order.paid" and envelope["data"] == {"id": 7, "amount": 4200}
    assert datetime.fromisoformat(envelope["timestamp"]).tzinfo is not None
    assert Webhook(created["signing_secret"]).verify(hit.body, hit.headers) == envelope
    [delivery] = accepted["deliveries"]
    read = await client.get(f"/v1/deliveries/{delivery['id']}", headers=api_tenant.headers)
    [attempt] = read.json()["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert attempt["response_body_excerpt"] == "accepted; we saw X-Api-Key: [REDACTED]"
    assert API_KEY_VALUE not in read.text and PASSWORD not in read.text


async def test_a_destination_without_the_credentials_is_refused_by_the_same_receiver(
    client: httpx.AsyncClient,
    db_url: str,
    secret_key: str,
    api_tenant: Tenant,
    receiver: Receiver,
) -> None:
    url = receiver.always("/basic", _basic_receiver)
    await api_create_destination(client, api_tenant, url=url, max_attempts=1)
    accepted = await send_event(client, api_tenant)
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    [delivery] = accepted["deliveries"]
    read = await client.get(f"/v1/deliveries/{delivery['id']}", headers=api_tenant.headers)
    assert read.json()["state"] == "failed" and read.json()["last_http_status"] == 401
    assert read.json()["attempts"][0]["response_body_excerpt"] is None  # not captured
    assert json.loads(receiver.hits("/basic")[0].body) == {"n": 1}  # raw, the default


@pytest.fixture
async def oauth_site() -> AsyncIterator[tuple[TokenServer, OAuthReceiver]]:
    server, receiver = TokenServer(), OAuthReceiver()
    receiver.server = server
    app = web.Application()
    app.router.add_post("/token", server.handle)
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    server.url, receiver.url = f"{base}/token", f"{base}/hook"
    try:
        yield server, receiver
    finally:
        await runner.cleanup()


async def test_oauth2_through_a_worker_fetches_one_token_for_many_deliveries(
    client: httpx.AsyncClient,
    db_url: str,
    secret_key: str,
    api_tenant: Tenant,
    oauth_site: tuple[TokenServer, OAuthReceiver],
) -> None:
    server, receiver = oauth_site
    await api_create_destination(
        client,
        api_tenant,
        url=receiver.url,
        auth={
            "type": "oauth2_client_credentials",
            "token_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    for n in range(20):
        await send_event(client, api_tenant, payload={"n": n})
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 20)
    assert len(receiver.seen) == 20
    assert {seen["authorization"] for seen in receiver.seen} == {
        f"Bearer {token}" for token in server.issued
    }
    assert server.requests == 1


async def test_rekey_covers_every_option_secret(
    conn: psycopg.Connection[Any], db_url: str, receiver: Receiver, tenant: uuid.UUID
) -> None:
    key_a, key_b = generate_key(), generate_key()
    url = receiver.always("/basic", _basic_receiver)
    row, _secret = create_destination(
        conn,
        SecretBox(key_a),
        tenant,
        name="options",
        url=url,
        options={
            "headers": {"X-Api-Key": API_KEY_VALUE},
            "auth": {"type": "basic", "username": "courier", "password": PASSWORD},
        },
    )
    before = row["option_secrets"]
    assert set(before) == {"headers.X-Api-Key", "auth.password"}
    conn.autocommit = True
    result = rekey_secrets(conn, SecretBox(f"{key_b},{key_a}"))
    assert result.rekeyed_secrets == 3 and result.undecryptable == 0  # and the signing one
    (after,) = conn.execute(
        "SELECT option_secrets FROM destinations WHERE id = %s", (row["id"],)
    ).fetchone() or (None,)
    assert after is not None and set(after) == set(before)
    for path, token in after.items():
        with pytest.raises(SecretKeyError):
            SecretBox(key_a).decrypt(token)
        assert SecretBox(key_b).decrypt(token) == SecretBox(key_a).decrypt(before[path])
    enqueue_event(conn, tenant, "order.created", {"n": 1})
    async with run_workers([make_worker(db_url, key_b)]):  # the new key alone
        await wait_terminal(db_url, 1)
    [hit] = receiver.hits("/basic")
    assert hit.headers["X-Api-Key"] == API_KEY_VALUE


async def test_a_worker_that_cannot_open_an_option_secret_hands_the_delivery_back(
    conn: psycopg.Connection[Any], db_url: str, receiver: Receiver, tenant: uuid.UUID
) -> None:
    worker_key, removed_key = generate_key(), generate_key()
    row, _secret = create_destination(
        conn,
        SecretBox(worker_key),
        tenant,
        name="options",
        url=receiver.url("/hook"),
        options={"headers": {"X-Api-Key": API_KEY_VALUE}},
    )
    # The signing secret opens; the header value was written under a key since removed.
    conn.execute(
        "UPDATE destinations SET option_secrets = jsonb_build_object('headers.X-Api-Key', "
        "%s::text) WHERE id = %s",
        (SecretBox(removed_key).encrypt(API_KEY_VALUE), row["id"]),
    )
    enqueue_event(conn, tenant, "order.created", {"n": 1})
    worker = make_worker(db_url, worker_key, unsignable_delay_s=0.3)
    async with run_workers([worker]):
        await asyncio.sleep(1.5)  # several claims, each handed back
    assert receiver.hits("/hook") == []  # never sent without its header
    rows = conn.execute("SELECT state, attempt_count FROM deliveries").fetchall()
    assert [tuple(r) for r in rows] == [("retry_scheduled", 0)]
    failures = worker.metrics.registry.get_sample_value("courier_secret_decrypt_failures_total")
    assert failures is not None and failures >= 2


@pytest.fixture
def api_tenant(conn: psycopg.Connection[Any]) -> Tenant:
    tenant_id, issued = create_tenant(conn, f"options-{uuid.uuid4().hex[:8]}")
    return Tenant(tenant_id, issued.key, issued.id)


@pytest.fixture
async def client(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(api_settings(secret_key), db_url)) as c:
        yield c
