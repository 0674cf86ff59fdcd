"""Broker destinations over the HTTP API: config validated per kind (422 naming the
field), the broker URL a secret (encrypted at rest, `<redacted>` in reads, rekeyed),
PATCH merging config, and an end-to-end delivery of an event sent through the API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from courier import kinds
from courier.asgi import create_app
from courier.crypto import SecretBox, generate_key
from courier.rekey import rekey_secrets
from courier.tenancy import create_tenant
from tests.integration.api.conftest import Tenant, api_settings, serving
from tests.integration.brokers.conftest import AMQP_URL, REDIS_URL, broker_worker
from tests.support.engine import Engine, run_workers, wait_terminal

PASSWORD = "s3cret-broker-pass"
SECRET_URL = f"amqp://courier:{PASSWORD}@127.0.0.1:5672/vhost"


@pytest.fixture
async def client(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(api_settings(secret_key), db_url)) as c:
        yield c


@pytest.fixture
def api_tenant(conn: psycopg.Connection[Any]) -> Tenant:
    tenant_id, issued = create_tenant(conn, f"brokers-{uuid.uuid4().hex[:8]}")
    return Tenant(tenant_id, issued.key, issued.id)


async def _post(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    body.setdefault("name", "broker")
    return await client.post("/v1/destinations", json=body, headers=tenant.headers)


def _field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["errors"][0]["field"])


async def test_a_rabbitmq_destination_hides_its_broker_url_everywhere(
    client: httpx.AsyncClient, api_tenant: Tenant, conn: psycopg.Connection[Any]
) -> None:
    config = {"url": SECRET_URL, "exchange": "orders", "routing_key": "created"}
    created = await _post(client, api_tenant, kind="rabbitmq", config=config)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["kind"] == "rabbitmq"
    assert body["url"] == "amqp://127.0.0.1:5672"
    assert body["config"] == {
        "url": kinds.SECRET_SHOWN,
        "exchange": "orders",
        "routing_key": "created",
    }
    one = await client.get(f"/v1/destinations/{body['id']}", headers=api_tenant.headers)
    listed = await client.get("/v1/destinations", headers=api_tenant.headers)
    audit = await client.get("/v1/audit", headers=api_tenant.headers)
    assert audit.status_code == 200 and one.status_code == 200 and listed.status_code == 200
    at_rest = conn.execute("SELECT d::text FROM destinations d").fetchall()
    audit_rows = conn.execute("SELECT a::text FROM audit_records a").fetchall()
    for text in (created.text, one.text, listed.text, audit.text, str(at_rest), str(audit_rows)):
        assert PASSWORD not in text and "courier:" + PASSWORD not in text
    assert one.json()["config"]["url"] == kinds.SECRET_SHOWN


async def test_config_is_validated_per_kind_naming_the_field(
    client: httpx.AsyncClient, api_tenant: Tenant
) -> None:
    async def field(**body: Any) -> str:
        return _field(await _post(client, api_tenant, **body))

    assert await field(kind="rabbitmq", config={"url": AMQP_URL}) == "config.exchange"
    assert await field(kind="nats", config={"url": "nats://127.0.0.1:4222"}) == "config.subject"
    assert (
        await field(kind="nats", config={"url": "nats://127.0.0.1", "subject": "a.*"})
        == "config.subject"
    )
    assert await field(kind="redis_stream", config={"url": REDIS_URL}) == "config.stream"
    bad_maxlen = {"url": REDIS_URL, "stream": "s", "maxlen": 0}
    assert await field(kind="redis_stream", config=bad_maxlen) == "config.maxlen"
    wrong_scheme = {"url": "http://127.0.0.1:5672/", "exchange": "x"}
    assert await field(kind="rabbitmq", config=wrong_scheme) == "config.url"
    unknown = {"url": AMQP_URL, "exchange": "x", "colour": "red"}
    assert await field(kind="rabbitmq", config=unknown) == "config.colour"
    assert await field(kind="rabbitmq") == "config"
    assert await field(kind="rabbitmq", url="https://example.com/", config={}) == "url"
    assert await field(kind="kafka", config={}) == "kind"
    assert await field(kind="webhook", url="https://example.com/", config={"a": 1}) == "config"
    assert await field(kind="webhook") == "url"


async def test_a_loopback_broker_is_refused_where_private_destinations_are_not_allowed(
    db_url: str, secret_key: str, api_tenant: Tenant
) -> None:
    settings = api_settings(secret_key, allow_private_destinations=False)
    async with serving(create_app(settings, db_url)) as strict:
        config = {"url": "redis://127.0.0.1:6379/0", "stream": "s"}
        response = await _post(strict, api_tenant, kind="redis_stream", config=config)
    assert _field(response) == "config.url"
    assert "loopback" in response.json()["errors"][0]["message"]


async def test_a_kind_whose_extra_is_missing_is_a_422_naming_it(
    client: httpx.AsyncClient, api_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if aio-pika were not installed: the spec names a module that does not exist.
    spec = kinds.SPECS["rabbitmq"]
    missing = kinds.KindSpec(
        spec.config, spec.schemes, "courier_no_such_module", spec.extra, spec.package, 5672
    )
    monkeypatch.setitem(kinds.SPECS, "rabbitmq", missing)  # type: ignore[index]
    response = await _post(
        client, api_tenant, kind="rabbitmq", config={"url": AMQP_URL, "exchange": "x"}
    )
    assert _field(response) == "kind"
    assert "courier-webhooks[rabbitmq]" in response.json()["errors"][0]["message"]


async def test_patch_merges_config_and_keeps_the_stored_secret(
    client: httpx.AsyncClient, api_tenant: Tenant, conn: psycopg.Connection[Any], secret_key: str
) -> None:
    config = {"url": SECRET_URL, "exchange": "orders"}
    created = (await _post(client, api_tenant, kind="rabbitmq", config=config)).json()
    path = f"/v1/destinations/{created['id']}"
    patched = await client.patch(
        path, json={"config": {"routing_key": "rk"}}, headers=api_tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == {
        "url": kinds.SECRET_SHOWN,
        "exchange": "orders",
        "routing_key": "rk",
    }
    (token,) = conn.execute(
        "SELECT config_secrets->>'url' FROM destinations WHERE id = %s", (created["id"],)
    ).fetchone() or (None,)
    assert SecretBox(secret_key).decrypt(token) == SECRET_URL
    bad = await client.patch(path, json={"config": {"exchange": 5}}, headers=api_tenant.headers)
    assert _field(bad) == "config.exchange"
    to_webhook = await client.patch(path, json={"kind": "webhook"}, headers=api_tenant.headers)
    assert _field(to_webhook) == "url"
    back = await client.patch(
        path,
        json={"kind": "webhook", "url": "https://example.com/hook"},
        headers=api_tenant.headers,
    )
    assert back.status_code == 200 and back.json()["config"] is None
    left = conn.execute(
        "SELECT config_secrets FROM destinations WHERE id = %s", (created["id"],)
    ).fetchone()
    assert left == ({},)


async def test_rekey_re_encrypts_the_secret_config(
    client: httpx.AsyncClient, api_tenant: Tenant, conn: psycopg.Connection[Any], secret_key: str
) -> None:
    config = {"url": SECRET_URL, "exchange": "orders"}
    created = (await _post(client, api_tenant, kind="rabbitmq", config=config)).json()
    new_box = SecretBox(f"{generate_key()},{secret_key}")
    result = rekey_secrets(conn, new_box)
    assert result.rekeyed_secrets == 2  # the signing secret and config.url
    (token,) = conn.execute(
        "SELECT config_secrets->>'url' FROM destinations WHERE id = %s", (created["id"],)
    ).fetchone() or (None,)
    assert new_box.is_current(token) and new_box.decrypt(token) == SECRET_URL
    assert rekey_secrets(conn, new_box).rekeyed_secrets == 0


async def test_an_event_sent_through_the_api_reaches_the_stream(
    client: httpx.AsyncClient, api_tenant: Tenant, engine: Engine, unique: str
) -> None:
    stream = f"courier:{unique}"
    created = await _post(
        client, api_tenant, kind="redis_stream", config={"url": REDIS_URL, "stream": stream}
    )
    secret = created.json()["signing_secret"]
    sent = await client.post(
        "/v1/events",
        json={"type": "order.created", "payload": {"order": 7}},
        headers=api_tenant.headers,
    )
    assert sent.status_code in (201, 202), sent.text
    async with run_workers([broker_worker(engine)]):
        await wait_terminal(engine.db_url, 1)
    reader = aioredis.Redis.from_url(REDIS_URL)
    try:
        ((_, fields),) = await reader.xrange(stream)
        await reader.delete(stream)
    finally:
        await reader.aclose()
    headers = {k.decode(): v.decode() for k, v in fields.items() if k != b"body"}
    Webhook(secret).verify(fields[b"body"], headers)
    assert fields[b"body"] == b'{"order":7}'
